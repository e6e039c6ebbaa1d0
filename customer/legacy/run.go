package legacy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/acme/customer-platform/customer"
)

// ProfileWriter writes migrated profiles.
type ProfileWriter interface {
	// UpsertProfiles writes each profile keyed by its UserID in one
	// unordered bulk write: the migrated fields are set, the profile's id,
	// created_at, customer_since and defaults only when it is inserted. The
	// result has one outcome per profile, in order.
	UpsertProfiles(ctx context.Context, ps []customer.Customer, now time.Time) ([]WriteResult, error)
}

// WriteResult is the outcome of one profile of a bulk write.
type WriteResult struct {
	Inserted bool  // a new profile (else an existing one was updated)
	Err      error // this profile was not written
}

// Summary counts what a run found and did.
type Summary struct {
	Records         int                   `json:"records"`
	Migrate         int                   `json:"migrate"`       // action migrate
	CreateUser      int                   `json:"create_user"`   // action create_user
	Skip            int                   `json:"skip"`          // action skip
	WithProblems    int                   `json:"with_problems"` // records with any problem, blocking or not
	Problems        map[ProblemCode]int   `json:"problems"`      // records with each problem
	Addresses       map[AddressStatus]int `json:"addresses"`     // records by address status
	OtherModels     int                   `json:"other_models,omitempty"`
	Batches         int                   `json:"batches,omitempty"`
	Inserted        int                   `json:"inserted,omitempty"`
	Updated         int                   `json:"updated,omitempty"`
	UsersCreated    int                   `json:"users_created,omitempty"`
	Failed          int                   `json:"failed,omitempty"`
	Interrupted     bool                  `json:"interrupted,omitempty"`
	InterruptReason string                `json:"interrupt_reason,omitempty"`
}

func newSummary() Summary {
	return Summary{Problems: map[ProblemCode]int{}, Addresses: map[AddressStatus]int{}}
}

func (s *Summary) count(e Entry) {
	s.Records++
	switch e.Action {
	case ActionMigrate:
		s.Migrate++
	case ActionCreateUser:
		s.CreateUser++
	case ActionSkip:
		s.Skip++
	}
	if len(e.Problems) > 0 {
		s.WithProblems++
	}
	seen := map[ProblemCode]bool{}
	for _, p := range e.Problems {
		if !seen[p.Code] {
			seen[p.Code] = true
			s.Problems[p.Code]++
		}
	}
	s.Addresses[e.Address.Status]++
	switch e.Outcome {
	case OutcomeInserted:
		s.Inserted++
	case OutcomeUpdated:
		s.Updated++
	case OutcomeFailed:
		s.Failed++
	}
	if e.UserCreated {
		s.UsersCreated++
	}
}

// batches reads r in batches and hands each to fn.
func batches(ctx context.Context, r *Reader, size int, fn func([]Record) error) error {
	batch := make([]Record, 0, size)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		batch = append(batch, rec)
		if len(batch) == size {
			if err := fn(batch); err != nil {
				return err
			}
			batch = make([]Record, 0, size)
		}
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

// Plan classifies every record of r and hands each entry to emit, in input
// order; it changes nothing.
func Plan(ctx context.Context, r *Reader, dir Directory, o Options, emit func(Entry) error) (Summary, error) {
	o = o.withDefaults()
	p := newPlanner(dir, o)
	sum := newSummary()
	err := batches(ctx, r, o.BatchSize, func(recs []Record) error {
		if err := p.resolve(ctx, recs); err != nil {
			return err
		}
		for _, rec := range recs {
			e := p.classify(rec)
			sum.count(e)
			if err := emit(e); err != nil {
				return err
			}
		}
		sum.Batches++
		if o.Progress != nil {
			o.Progress(sum.Records)
		}
		return nil
	})
	sum.OtherModels = r.Skipped()
	return sum, err
}

// Apply plans each batch as Plan does, creates the missing users when
// o.CreateMissingUsers is set, and upserts the batch's profiles. A record
// the plan skips is never written. Re-running Apply after an interruption
// writes the same profiles again (upserts keyed by user_id): nothing is
// duplicated or lost. The summary reports an interruption (the context was
// cancelled) with Interrupted and the error.
func Apply(ctx context.Context, r *Reader, dir Directory, users UserCreator, store ProfileWriter, o Options, emit func(Entry) error) (Summary, error) {
	o = o.withDefaults()
	if o.CreateMissingUsers && users == nil {
		return Summary{}, errors.New("creating missing users needs a user creator")
	}
	p := newPlanner(dir, o)
	sum := newSummary()
	err := batches(ctx, r, o.BatchSize, func(recs []Record) error {
		if err := p.resolve(ctx, recs); err != nil {
			return err
		}
		entries := make([]Entry, len(recs))
		for i, rec := range recs {
			entries[i] = p.classify(rec)
		}
		if err := createUsers(ctx, p, users, entries, o.Lookups); err != nil {
			return err
		}
		if err := write(ctx, store, entries, o.Now().UTC().Truncate(time.Millisecond)); err != nil {
			return err
		}
		for _, e := range entries {
			sum.count(e)
			if err := emit(e); err != nil {
				return err
			}
		}
		sum.Batches++
		if o.Progress != nil {
			o.Progress(sum.Records)
		}
		if o.AfterBatch != nil {
			o.AfterBatch(sum.Batches)
		}
		return nil
	})
	sum.OtherModels = r.Skipped()
	if err != nil && ctx.Err() != nil {
		sum.Interrupted = true
		sum.InterruptReason = ctx.Err().Error()
	}
	return sum, err
}

// createUsers creates the auth users of the create_user entries,
// concurrently with a bound. A user the auth service refuses fails that
// entry; a user that turns out to exist is looked up and used.
func createUsers(ctx context.Context, p *planner, users UserCreator, entries []Entry, bound int) error {
	var idx []int
	for i, e := range entries {
		if e.Action == ActionCreateUser {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, bound)
	)
	for _, i := range idx {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			e := &entries[i]
			rec := e.record
			u, err := users.CreateUser(ctx, NewUser{Email: e.Email, FirstName: rec.FirstName, LastName: rec.LastName, PhoneNumber: rec.Phone})
			created := err == nil
			if errors.Is(err, ErrUserExists) {
				var found bool
				u, found, err = p.dir.FindUserByEmail(ctx, e.Email)
				if err == nil && !found {
					err = fmt.Errorf("%w: the auth service says the email is taken but finds no user with it", ErrUserRejected)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				e.UserID = strings.ToLower(u.ID)
				e.profile.UserID = e.UserID
				e.UserCreated = created
				p.cache[e.Email] = lookup{user: u, found: true}
			case errors.Is(err, ErrUserRejected):
				e.Outcome = OutcomeFailed
				e.Error = err.Error()
			default:
				if firstErr == nil {
					firstErr = fmt.Errorf("create the auth user of %s: %w", e.Email, err)
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// write upserts the profiles of the entries to write and records each outcome.
func write(ctx context.Context, store ProfileWriter, entries []Entry, now time.Time) error {
	var (
		ps  []customer.Customer
		idx []int
	)
	for i := range entries {
		e := &entries[i]
		if e.Action == ActionSkip {
			e.Outcome = OutcomeSkipped
			continue
		}
		if e.Outcome == OutcomeFailed {
			continue
		}
		prof := e.profile.Clone()
		if prof.CustomerSince.IsZero() {
			prof.CustomerSince = now
		}
		ps = append(ps, prof)
		idx = append(idx, i)
	}
	if len(ps) == 0 {
		return nil
	}
	res, err := store.UpsertProfiles(ctx, ps, now)
	if err != nil {
		return fmt.Errorf("write profiles: %w", err)
	}
	if len(res) != len(ps) {
		return fmt.Errorf("write profiles: %d results for %d profiles", len(res), len(ps))
	}
	for k, i := range idx {
		e := &entries[i]
		switch {
		case res[k].Err != nil:
			e.Outcome = OutcomeFailed
			e.Error = res[k].Err.Error()
		case res[k].Inserted:
			e.Outcome = OutcomeInserted
		default:
			e.Outcome = OutcomeUpdated
		}
	}
	return nil
}
