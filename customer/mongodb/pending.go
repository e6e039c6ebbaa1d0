package mongodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
)

// A write that changes the figures (figures.go) first inserts its intent
// in "customer_stats_pending", then counts its change, then writes, then
// deletes the intent:
//
//   - create: intent {_id: profile id} with the new profile's key; insert
//     the profile; count it; the alias.
//   - update: intent {_id: profile id} with the $set; when it changes a
//     counted field, read the profile and record its key in the intent
//     (the plan), count the key's change; $set. (An update of other
//     fields is planned from the start: it holds the lock so that no
//     update of a counted field runs alongside it.)
//   - delete: intent {_id: profile id}; read the profile and its record
//     count, wait for the service records in flight; record the key and
//     the count (the plan); count the deletion; delete the records, the
//     profile, the alias.
//   - service record: intent {_id: "service/<record id>"}; insert the
//     record; count it.
//
// The intent of a profile is its lock: one create, update or delete of a
// profile at a time (FerretDB applies concurrent updates of one document
// last-writer-wins for the whole document, so two updates in flight could
// each count a change the other undid). A writer that finds the lock taken
// waits for it; one that finds it expired (its writer stopped) finishes
// that change first. A stopped change is finished the same way by the
// store's reconciler (RecoverPending): a create whose profile exists and
// a planned update or delete are rolled forward (each step is idempotent:
// the count by its change id, the writes by _id); anything else never
// wrote and is dropped.
//
// The collection holds only the changes in flight, so the reconciler's
// read of it, and Recount's, cost what is in flight, not what is stored.

// lease is how long an intent's writer has to finish before others
// finish it; longer than any request runs.
const lease = time.Minute

// lockWait bounds how long a write waits for another write of the same
// profile, and a delete for the service records in flight.
const lockWait = 5 * time.Second

const (
	opCreate  = "create"
	opUpdate  = "update"
	opDelete  = "delete"
	opService = "service"
	opImport  = "import"
)

// pendingDoc is an intent (see above).
type pendingDoc struct {
	ID         string      `bson:"_id"`
	Change     string      `bson:"change"`
	Op         string      `bson:"op"`
	CustomerID string      `bson:"customer_id,omitempty"`
	UserID     string      `bson:"user_id,omitempty"`
	Series     string      `bson:"series,omitempty"`
	RecordID   string      `bson:"record_id,omitempty"`
	Set        bson.M      `bson:"set,omitempty"`
	Planned    bool        `bson:"planned"`
	Key        *profileKey `bson:"key,omitempty"`     // create: the new profile's; update, delete: the profile's when planned
	Records    int64       `bson:"records,omitempty"` // delete: it deletes slots 1..Records
	Expires    time.Time   `bson:"expires"`
}

// lock inserts the intent p, waiting up to lockWait while another live
// intent holds its _id, and finishing one that expired.
func (s *Store) lock(ctx context.Context, p *pendingDoc) error {
	deadline := s.now().Add(lockWait)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		p.Expires = s.now().Add(lease).UTC().Truncate(time.Millisecond)
		err := s.at("intent", func() (err error) { _, err = s.pending.InsertOne(ctx, p); return err })
		if err == nil {
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("insert the write's intent: %w", err)
		}
		held, err := s.pendingDoc(ctx, p.ID)
		if err != nil {
			return err
		}
		if held != nil && held.Expires.Before(s.now()) {
			if err := s.finish(ctx, *held); err != nil {
				return err
			}
			continue
		}
		if s.now().After(deadline) {
			return customer.ErrBusy
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) pendingDoc(ctx context.Context, id string) (*pendingDoc, error) {
	var p pendingDoc
	if err := s.pending.FindOne(ctx, byID(id)).Decode(&p); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, nil
		}
		return nil, fmt.Errorf("read the write's intent: %w", err)
	}
	return &p, nil
}

// unlock deletes the intent p (not a later one of the same _id).
func (s *Store) unlock(ctx context.Context, p pendingDoc) error {
	if _, err := s.pending.DeleteOne(ctx, bson.D{{Key: "_id", Value: p.ID}, {Key: "change", Value: p.Change}}); err != nil {
		return fmt.Errorf("delete the write's intent: %w", err)
	}
	return nil
}

// release deletes the intent p at the end of its write, or of a write
// that wrote nothing, with a deadline of its own (it also runs on failure
// paths). When it fails, the intent expires and the reconciler finishes
// its change again (every step is idempotent) or drops it.
func (s *Store) release(ctx context.Context, p pendingDoc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = s.at("release", func() error { return s.unlock(ctx, p) })
}

// plan records in the intent p what its roll-forward needs (the profile's
// key, a delete's record count). It fails when the intent is no longer
// p's (it expired and was finished by another).
func (s *Store) plan(ctx context.Context, p *pendingDoc) error {
	p.Planned = true
	var res *mongo.UpdateResult
	err := s.at("plan", func() (err error) {
		res, err = s.pending.UpdateOne(ctx, bson.D{{Key: "_id", Value: p.ID}, {Key: "change", Value: p.Change}},
			bson.D{{Key: "$set", Value: bson.D{
				{Key: "planned", Value: true}, {Key: "key", Value: p.Key}, {Key: "records", Value: p.Records},
				{Key: "series", Value: p.Series}, {Key: "user_id", Value: p.UserID},
			}}})
		return err
	})
	if err != nil {
		return fmt.Errorf("plan the write: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("plan the write: its intent expired")
	}
	return nil
}

// finish completes the change of the intent p from wherever its writer
// stopped (or, when it wrote nothing, drops it), then deletes it. Every
// step is idempotent, so finishing a change twice, or alongside its
// writer, counts and writes it once.
func (s *Store) finish(ctx context.Context, p pendingDoc) error {
	now := s.now()
	switch p.Op {
	case opCreate:
		d, err := s.profileDoc(ctx, p.CustomerID)
		switch {
		case errors.Is(err, customer.ErrNotFound):
		case err != nil:
			return err
		case d.ServiceSeries == p.Series:
			if err := s.countChange(ctx, change{id: p.Change, add: p.Key}, now); err != nil {
				return err
			}
			if p.CustomerID != customer.ProfileID(p.UserID) {
				if err := s.putAlias(ctx, p.UserID, p.CustomerID); err != nil {
					return err
				}
			}
		}
	case opUpdate:
		if p.Planned {
			if _, err := s.applyUpdate(ctx, p, now); err != nil {
				return err
			}
		}
	case opDelete:
		if p.Planned {
			if err := s.applyDelete(ctx, p, now); err != nil {
				return err
			}
		}
	case opService:
		found, err := s.findRecord(ctx, p.Series, p.RecordID)
		if err != nil {
			return err
		}
		if found {
			if err := s.countChange(ctx, change{id: p.Change, services: 1}, now); err != nil {
				return err
			}
		}
	}
	return s.unlock(ctx, p)
}

// RecoverPending finishes the changes whose writers stopped (their intents
// expired) and returns how many it finished.
func (s *Store) RecoverPending(ctx context.Context) (int, error) {
	cur, err := s.pending.Find(ctx, bson.D{{Key: "expires", Value: bson.D{{Key: "$lt", Value: s.now().UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("read the writes' intents: %w", err)
	}
	var ps []pendingDoc
	if err := cur.All(ctx, &ps); err != nil {
		return 0, fmt.Errorf("read the writes' intents: %w", err)
	}
	n := 0
	for _, p := range ps {
		if err := s.finish(ctx, p); err != nil {
			return n, fmt.Errorf("finish %s of %s: %w", p.Op, p.ID, err)
		}
		n++
	}
	return n, nil
}

// findRecord reports whether the series holds the record recordID (read
// slot by slot: this runs only for a stopped write).
func (s *Store) findRecord(ctx context.Context, series, recordID string) (bool, error) {
	n, _, err := s.count(ctx, series)
	if err != nil {
		return false, err
	}
	for k := n; k >= 1; k-- {
		d, err := s.slot(ctx, series, k)
		if err != nil {
			return false, err
		}
		if d != nil && d.RecordID == recordID {
			return true, nil
		}
	}
	return false, nil
}

// applyUpdate rolls the planned update p forward: counts its change (when
// it changes a counted field: p.Key is the profile's key before it), then
// $sets it. It reports whether the profile was there.
func (s *Store) applyUpdate(ctx context.Context, p pendingDoc, now time.Time) (bool, error) {
	if p.Key != nil {
		to := p.Key.with(p.Set)
		if err := s.countChange(ctx, change{id: p.Change, remove: p.Key, add: &to}, now); err != nil {
			return false, err
		}
	}
	var res *mongo.UpdateResult
	if err := s.at("write", func() (err error) {
		res, err = s.customers.UpdateOne(ctx, byID(p.CustomerID), bson.D{{Key: "$set", Value: p.Set}})
		return err
	}); err != nil {
		return false, fmt.Errorf("update customer: %w", err)
	}
	return res.MatchedCount > 0, nil
}

// applyDelete rolls the planned delete p forward: counts it, then deletes
// the records the plan counted, the profile and its alias.
func (s *Store) applyDelete(ctx context.Context, p pendingDoc, now time.Time) error {
	if err := s.countChange(ctx, change{id: p.Change, remove: p.Key, services: -p.Records}, now); err != nil {
		return err
	}
	if err := s.deleteRecords(ctx, p.Series, p.Records); err != nil {
		return err
	}
	if err := s.at("profile", func() (err error) { _, err = s.customers.DeleteOne(ctx, byID(p.CustomerID)); return err }); err != nil {
		return fmt.Errorf("delete customer: %w", err)
	}
	if p.CustomerID != customer.ProfileID(p.UserID) {
		if err := s.at("alias", func() (err error) { _, err = s.aliases.DeleteOne(ctx, byID(p.UserID)); return err }); err != nil {
			return fmt.Errorf("delete customer alias: %w", err)
		}
	}
	return nil
}

// awaitServices waits until no service record of the series is in flight
// (finishing those whose writers stopped), so that every record a delete
// counts is already counted.
func (s *Store) awaitServices(ctx context.Context, series string) error {
	deadline := s.now().Add(lockWait)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		cur, err := s.pending.Find(ctx, bson.D{{Key: "op", Value: opService}, {Key: "series", Value: series}})
		if err != nil {
			return fmt.Errorf("read the records in flight: %w", err)
		}
		var ps []pendingDoc
		if err := cur.All(ctx, &ps); err != nil {
			return fmt.Errorf("read the records in flight: %w", err)
		}
		live := 0
		for _, p := range ps {
			if p.Expires.Before(s.now()) {
				if err := s.finish(ctx, p); err != nil {
					return err
				}
				continue
			}
			live++
		}
		if live == 0 {
			return nil
		}
		if s.now().After(deadline) {
			return customer.ErrBusy
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// at runs the write named step between the calls of the test hook (nil
// outside tests): before it, and after it when it succeeded. An error of
// the hook stops the write there, as a crash or a lost answer would.
func (s *Store) at(step string, write func() error) error {
	if s.hook != nil {
		if err := s.hook(step, false); err != nil {
			return err
		}
	}
	if err := write(); err != nil {
		return err
	}
	if s.hook != nil {
		return s.hook(step, true)
	}
	return nil
}

// newChange is a fresh change id of op.
func newChange(op string) string { return op + "/" + contract.NewID() }

// Maintenance intervals: stopped writes are finished and figures that are
// not exact recounted every recoverEvery; the figures are checked against
// the collections (and old slots swept) every checkEvery.
const (
	recoverEvery = 30 * time.Second
	checkEvery   = time.Hour
)

// Maintain runs the store's background work until ctx ends (every
// replica runs it; each step is safe to run on several at once). It
// finishes the changes whose writers stopped, recounts the figures while
// they are not exact, and each hour recounts them as a check, logging any
// difference it corrects (a change counted twice or not at all: a writer
// that outlived its lease), and sweeps old slots.
func (s *Store) Maintain(ctx context.Context, log *slog.Logger) {
	tick := time.NewTicker(recoverEvery)
	defer tick.Stop()
	lastCheck := s.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n, err := s.RecoverPending(ctx); err != nil {
			log.WarnContext(ctx, "customer figures: finishing stopped writes failed", "error", err)
		} else if n > 0 {
			log.InfoContext(ctx, "customer figures: finished stopped writes", "writes", n)
		}
		check := s.now().Sub(lastCheck) >= checkEvery
		if !check {
			if err := s.countIfInexact(ctx); err != nil {
				log.WarnContext(ctx, "customer figures: recount failed", "error", err)
			}
			continue
		}
		corrected, err := s.Recount(ctx, s.now())
		switch {
		case errors.Is(err, ErrRecountBusy):
			continue // checked at the next tick
		case err != nil:
			log.WarnContext(ctx, "customer figures: recount failed", "error", err)
			continue
		case corrected != nil:
			log.WarnContext(ctx, "customer figures: the counters differed from the collections and were corrected", "were", *corrected)
		}
		lastCheck = s.now()
		if err := s.SweepFigures(ctx, s.now()); err != nil {
			log.WarnContext(ctx, "customer figures: sweep failed", "error", err)
		}
	}
}
