package mongodb_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
)

// clock is a test's time, moved by hand.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) pastGrace()              { c.advance(mongodb.ClaimGrace + time.Second) }
func (c *clock) option() mongodb.Option  { return mongodb.WithClock(c.now) }

func clockedStore(t *testing.T) (*mongodb.Store, *mongo.Database, *clock) {
	t.Helper()
	_, db := testenv.Mongo(t)
	c := newClock()
	s := mongodb.New(db, c.option())
	testenv.Must(t, s.EnsureIndexes(context.Background()), "indexes")
	return s, db, c
}

// claimOf reads an email's claim document as stored ("" when none).
func claimOf(t *testing.T, db *mongo.Database, email string) string {
	t.Helper()
	var c struct {
		UserID string `bson:"user_id"`
	}
	err := db.Collection(mongodb.EmailsCollection).FindOne(context.Background(), bson.D{{Key: "_id", Value: email}}).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return ""
	}
	testenv.Must(t, err, "read claim %s", email)
	return c.UserID
}

func wantByEmail(t *testing.T, s *mongodb.Store, email, id string) {
	t.Helper()
	u, err := s.UserByEmail(context.Background(), email)
	switch {
	case id == "" && !errors.Is(err, auth.ErrNotFound):
		t.Fatalf("UserByEmail(%s) = %+v, %v; want not found", email, u, err)
	case id != "" && (err != nil || u.ID != id):
		t.Fatalf("UserByEmail(%s) = %+v, %v; want user %s", email, u, err, id)
	}
}

// TestCrashBetweenClaimAndUser: a registration that died after its claim
// leaves a claim without a user: no user is found by it, a registration of
// the email is refused while the claim is young (a write may be under
// way) and succeeds once it is older than ClaimGrace.
func TestCrashBetweenClaimAndUser(t *testing.T) {
	t.Parallel()
	s, db, c := clockedStore(t)
	ctx := context.Background()
	dead := contract.NewID()
	testenv.Must(t, s.Claim(ctx, "crash@example.com", dead), "claim")
	wantByEmail(t, s, "crash@example.com", "")
	if err := s.CreateUser(ctx, user("crash@example.com")); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("a registration against a young claim: %v, want ErrEmailTaken", err)
	}
	c.pastGrace()
	u := user("Crash@Example.com")
	testenv.Must(t, s.CreateUser(ctx, u), "a registration against a stale claim")
	wantByEmail(t, s, "crash@example.com", u.ID)
	if got := claimOf(t, db, "crash@example.com"); got != u.ID {
		t.Fatalf("claim held by %s, want %s", got, u.ID)
	}
}

// registration is a user registered with an Idempotency-Key and a
// Registration-Deadline.
func registration(email, key string, deadline time.Time) auth.User {
	u := user(email)
	u.RegistrationKey, u.RegistrationDeadline = key, deadline
	return u
}

// TestCreateUserPastItsDeadline: the store checks a registration's
// deadline (before its claim, and again after it: see the takers that run
// out of time in TestATakeoverWhileTheFirstAttemptWrites): past it, no
// user and no claim are left, and the email is free.
func TestCreateUserPastItsDeadline(t *testing.T) {
	t.Parallel()
	s, db, c := clockedStore(t)
	ctx := context.Background()
	const email = "late@example.com"
	if err := s.CreateUser(ctx, registration(email, "saga-1", c.now())); !errors.Is(err, auth.ErrDeadlineExceeded) {
		t.Fatalf("CreateUser at its deadline: %v, want ErrDeadlineExceeded", err)
	}
	wantByEmail(t, s, email, "")
	if got := claimOf(t, db, email); got != "" {
		t.Fatalf("a claim of %s left behind", got)
	}
	u := registration(email, "saga-2", c.now().Add(time.Second))
	testenv.Must(t, s.CreateUser(ctx, u), "a registration in time")
	wantByEmail(t, s, email, u.ID)
}

// TestRegistrationCrashPoints enumerates a registration's crash points
// (the auth replica dies before its email claim, between the claim and
// the user's insert, or after the insert with its answer lost) times what
// comes next (the same registration sent again, with its Idempotency-Key
// and deadline, in time or late; another registration at each moment that
// matters; an email change of another user), each on a fresh store, then
// checks the invariants over the stored state: one user at most holds the
// email and the lookup by email finds exactly that user; a user the first
// attempt created is never replaced; and the email is never blocked for
// good: once ClaimGrace has passed, a new registration gets it exactly
// when no user holds it.
func TestRegistrationCrashPoints(t *testing.T) {
	t.Parallel()
	const (
		firstKey = "saga-1"
		window   = 3 * time.Second // the first registration's deadline, from its start
	)
	type crash int
	const (
		beforeClaim crash = iota
		afterClaim
		afterInsert
	)
	crashes := []crash{beforeClaim, afterClaim, afterInsert}
	crashName := [...]string{"before its claim", "between its claim and insert", "after its insert"}
	type next struct {
		name   string
		key    string        // the registration's Idempotency-Key ("" none)
		at     time.Duration // after the first registration's start
		window time.Duration // its deadline after at (0: none)
		change bool          // an email change of another user instead
	}
	nexts := []next{
		{name: "sent again in time", key: firstKey, at: time.Second},
		{name: "sent again past its deadline", key: firstKey, at: window},
		{name: "another registration while the first may insert", key: "saga-2", at: time.Second, window: window},
		{name: "another registration within the deadline's margin", key: "saga-2", at: window + mongodb.DeadlineMargin/2, window: window},
		{name: "another registration past the first's deadline", key: "saga-2", at: window + mongodb.DeadlineMargin + time.Millisecond, window: window},
		{name: "a registration without key or deadline", at: time.Second},
		{name: "a registration without key or deadline past ClaimGrace", at: mongodb.ClaimGrace},
		{name: "an email change while the first may insert", at: time.Second, change: true},
		{name: "an email change past the first's deadline", at: window + mongodb.DeadlineMargin + time.Millisecond, change: true},
	}
	for _, cr := range crashes {
		for _, nx := range nexts {
			t.Run(fmt.Sprintf("died %s/%s", crashName[cr], nx.name), func(t *testing.T) {
				t.Parallel()
				s, db, c := clockedStore(t)
				ctx := context.Background()
				const email = "crash-point@example.com"
				start := c.now()
				first := registration(email, firstKey, start.Add(window))
				switch cr {
				case afterClaim:
					testenv.Must(t, s.ClaimFor(ctx, first), "the first attempt's claim")
				case afterInsert:
					testenv.Must(t, s.CreateUser(ctx, first), "the first attempt")
				}
				other := user("other@example.com")
				if nx.change {
					testenv.Must(t, s.CreateUser(ctx, other), "the other user")
				}
				c.advance(nx.at)

				// What the next call must get: a late one is refused for
				// its deadline; else the email is taken by the first
				// attempt's user, or by its claim while that may still be
				// a write under way (young, its deadline and margin
				// ahead, another key).
				mayInsert := nx.at < mongodb.ClaimGrace && nx.at <= window+mongodb.DeadlineMargin && nx.key != firstKey
				var want error
				switch {
				case nx.window == 0 && nx.key == firstKey && nx.at >= window:
					want = auth.ErrDeadlineExceeded // before anything else: a late call touches nothing
				case cr == afterInsert || (cr == afterClaim && mayInsert):
					want = auth.ErrEmailTaken
				}
				var got error
				u := registration(email, nx.key, time.Time{})
				switch {
				case nx.change:
					e := email
					_, got = s.UpdateUser(ctx, other.ID, auth.ProfileUpdate{Email: &e})
					u = other
				case nx.key == firstKey:
					u.RegistrationDeadline = first.RegistrationDeadline
					got = s.CreateUser(ctx, u)
				default:
					if nx.window > 0 {
						u.RegistrationDeadline = c.now().Add(nx.window)
					}
					got = s.CreateUser(ctx, u)
				}
				if !errors.Is(got, want) {
					t.Fatalf("the next call: %v, want %v", got, want)
				}

				// The invariants over the stored state.
				holder := ""
				switch {
				case cr == afterInsert:
					holder = first.ID
				case got == nil:
					holder = u.ID
				}
				n, err := db.Collection(mongodb.UsersCollection).CountDocuments(ctx, bson.D{{Key: "email", Value: email}})
				testenv.Must(t, err, "count")
				if want := map[bool]int64{true: 1, false: 0}[holder != ""]; n != want {
					t.Fatalf("%d users hold the email, want %d", n, want)
				}
				wantByEmail(t, s, email, holder)
				c.advance(mongodb.ClaimGrace)
				late := user(email)
				switch err := s.CreateUser(ctx, late); {
				case holder != "" && !errors.Is(err, auth.ErrEmailTaken):
					t.Fatalf("a registration once ClaimGrace has passed: %v, want ErrEmailTaken", err)
				case holder == "" && err != nil:
					t.Fatalf("a registration once ClaimGrace has passed: %v; the email is blocked", err)
				case holder == "":
					holder = late.ID
				}
				wantByEmail(t, s, email, holder)
			})
		}
	}
}

// TestATakeoverWhileTheFirstAttemptWrites: a claim is taken for abandoned
// (the same registration sent again, or its deadline and margin passed on
// the taker's clock) while its registration is in fact still writing. In
// the end one user holds the email and the lookup by email finds it,
// wherever the first attempt's insert lands: after the taker is done
// (the first attempt finds its claim gone or replaced and takes it back),
// or between the taker's look for its user and the claim's delete (the
// taker looks again once its own claim is in, and gives it back).
func TestATakeoverWhileTheFirstAttemptWrites(t *testing.T) {
	t.Parallel()
	const window = 3 * time.Second
	type taker struct {
		name    string
		at      time.Duration // after the first attempt's start
		key     string        // the first's ("saga-1"), another, or "" for an email change
		ownsIt  bool          // when the first's insert comes after it: the taker's user holds the email
		release bool          // it takes the claim for abandoned
		expires bool          // its own deadline passes during its release
	}
	late := window + mongodb.DeadlineMargin + time.Millisecond
	takers := []taker{
		{name: "the same registration sent again in time", at: time.Second, key: "saga-1", ownsIt: true, release: true},
		{name: "the same registration sent again too late", at: window, key: "saga-1"},
		{name: "another registration past the deadline's margin", at: late, key: "saga-2", ownsIt: true, release: true},
		{name: "another registration past the deadline's margin, running out of time", at: late, key: "saga-2", release: true, expires: true},
		{name: "an email change past the deadline's margin", at: late, ownsIt: true, release: true},
	}
	for _, landing := range []string{"after the taker", "during the taker's release"} {
		for _, tk := range takers {
			if landing != "after the taker" && !tk.release {
				continue // no release to land in
			}
			t.Run(landing+"/"+tk.name, func(t *testing.T) {
				t.Parallel()
				s, db, c := clockedStore(t)
				ctx := context.Background()
				const email = "writing@example.com"
				first := registration(email, "saga-1", c.now().Add(window))
				other := user("other@example.com")
				if tk.key == "" {
					testenv.Must(t, s.CreateUser(ctx, other), "the user whose email changes")
				}
				take := func() (string, error) {
					c.advance(tk.at)
					if tk.key == "" {
						e := email
						_, err := s.UpdateUser(ctx, other.ID, auth.ProfileUpdate{Email: &e})
						return other.ID, err
					}
					u := registration(email, tk.key, first.RegistrationDeadline)
					if tk.key != "saga-1" {
						u.RegistrationDeadline = c.now().Add(window)
					}
					return u.ID, s.CreateUser(ctx, u)
				}
				var once sync.Once
				var takerID string
				var takerErr, firstErr error
				holder := first.ID
				if landing == "after the taker" {
					// The first attempt stops before its insert while the
					// taker runs, then inserts.
					var paused atomic.Bool // the first insert only: the taker's own comes through here too
					s.SetBeforeInsert(func() {
						if paused.CompareAndSwap(false, true) {
							takerID, takerErr = take()
						}
					})
					if tk.expires { // it runs out of time once it has released the first's claim
						s.SetBeforeDelete(func() { once.Do(func() { c.advance(window) }) })
					}
					firstErr = s.CreateUser(ctx, first)
					refused := auth.ErrDeadlineExceeded // either way the taker's own deadline passed
					if tk.ownsIt {
						holder = takerID
						if takerErr != nil || !errors.Is(firstErr, auth.ErrEmailTaken) {
							t.Fatalf("the taker: %v, the first attempt: %v; want the taker's user, the first refused", takerErr, firstErr)
						}
					} else if firstErr != nil || !errors.Is(takerErr, refused) {
						t.Fatalf("the taker: %v, the first attempt: %v; want the first attempt's user, the taker refused (%v)", takerErr, firstErr, refused)
					}
				} else {
					// The first attempt's claim is in; its insert lands
					// while the taker releases that claim.
					testenv.Must(t, s.ClaimFor(ctx, first), "the first attempt's claim")
					d := bson.D{{Key: "_id", Value: first.ID}, {Key: "email", Value: email}, {Key: "first_name", Value: "F"},
						{Key: "last_name", Value: "L"}, {Key: "phone_number", Value: ""}, {Key: "user_role", Value: contract.RoleCustomer},
						{Key: "date_joined", Value: first.DateJoined}, {Key: "password", Value: "h"}, {Key: "registration_key", Value: "saga-1"}}
					s.SetBeforeDelete(func() {
						once.Do(func() {
							_, err := db.Collection(mongodb.UsersCollection).InsertOne(ctx, d)
							testenv.Must(t, err, "the first attempt's insert")
							if tk.expires {
								c.advance(window)
							}
						})
					})
					if _, err := take(); !errors.Is(err, auth.ErrEmailTaken) {
						t.Fatalf("the taker: %v, want ErrEmailTaken", err)
					}
				}
				n, err := db.Collection(mongodb.UsersCollection).CountDocuments(ctx, bson.D{{Key: "email", Value: email}})
				testenv.Must(t, err, "count")
				if n != 1 {
					t.Fatalf("%d users hold the email, want 1", n)
				}
				wantByEmail(t, s, email, holder)
				if got := claimOf(t, db, email); got != holder {
					t.Fatalf("the claim is %q's, want %s's", got, holder)
				}
			})
		}
	}
}

// TestConcurrentRegistrationsOverAStaleClaim: 20 registrations of one email
// whose claim a crash left behind: exactly one wins, and the email finds
// the winner (no replacer deleted the winner's claim). Several rounds, as
// the race is between the replacers' releases.
func TestConcurrentRegistrationsOverAStaleClaim(t *testing.T) {
	t.Parallel()
	s, db, c := clockedStore(t)
	ctx := context.Background()
	for round := range 4 {
		email := fmt.Sprintf("stale-%d@example.com", round)
		testenv.Must(t, s.Claim(ctx, email, contract.NewID()), "claim")
		c.pastGrace()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []string
		dups := 0
		for range 20 {
			wg.Go(func() {
				u := user(email)
				err := s.CreateUser(ctx, u)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, u.ID)
				case errors.Is(err, auth.ErrEmailTaken):
					dups++
				default:
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 || dups != 19 {
			t.Fatalf("round %d: %d created, %d duplicates; want 1 and 19", round, len(winners), dups)
		}
		wantByEmail(t, s, email, winners[0])
		if got := claimOf(t, db, email); got != winners[0] {
			t.Fatalf("round %d: claim held by %s, want the winner %s", round, got, winners[0])
		}
	}
}

// TestDeleteRacesRegistrations: a user's deletion racing ten registrations
// of their email: at most one registration wins, and the email then finds
// it; when none won, the email is free once the delete returned.
func TestDeleteRacesRegistrations(t *testing.T) {
	t.Parallel()
	s, _, _ := clockedStore(t)
	ctx := context.Background()
	for round := range 4 {
		email := fmt.Sprintf("gone-%d@example.com", round)
		old := user(email)
		testenv.Must(t, s.CreateUser(ctx, old), "create")
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []string
		wg.Go(func() { testenv.Must(t, s.DeleteUser(ctx, old.ID), "delete") })
		for range 10 {
			wg.Go(func() {
				u := user(email)
				if err := s.CreateUser(ctx, u); err == nil {
					mu.Lock()
					winners = append(winners, u.ID)
					mu.Unlock()
				} else if !errors.Is(err, auth.ErrEmailTaken) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if len(winners) > 1 {
			t.Fatalf("round %d: %d users created with one email", round, len(winners))
		}
		if len(winners) == 1 {
			wantByEmail(t, s, email, winners[0])
			continue
		}
		// The old user's claim was young: nobody won; the email is free now.
		u := user(email)
		testenv.Must(t, s.CreateUser(ctx, u), "round %d: register after the delete", round)
		wantByEmail(t, s, email, u.ID)
	}
}

// TestEmailChange: a change claims the new email, updates the user, then
// releases the old claim; a change to an email someone else holds is
// ErrEmailTaken and changes nothing.
func TestEmailChange(t *testing.T) {
	t.Parallel()
	s, db, _ := clockedStore(t)
	ctx := context.Background()
	x, y := user("x@example.com"), user("y@example.com")
	testenv.Must(t, s.CreateUser(ctx, x), "create x")
	testenv.Must(t, s.CreateUser(ctx, y), "create y")
	taken := "Y@example.com"
	if _, err := s.UpdateUser(ctx, x.ID, auth.ProfileUpdate{Email: &taken}); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("change to a taken email: %v", err)
	}
	wantByEmail(t, s, "x@example.com", x.ID)
	wantByEmail(t, s, "y@example.com", y.ID)
	next := "x2@example.com"
	got, err := s.UpdateUser(ctx, x.ID, auth.ProfileUpdate{Email: &next})
	if err != nil || got.Email != next {
		t.Fatalf("change: %+v %v", got, err)
	}
	wantByEmail(t, s, next, x.ID)
	wantByEmail(t, s, "x@example.com", "")
	if c := claimOf(t, db, "x@example.com"); c != "" {
		t.Fatalf("the old email's claim is still there (user %s)", c)
	}
	z := user("x@example.com")
	testenv.Must(t, s.CreateUser(ctx, z), "the old email is free at once")
	wantByEmail(t, s, "x@example.com", z.ID)
	// A change to the email one has is no change.
	same := "X2@example.com"
	if got, err := s.UpdateUser(ctx, x.ID, auth.ProfileUpdate{Email: &same}); err != nil || got.Email != next {
		t.Fatalf("change to the same email: %+v %v", got, err)
	}
	wantByEmail(t, s, next, x.ID)
}

// TestEmailChangesFinishingInTheOtherOrder: a user changes their email
// from A to B, and at once back to A; the second change finishes first.
// The first change, finishing last, neither claims B again (the user no
// longer has it) nor releases A (the user has it again): A finds the
// user, and B is free at once.
func TestEmailChangesFinishingInTheOtherOrder(t *testing.T) {
	t.Parallel()
	s, db, _ := clockedStore(t)
	ctx := context.Background()
	const a, b = "first@example.com", "second@example.com"
	u := user(a)
	testenv.Must(t, s.CreateUser(ctx, u), "create")
	var second atomic.Bool
	s.SetAfterUpdate(func() {
		if second.CompareAndSwap(false, true) { // once the first change is written
			back := a
			if got, err := s.UpdateUser(ctx, u.ID, auth.ProfileUpdate{Email: &back}); err != nil || got.Email != a {
				t.Errorf("the change back: %+v %v", got, err)
			}
		}
	})
	next := b
	if _, err := s.UpdateUser(ctx, u.ID, auth.ProfileUpdate{Email: &next}); err != nil {
		t.Fatalf("the first change: %v", err)
	}
	wantByEmail(t, s, a, u.ID)
	wantByEmail(t, s, b, "")
	if got := claimOf(t, db, a); got != u.ID {
		t.Fatalf("%s's claim is %q's, want the user's", a, got)
	}
	if got := claimOf(t, db, b); got != "" {
		t.Fatalf("%s is still claimed by %s", b, got)
	}
	w := user(b)
	testenv.Must(t, s.CreateUser(ctx, w), "a registration of the email left behind, at once")
}

// TestEmailChangeCrashes: the two crash points of an email change. After
// the claim of the new email, before the user's update: the user keeps the
// old email, the new one reads as free (taken while the claim is young,
// free after), and the user's retry succeeds. After the update, before the
// old claim's release: the old email reads as free and is taken by the
// next registration.
func TestEmailChangeCrashes(t *testing.T) {
	t.Parallel()
	s, db, c := clockedStore(t)
	ctx := context.Background()
	x := user("before@example.com")
	testenv.Must(t, s.CreateUser(ctx, x), "create")

	// 1. Crash after the claim of the new email.
	testenv.Must(t, s.Claim(ctx, "after@example.com", x.ID), "claim the new email")
	wantByEmail(t, s, "after@example.com", "")
	wantByEmail(t, s, "before@example.com", x.ID)
	if err := s.CreateUser(ctx, user("after@example.com")); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("register against a young claim of a change: %v", err)
	}
	next := "after@example.com"
	if got, err := s.UpdateUser(ctx, x.ID, auth.ProfileUpdate{Email: &next}); err != nil || got.Email != next {
		t.Fatalf("the user's retry: %+v %v", got, err)
	}
	wantByEmail(t, s, next, x.ID)
	wantByEmail(t, s, "before@example.com", "")

	// 2. Crash after the update, before the old claim's release.
	third := "third@example.com"
	testenv.Must(t, s.Claim(ctx, third, x.ID), "claim")
	_, err := db.Collection(mongodb.UsersCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: x.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "email", Value: third}}}})
	testenv.Must(t, err, "update")
	wantByEmail(t, s, third, x.ID)
	wantByEmail(t, s, next, "") // the claim is there, its user has another email
	c.pastGrace()
	w := user(next)
	testenv.Must(t, s.CreateUser(ctx, w), "register the email left behind")
	wantByEmail(t, s, next, w.ID)
	wantByEmail(t, s, third, x.ID)
}

// TestDeletedUsersClaim: a deletion releases the claim; a claim a crash
// left after the user's delete points at no user and reads as free.
func TestDeletedUsersClaim(t *testing.T) {
	t.Parallel()
	s, db, c := clockedStore(t)
	ctx := context.Background()
	u := user("del@example.com")
	testenv.Must(t, s.CreateUser(ctx, u), "create")
	testenv.Must(t, s.DeleteUser(ctx, u.ID), "delete")
	if got := claimOf(t, db, "del@example.com"); got != "" {
		t.Fatalf("the deleted user's claim is still there")
	}
	wantByEmail(t, s, "del@example.com", "")
	v := user("del@example.com")
	testenv.Must(t, s.CreateUser(ctx, v), "register a deleted user's email")

	// Crash between the user's delete and the claim's release.
	_, err := db.Collection(mongodb.UsersCollection).DeleteOne(ctx, bson.D{{Key: "_id", Value: v.ID}})
	testenv.Must(t, err, "delete")
	wantByEmail(t, s, "del@example.com", "")
	c.pastGrace()
	w := user("del@example.com")
	testenv.Must(t, s.CreateUser(ctx, w), "register over the claim of a deleted user")
	wantByEmail(t, s, "del@example.com", w.ID)
}

// TestBackfillOldShape: users written in the old shape, straight into the
// users collection with no claims (a database from before the claims, a
// Django import), are found by email after the backfill, which is
// idempotent; a registration of such an email before the backfill is
// refused by the unique index and repairs that email's claim.
func TestBackfillOldShape(t *testing.T) {
	t.Parallel()
	s, db, _ := clockedStore(t)
	ctx := context.Background()
	users := db.Collection(mongodb.UsersCollection)
	var ids []string
	for i := range 30 {
		id := contract.NewID()
		ids = append(ids, id)
		_, err := users.InsertOne(ctx, bson.D{
			{Key: "_id", Value: id}, {Key: "email", Value: fmt.Sprintf("old%02d@example.com", i)}, {Key: "first_name", Value: "Old"},
			{Key: "last_name", Value: "Timer"}, {Key: "phone_number", Value: ""}, {Key: "user_role", Value: "customer"},
			{Key: "date_joined", Value: time.Date(2019, 5, 1, 12, 0, 0, 0, time.UTC)}, {Key: "password", Value: "pbkdf2_sha256$x"},
		})
		testenv.Must(t, err, "insert old-shape user")
	}
	// A leftover claim of another (gone) user on one of the emails.
	testenv.Must(t, s.Claim(ctx, "old03@example.com", contract.NewID()), "leftover claim")
	wantByEmail(t, s, "old00@example.com", "")

	if err := s.CreateUser(ctx, user("old01@example.com")); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("registering an imported email before the backfill: %v", err)
	}
	wantByEmail(t, s, "old01@example.com", ids[1]) // repaired by the refusal

	n, err := s.BackfillEmailClaims(ctx)
	if err != nil || n != 29 {
		t.Fatalf("backfill: %d, %v; want 29 claims", n, err)
	}
	for i, id := range ids {
		wantByEmail(t, s, fmt.Sprintf("OLD%02d@example.com", i), id)
	}
	if n, err := s.BackfillEmailClaims(ctx); err != nil || n != 0 {
		t.Fatalf("backfill again: %d, %v; want nothing", n, err)
	}
}

// TestImportUsers: the bulk path claims and inserts many users; a taken
// email (before or within the batch) is ErrEmailTaken for that user only.
func TestImportUsers(t *testing.T) {
	t.Parallel()
	s, _, _ := clockedStore(t)
	ctx := context.Background()
	pre := user("pre@example.com")
	testenv.Must(t, s.CreateUser(ctx, pre), "create")
	batch := []auth.User{user("i1@example.com"), user("PRE@example.com"), user("i2@example.com"), user("I1@example.com")}
	res, err := s.ImportUsers(ctx, batch)
	testenv.Must(t, err, "import")
	for i, want := range []error{nil, auth.ErrEmailTaken, nil, auth.ErrEmailTaken} {
		if !errors.Is(res[i].Err, want) || (want == nil && res[i].Err != nil) {
			t.Errorf("user %d: %v, want %v", i, res[i].Err, want)
		}
	}
	wantByEmail(t, s, "i1@example.com", batch[0].ID)
	wantByEmail(t, s, "i2@example.com", batch[2].ID)
	wantByEmail(t, s, "pre@example.com", pre.ID)
}

// TestListUsers: the keyset listing pages in id order, by role.
func TestListUsers(t *testing.T) {
	t.Parallel()
	s, _, _ := clockedStore(t)
	ctx := context.Background()
	var customers []string
	for i := range 7 {
		u := user(fmt.Sprintf("l%d@example.com", i))
		if i%3 == 0 {
			u.Role = contract.RoleEmployee
		} else {
			customers = append(customers, u.ID)
		}
		testenv.Must(t, s.CreateUser(ctx, u), "create")
	}
	slices.Sort(customers)
	var got []string
	after := ""
	for {
		page, err := s.ListUsers(ctx, auth.ListQuery{Role: contract.RoleCustomer, After: after, Limit: 2})
		testenv.Must(t, err, "list")
		for _, u := range page {
			got = append(got, u.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(got) != fmt.Sprint(customers) {
		t.Fatalf("listed %v, want %v", got, customers)
	}
	all, err := s.ListUsers(ctx, auth.ListQuery{Limit: 100})
	if err != nil || len(all) != 7 {
		t.Fatalf("all: %d %v", len(all), err)
	}
}

// TestReleaseNeverDeletesASuccessor: a second registration that runs in
// the middle of the first one's replacement of a stale claim (after its
// last read, before its delete) cannot replace that claim itself (the
// release of a claim is claimed by insert), so the first one's delete
// never removes a successor's claim: one registration wins and the email
// finds it.
func TestReleaseNeverDeletesASuccessor(t *testing.T) {
	t.Parallel()
	s, db, c := clockedStore(t)
	ctx := context.Background()
	testenv.Must(t, s.Claim(ctx, "succ@example.com", contract.NewID()), "claim")
	c.pastGrace()
	first, second := user("succ@example.com"), user("succ@example.com")
	var hooked atomic.Bool
	var secondErr error
	s.SetBeforeDelete(func() {
		if !hooked.Swap(true) {
			secondErr = s.CreateUser(ctx, second)
		}
	})
	firstErr := s.CreateUser(ctx, first)
	s.SetBeforeDelete(nil)
	if firstErr != nil || !errors.Is(secondErr, auth.ErrEmailTaken) {
		t.Fatalf("first: %v, second: %v; want the first to win", firstErr, secondErr)
	}
	wantByEmail(t, s, "succ@example.com", first.ID)
	if got := claimOf(t, db, "succ@example.com"); got != first.ID {
		t.Fatalf("claim held by %s, want %s", got, first.ID)
	}
}
