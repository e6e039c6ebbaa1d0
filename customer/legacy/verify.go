package legacy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
)

// ProfileReader reads the profiles for verification.
type ProfileReader interface {
	// ProfilesByUserIDs returns the profiles of the given users, by user id
	// (a user without one is absent).
	ProfilesByUserIDs(ctx context.Context, userIDs []string) (map[string]customer.Customer, error)
	// EachProfileUserID calls fn with the user_id of every profile.
	EachProfileUserID(ctx context.Context, fn func(userID string) error) error
	// DuplicateUserIDs returns the user ids more than one profile holds.
	DuplicateUserIDs(ctx context.Context) ([]string, error)
}

// MaxListed bounds each list of findings in a verification result; the
// counts are always complete.
const MaxListed = 1000

// Finding is one problem verification found.
type Finding struct {
	UserID string `json:"user_id"`
	Ref    string `json:"record,omitempty"`
	Detail string `json:"detail"`
}

// Verification is the result of Verify.
type Verification struct {
	Records       int `json:"records"`  // customer records in the input
	Expected      int `json:"expected"` // records the plan writes
	Skipped       int `json:"skipped"`  // records the plan skips
	Found         int `json:"found"`    // expected profiles present
	TotalProfiles int `json:"total_profiles"`

	Missing      int       `json:"missing"`      // expected profiles absent
	Mismatched   int       `json:"mismatched"`   // present with other content
	OrphanUsers  int       `json:"orphan_users"` // profiles whose user_id the auth service lacks
	SharedUsers  int       `json:"shared_users"` // user ids more than one profile holds
	MissingList  []Finding `json:"missing_profiles,omitempty"`
	MismatchList []Finding `json:"mismatched_profiles,omitempty"`
	OrphanList   []Finding `json:"orphan_profiles,omitempty"`
	SharedList   []Finding `json:"shared_users_list,omitempty"`
}

// OK reports whether verification found nothing wrong.
func (v Verification) OK() bool {
	return v.Missing == 0 && v.Mismatched == 0 && v.OrphanUsers == 0 && v.SharedUsers == 0 && v.Found == v.Expected
}

func appendCapped(list []Finding, f Finding) []Finding {
	if len(list) < MaxListed {
		list = append(list, f)
	}
	return list
}

// Verify checks the data after a run: it plans the input again (with the
// options apply ran with; missing users are never created here) and checks
// that every record the plan writes has its profile with the migrated
// content (see Differences), that the count of those profiles is the input's records minus
// the skips, that every profile's user_id exists in the auth service, and
// that no two profiles share a user.
func Verify(ctx context.Context, r *Reader, dir Directory, store ProfileReader, o Options) (Verification, error) {
	o = o.withDefaults()
	o.CreateMissingUsers = false
	p := newPlanner(dir, o)
	var v Verification

	// Every profile's user exists. The users found seed the planner's cache,
	// so the plan below looks up by email only the records without a profile.
	if err := checkUsers(ctx, dir, store, o.Lookups, p.cache, &v); err != nil {
		return v, err
	}
	dups, err := store.DuplicateUserIDs(ctx)
	if err != nil {
		return v, fmt.Errorf("find shared users: %w", err)
	}
	v.SharedUsers = len(dups)
	for _, id := range dups {
		v.SharedList = appendCapped(v.SharedList, Finding{UserID: id, Detail: "more than one profile"})
	}

	err = batches(ctx, r, o.BatchSize, func(recs []Record) error {
		if err := p.resolve(ctx, recs); err != nil {
			return err
		}
		var want []Entry
		for _, rec := range recs {
			e := p.classify(rec)
			v.Records++
			if e.Action == ActionSkip {
				v.Skipped++
				continue
			}
			want = append(want, e)
		}
		v.Expected += len(want)
		ids := make([]string, len(want))
		for i, e := range want {
			ids[i] = e.UserID
		}
		got, err := store.ProfilesByUserIDs(ctx, ids)
		if err != nil {
			return fmt.Errorf("read profiles: %w", err)
		}
		for _, e := range want {
			c, ok := got[e.UserID]
			if !ok {
				v.Missing++
				v.MissingList = appendCapped(v.MissingList, Finding{UserID: e.UserID, Ref: e.record.Ref(), Detail: "no profile"})
				continue
			}
			v.Found++
			if diff := Differences(e.profile, c); len(diff) > 0 {
				v.Mismatched++
				v.MismatchList = appendCapped(v.MismatchList, Finding{UserID: e.UserID, Ref: e.record.Ref(), Detail: strings.Join(diff, "; ")})
			}
		}
		if o.Progress != nil {
			o.Progress(v.Records)
		}
		return nil
	})
	return v, err
}

// checkUsers looks up the user of every profile by id, concurrently with a
// bound, counting the profiles whose user the auth service lacks and
// caching the users found by email.
func checkUsers(ctx context.Context, dir Directory, store ProfileReader, bound int, cache map[string]lookup, v *Verification) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, bound)
	)
	err := store.EachProfileUserID(ctx, func(id string) error {
		mu.Lock()
		v.TotalProfiles++
		stop := firstErr
		mu.Unlock()
		if stop != nil {
			return stop
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			u, ok, err := dir.UserByID(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				if firstErr == nil {
					firstErr = fmt.Errorf("check auth user %s: %w", id, err)
					cancel()
				}
			case !ok:
				v.OrphanUsers++
				v.OrphanList = appendCapped(v.OrphanList, Finding{UserID: id, Detail: "the auth service has no such user"})
			default:
				cache[contract.NormalizeEmail(u.Email)] = lookup{user: u, found: true}
			}
		}()
		return nil
	})
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err != nil {
		return fmt.Errorf("read profile user ids: %w", err)
	}
	slices.SortFunc(v.OrphanList, func(a, b Finding) int { return strings.Compare(a.UserID, b.UserID) })
	return nil
}

// Differences lists the migrated fields (those apply sets on every run) in
// which got differs from want. customer_since and the contact preferences
// are written only when a profile is created, so a profile that existed
// before the migration keeps its own and they are not compared.
func Differences(want, got customer.Customer) []string {
	var d []string
	cmp := func(name, w, g string) {
		if w != g {
			d = append(d, fmt.Sprintf("%s: want %q, have %q", name, w, g))
		}
	}
	cmp("street_address", want.StreetAddress, got.StreetAddress)
	cmp("city", want.City, got.City)
	cmp("state", want.State, got.State)
	cmp("postal_code", want.PostalCode, got.PostalCode)
	cmp("country", want.Country, got.Country)
	cmp("company_name", want.CompanyName, got.CompanyName)
	cmp("business_type", want.BusinessType, got.BusinessType)
	cmp("tax_id", want.TaxID, got.TaxID)
	cmp("emergency_contact_name", want.EmergencyContact.Name, got.EmergencyContact.Name)
	cmp("emergency_contact_phone", want.EmergencyContact.Phone, got.EmergencyContact.Phone)
	cmp("emergency_contact_relationship", want.EmergencyContact.Relationship, got.EmergencyContact.Relationship)
	if want.IsVerified != got.IsVerified {
		d = append(d, fmt.Sprintf("is_verified: want %v, have %v", want.IsVerified, got.IsVerified))
	}
	if got.UserID != "" && want.UserID != "" && got.UserID != want.UserID {
		d = append(d, "user_id: want "+want.UserID+", have "+got.UserID)
	}
	return d
}
