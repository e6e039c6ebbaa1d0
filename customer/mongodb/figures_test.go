package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/mongodb"
	"github.com/acme/customer-platform/internal/testenv"
)

// errStopped is the test hook's: the writer stopped at that point.
var errStopped = errors.New("the writer stopped here")

// point is a place a write can stop: before one of its writes (not
// applied) or right after it (applied, the answer lost).
type point struct {
	step  string
	after bool
	nth   int // the hook's nth call, from 0
}

func (p point) String() string {
	if p.after {
		return fmt.Sprintf("#%d after %s", p.nth, p.step)
	}
	return fmt.Sprintf("#%d before %s", p.nth, p.step)
}

// figuresWrite is a write whose crash points the tests enumerate: seed
// prepares the profile it writes (stored or not), run does it, done says
// whether its effect is in the stored state (all of it), undone whether
// none of it is.
type figuresWrite struct {
	name   string
	seed   func(t *testing.T, s *Store) customer.Customer
	run    func(ctx context.Context, s *Store, c customer.Customer) error
	done   func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool
	undone func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool
}

// stored creates c with n service records.
func stored(t *testing.T, s *Store, c customer.Customer, n int) customer.Customer {
	t.Helper()
	ctx := context.Background()
	testenv.Must(t, s.Create(ctx, c), "seed")
	for i := range n {
		_, _, err := s.AddService(ctx, read(t, s, c.ID), svcRecord(c, base, "h"), fmt.Sprint("auto:", i))
		testenv.Must(t, err, "seed a record")
	}
	return read(t, s, c.ID)
}

func legacy(at time.Time) customer.Customer { return profile(contract.NewID(), at) }

// profileIs reads c's stored profile (nil: none) and its alias' state.
func profileIs(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) (*customerDoc, bool) {
	t.Helper()
	d, err := s.profileDoc(context.Background(), c.ID)
	if errors.Is(err, customer.ErrNotFound) {
		d = customerDoc{}
	} else {
		testenv.Must(t, err, "read profile")
	}
	n, err := db.Collection(AliasesCollection).CountDocuments(context.Background(), bson.D{{Key: "_id", Value: c.UserID}})
	testenv.Must(t, err, "read alias")
	if d.ID == "" {
		return nil, n > 0
	}
	return &d, n > 0
}

func wantAlias(c customer.Customer) bool { return c.ID != customer.ProfileID(c.UserID) }

var (
	canada = "Canada"
	llc    = "llc"
	salem  = "Salem"
	yes    = true
)

func figuresWrites() []figuresWrite {
	exists := func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool {
		d, alias := profileIs(t, s, db, c)
		return d != nil && alias == wantAlias(c)
	}
	gone := func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool {
		d, alias := profileIs(t, s, db, c)
		return d == nil && !alias && slots(t, db, c.ID) == 0
	}
	records := func(n int64) func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool {
		return func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool {
			got, err := s.CountServices(context.Background(), c.ID)
			testenv.Must(t, err, "count records")
			return int64(got) == n
		}
	}
	var writes []figuresWrite
	for _, kind := range []struct {
		name string
		new  func(time.Time) customer.Customer
	}{{"", derived}, {" (a legacy id)", legacy}} {
		writes = append(writes,
			figuresWrite{
				name: "create" + kind.name,
				seed: func(t *testing.T, s *Store) customer.Customer { return kind.new(base) },
				run:  func(ctx context.Context, s *Store, c customer.Customer) error { return s.Create(ctx, c) },
				done: exists,
				undone: func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool {
					d, _ := profileIs(t, s, db, c)
					return d == nil
				},
			},
			figuresWrite{
				name: "delete" + kind.name,
				seed: func(t *testing.T, s *Store) customer.Customer { return stored(t, s, kind.new(base), 3) },
				run:  func(ctx context.Context, s *Store, c customer.Customer) error { return s.Delete(ctx, c) },
				done: gone,
				undone: func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool {
					return exists(t, s, db, c) && records(3)(t, s, db, c)
				},
			},
		)
	}
	changed := func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) (country, city bool) {
		d, _ := profileIs(t, s, db, c)
		return d != nil && d.Country == canada && d.IsVerified && d.BusinessType == llc, d != nil && d.City == salem
	}
	writes = append(writes,
		figuresWrite{
			name: "update of the figures' fields",
			seed: func(t *testing.T, s *Store) customer.Customer { return stored(t, s, derived(base), 1) },
			run: func(ctx context.Context, s *Store, c customer.Customer) error {
				_, err := s.Update(ctx, c, customer.Changes{Country: &canada, City: &salem, IsVerified: &yes, BusinessType: &llc}, base.Add(time.Hour))
				return err
			},
			done: func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool {
				country, city := changed(t, s, db, c)
				return country && city
			},
			undone: func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool {
				country, city := changed(t, s, db, c)
				return !country && !city
			},
		},
		figuresWrite{
			name: "update of other fields",
			seed: func(t *testing.T, s *Store) customer.Customer { return stored(t, s, derived(base), 1) },
			run: func(ctx context.Context, s *Store, c customer.Customer) error {
				_, err := s.Update(ctx, c, customer.Changes{City: &salem}, base.Add(time.Hour))
				return err
			},
			done: func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool {
				_, city := changed(t, s, db, c)
				return city
			},
			undone: func(t *testing.T, s *Store, db *mongo.Database, c customer.Customer) bool {
				_, city := changed(t, s, db, c)
				return !city
			},
		},
		figuresWrite{
			name: "service record",
			seed: func(t *testing.T, s *Store) customer.Customer { return stored(t, s, derived(base), 1) },
			run: func(ctx context.Context, s *Store, c customer.Customer) error {
				_, _, err := s.AddService(ctx, c, svcRecord(c, base, "x"), "auto:x")
				return err
			},
			done:   records(2),
			undone: records(1),
		},
		figuresWrite{
			name: "service record with a key",
			seed: func(t *testing.T, s *Store) customer.Customer { return stored(t, s, derived(base), 1) },
			run: func(ctx context.Context, s *Store, c customer.Customer) error {
				_, _, err := s.AddService(ctx, c, svcRecord(c, base, "k"), "key:k")
				return err
			},
			done:   records(2),
			undone: records(1),
		},
	)
	return writes
}

// stepsOf runs w once on a fresh store and lists the hook's calls.
func stepsOf(t *testing.T, w figuresWrite) []point {
	t.Helper()
	s, _ := newStore(t)
	c := w.seed(t, s)
	var pts []point
	s.hook = func(step string, after bool) error {
		pts = append(pts, point{step: step, after: after, nth: len(pts)})
		return nil
	}
	testenv.Must(t, w.run(context.Background(), s, c), "%s", w.name)
	s.hook = nil
	return pts
}

// laterReplica is a new store on db whose clock is past every intent's
// lease, as a replica that starts after the writer stopped.
func laterReplica(t *testing.T, db *mongo.Database) *Store {
	t.Helper()
	s, err := New(context.Background(), db)
	testenv.Must(t, err, "a later replica")
	s.now = func() time.Time { return time.Now().Add(2 * lease) }
	return s
}

// checkFigures asserts the invariants of the figures over the whole
// state: no write in flight, and the last slot exact and equal to what a
// count of the collections gives.
func checkFigures(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	n, err := s.pending.CountDocuments(ctx, bson.D{})
	testenv.Must(t, err, "count intents")
	if n != 0 {
		t.Errorf("%d intents left", n)
	}
	c, err := s.figures(ctx)
	testenv.Must(t, err, "figures")
	counted, err := s.scanFigures(ctx, s.now())
	testenv.Must(t, err, "count")
	if !c.exact() {
		t.Fatalf("figures not exact: %+v", c[0])
	}
	if had := c.sum().figures(s.now()); !had.equal(counted, s.now()) {
		t.Errorf("figures %+v, the collections count %+v", had, counted)
	}
}

// TestEveryStopOfAWriteKeepsTheFiguresExact enumerates every point where
// each write that changes the figures can stop (before each of its
// writes, or right after it with the answer lost), then lets a later
// replica recover, by its reconciler, or by writing or deleting the same
// profile first, and checks: the write is all done or all undone, done
// when it answered success (unless deleted since), and the figures equal
// a count of the collections with no intent left.
func TestEveryStopOfAWriteKeepsTheFiguresExact(t *testing.T) {
	t.Parallel()
	for _, w := range figuresWrites() {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			pts := stepsOf(t, w)
			if len(pts) < 4 {
				t.Fatalf("only %d points: %v", len(pts), pts)
			}
			for _, pt := range pts {
				for _, recovery := range []string{"reconciler", "next write", "next delete"} {
					t.Run(pt.String()+"/"+recovery, func(t *testing.T) {
						s, db := newStore(t)
						ctx := context.Background()
						c := w.seed(t, s)
						calls := 0
						s.hook = func(step string, after bool) error {
							defer func() { calls++ }()
							if calls == pt.nth {
								return errStopped
							}
							return nil
						}
						err := w.run(ctx, s, c)
						s.hook = nil
						if err != nil && !errors.Is(err, errStopped) {
							t.Fatalf("%s: %v", w.name, err)
						}
						r := laterReplica(t, db)
						switch recovery {
						case "next write":
							if _, err := r.Update(ctx, c, customer.Changes{PreferredContactMethod: ptr("sms")}, base.Add(2*time.Hour)); err != nil && !errors.Is(err, customer.ErrNotFound) {
								t.Fatalf("next write: %v", err)
							}
						case "next delete": // it erases the write's effect: only the figures are checked
							if err := r.Delete(ctx, c); err != nil && !errors.Is(err, customer.ErrNotFound) {
								t.Fatalf("next delete: %v", err)
							}
							_, err := r.RecoverPending(ctx)
							testenv.Must(t, err, "recover")
							checkFigures(t, r)
							return
						}
						_, err2 := r.RecoverPending(ctx)
						testenv.Must(t, err2, "recover")
						isDone, isUndone := w.done(t, r, db, c), w.undone(t, r, db, c)
						if isDone == isUndone {
							t.Fatalf("half done: done %v, undone %v", isDone, isUndone)
						}
						if err == nil && !isDone {
							t.Fatal("answered success, then undone")
						}
						checkFigures(t, r)
					})
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestConcurrentWritesKeepTheFiguresExact: creates (a deleted profile's
// again too), updates of the figures' fields, deletes and service
// records, many at once and several on one profile, leave the figures
// equal to a count of the collections, without a recount.
func TestConcurrentWritesKeepTheFiguresExact(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	countries := []string{"USA", "Canada", "France"}
	cs := make([]customer.Customer, 12)
	for i := range cs {
		cs[i] = stored(t, s, derived(base.Add(-time.Duration(i)*24*time.Hour)), 1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i, c := range cs {
		for j := range 4 {
			wg.Go(func() {
				var err error
				switch (i + j) % 4 {
				case 0:
					country, verified := countries[(i+j)%3], j%2 == 0
					_, err = s.Update(ctx, c, customer.Changes{Country: &country, IsVerified: &verified}, base)
				case 1:
					_, _, err = s.AddService(ctx, c, svcRecord(c, base, "c"), fmt.Sprint("auto:", j))
				case 2:
					bt := []string{"llc", "individual", ""}[j%3]
					_, err = s.Update(ctx, c, customer.Changes{BusinessType: &bt}, base)
				case 3:
					if i%3 == 0 {
						err = s.Delete(ctx, c)
					} else {
						err = s.Create(ctx, derived(base))
					}
				}
				if err != nil && !errors.Is(err, customer.ErrNotFound) {
					errs <- err
				}
			})
		}
		if i%3 == 0 { // the profile deleted above, created again meanwhile
			wg.Go(func() {
				again := derived(base)
				again.ID, again.UserID = c.ID, c.UserID
				if err := s.Create(ctx, again); err != nil && !errors.Is(err, customer.ErrProfileExists) {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkFigures(t, s)
}

// TestStatsAreReadFromTheCounters: with exact figures, Stats answers
// from the last slot, without reading the collections; when an import
// marks them inexact it counts from the collections until a recount.
func TestStatsAreReadFromTheCounters(t *testing.T) {
	t.Parallel()
	rec, db, s := newRecordedStore(t)
	ctx := context.Background()
	now := time.Now()
	for i, country := range []string{"USA", "USA", "France"} {
		c := derived(now.Add(-time.Duration(i*20) * 24 * time.Hour))
		c.Country, c.IsVerified, c.BusinessType = country, i == 0, "llc"
		stored(t, s, c, i)
	}
	rec.Reset()
	st, err := s.Stats(ctx, now.Add(-30*24*time.Hour))
	testenv.Must(t, err, "stats")
	want := customer.Stats{TotalCustomers: 3, VerifiedCustomers: 1, BusinessCustomers: 3, TotalServices: 3, NewLast30Days: 2, CustomersByCountry: map[string]int{"USA": 2, "France": 1}}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	n, err := s.Count(ctx, customer.Filter{})
	if err != nil || n != 3 {
		t.Fatalf("count %d, %v", n, err)
	}
	rec.CheckIDOnly(t, idOnlyCollections...)

	_, err = s.ImportProfiles(ctx, []customer.Customer{{UserID: contract.NewID(), Address: customer.Address{Country: "Spain"}, CustomerSince: now, NotificationPreferences: customer.DefaultNotificationPreferences()}}, now)
	testenv.Must(t, err, "import")
	if c, err := s.figures(ctx); err != nil || c.exact() {
		t.Fatal("exact after an import that did not count")
	}
	if st, _ := s.Stats(ctx, now.Add(-30*24*time.Hour)); st.TotalCustomers != 4 || st.CustomersByCountry["Spain"] != 1 {
		t.Fatalf("stats during the import's inexact figures: %+v", st)
	}
	r, err := New(ctx, db) // a start leaves it to the reconciler
	testenv.Must(t, err, "restart")
	if c, err := r.figures(ctx); err != nil || c.exact() {
		t.Fatalf("a start recounted figures that were there: %v", err)
	}
	_, err = r.RecountWhenQuiet(ctx, 3)
	testenv.Must(t, err, "the reconciler's recount")
	checkFigures(t, r)
}

// TestRecountRefusesWhileWritesAreInFlight: a recount that overlaps a
// write in flight (an intent before or after its read) or a change
// counted during it changes nothing; one without corrects the figures
// and reports what they were.
func TestRecountRefusesWhileWritesAreInFlight(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	c := stored(t, s, derived(base), 0)
	p := pendingDoc{ID: c.ID, Change: newChange(opUpdate), Op: opUpdate, CustomerID: c.ID, Set: bson.M{"city": "Salem"}}
	testenv.Must(t, s.lock(ctx, &p), "lock")
	if _, err := s.Recount(ctx, s.now()); !errors.Is(err, ErrRecountBusy) {
		t.Fatalf("recount with a write in flight: %v", err)
	}
	s.release(ctx, p)

	// A profile written behind the counters' back (a writer that outlived
	// its lease): the check corrects the figures and reports the old ones.
	_, err := db.Collection(CustomersCollection).InsertOne(ctx, toCustomerDoc(derived(base)))
	testenv.Must(t, err, "a write the figures do not know")
	was, err := s.Recount(ctx, s.now())
	testenv.Must(t, err, "recount")
	if was == nil || was.TotalCustomers != 1 {
		t.Fatalf("reported %+v", was)
	}
	checkFigures(t, s)
	if was, err := s.Recount(ctx, s.now()); was != nil || err != nil {
		t.Fatalf("a second recount: %+v, %v", was, err)
	}

	// A bulk write that does not count (a restore): no recount while it
	// writes, the figures not exact after it, and Stats counts it.
	testenv.Must(t, s.Uncounted(ctx, func(ctx context.Context) error {
		if _, err := s.Recount(ctx, s.now()); !errors.Is(err, ErrRecountBusy) {
			t.Errorf("recount during a bulk write: %v", err)
		}
		_, err := db.Collection(CustomersCollection).InsertOne(ctx, toCustomerDoc(derived(base)))
		return err
	}), "a bulk write")
	if c, err := s.figures(ctx); err != nil || c.exact() {
		t.Fatalf("exact after a bulk write that did not count: %v", err)
	}
	if n, err := s.pending.CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Fatalf("%d intents left after the bulk write (%v)", n, err)
	}
	if st, err := s.Stats(ctx, s.now()); err != nil || st.TotalCustomers != 3 {
		t.Fatalf("stats after the bulk write: %+v, %v", st, err)
	}
	_, err = s.Recount(ctx, s.now())
	testenv.Must(t, err, "recount after it")
	checkFigures(t, s)
}

// TestAWriteWaitsForTheProfilesLock: a second write of a profile waits
// while the first holds its intent, and fails with ErrBusy past
// lockWait; a stopped writer's expired intent is finished, not waited on.
func TestAWriteWaitsForTheProfilesLock(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	c := stored(t, s, derived(base), 0)
	// A live writer's intent: its lease runs past the wait.
	p := pendingDoc{ID: c.ID, Change: newChange(opUpdate), Op: opUpdate, CustomerID: c.ID, Expires: time.Now().Add(time.Hour)}
	_, err := s.pending.InsertOne(ctx, p)
	testenv.Must(t, err, "a live writer's intent")
	clock := time.Now()
	var mu sync.Mutex
	s.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(100 * time.Millisecond)
		return clock
	}
	tries := 0
	s.hook = func(step string, after bool) error {
		if step == "intent" && !after {
			tries++
		}
		return nil
	}
	start := s.now()
	if _, err := s.Update(ctx, c, customer.Changes{City: &salem}, base); !errors.Is(err, customer.ErrBusy) {
		t.Fatalf("a write past the lock's wait: %v", err)
	}
	if waited := s.now().Sub(start); tries < 3 || waited < lockWait {
		t.Fatalf("gave up after %d tries and %v, want several over %v", tries, waited, lockWait)
	}
	s.hook = nil
	if held, err := s.pendingDoc(ctx, c.ID); err != nil || held == nil || held.Change != p.Change {
		t.Fatalf("the holder's intent is gone: %+v, %v", held, err)
	}
	s.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := s.Update(ctx, c, customer.Changes{City: &salem}, base); err != nil {
		t.Fatalf("a write after the holder's lease: %v", err)
	}
	checkFigures(t, s)
}

// TestOneFinisherAtATime: two replicas find the same expired intent (a
// delete that stopped after its plan). While the first finishes it, the
// second neither replays it nor lets a new write of the profile begin, so
// the first cannot delete the profile a user created again meanwhile.
func TestOneFinisherAtATime(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	c := stored(t, s, derived(base), 2)
	s.hook = func(step string, after bool) error {
		if step == "count" {
			return errStopped
		}
		return nil
	}
	if err := s.Delete(ctx, c); !errors.Is(err, errStopped) {
		t.Fatalf("delete: %v", err)
	}
	s.hook = nil

	b := laterReplica(t, db)
	blocked, unblock := make(chan struct{}), make(chan struct{})
	b.hook = func(step string, after bool) error {
		if step == "profile" && !after {
			close(blocked)
			<-unblock
		}
		return nil
	}
	bDone := make(chan error, 1)
	go func() { _, err := b.RecoverPending(ctx); bDone <- err }()
	<-blocked

	a := laterReplica(t, db)
	if n, err := a.RecoverPending(ctx); n != 0 || err != nil {
		t.Fatalf("a second finisher finished %d: %v", n, err)
	}
	again := derived(base)
	again.UserID, again.ID = c.UserID, c.ID
	created := make(chan error, 1)
	go func() { created <- a.Create(ctx, again) }()
	select {
	case err := <-created:
		t.Fatalf("a create began while the delete was being finished: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(unblock)
	testenv.Must(t, <-bDone, "the first finisher")
	testenv.Must(t, <-created, "the create after it")
	if d, _ := profileIs(t, a, db, again); d == nil {
		t.Fatal("the profile created again is gone")
	}
	checkFigures(t, a)
}

// TestRecountSeesAWriteInsideItsRead: a write that counts after the
// recount read the figures and writes while it reads the profiles makes
// the recount refuse, instead of "correcting" the figures with a count
// that missed it.
func TestRecountSeesAWriteInsideItsRead(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	c := stored(t, s, derived(base), 0)
	w := laterReplica(t, db)
	w.now = time.Now
	counted, write, written := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	w.hook = func(step string, after bool) error {
		if step == "write" && !after {
			close(counted)
			<-write
		}
		return nil
	}
	s.hook = func(step string, after bool) error {
		switch step {
		case "recount: checked":
			go func() { _, err := w.Update(ctx, c, customer.Changes{Country: &canada}, base); written <- err }()
			<-counted
		case "recount: read":
			close(write)
			testenv.Must(t, <-written, "the write")
		}
		return nil
	}
	if _, err := s.Recount(ctx, s.now()); !errors.Is(err, ErrRecountBusy) {
		t.Fatalf("recount around a write: %v", err)
	}
	s.hook = nil
	checkFigures(t, s)
}

// TestAChangeIsCountedOnceFromAStaleReplica: a change counted again by a
// replica that has not seen its slot (a retry, a recovery) adds nothing,
// whether its insert meets the slot that holds the change or a free slot
// after it (the change's unique index refuses it).
func TestAChangeIsCountedOnceFromAStaleReplica(t *testing.T) {
	t.Parallel()
	a, db := newStore(t)
	ctx := context.Background()
	b, err := New(ctx, db)
	testenv.Must(t, err, "second replica")
	x := change{id: "test/x", services: 1}
	k := stripeOf(x.id)
	inStripe := func(name string, services int64) change {
		c := change{id: "test/" + name, services: services}
		for i := 0; stripeOf(c.id) != k; i++ {
			c.id = fmt.Sprint("test/", name, i)
		}
		return c
	}
	w, y := inStripe("w", 100), inStripe("y", 10)
	testenv.Must(t, b.countChange(ctx, w, b.now()), "b counts w: the last slot it knows")
	testenv.Must(t, a.countChange(ctx, x, a.now()), "count x")
	testenv.Must(t, b.countChange(ctx, x, b.now()), "count x from a replica behind it") // its insert meets x's slot
	testenv.Must(t, a.countChange(ctx, y, a.now()), "count y")
	_, err = b.head(ctx, k)
	testenv.Must(t, err, "b sees y")
	testenv.Must(t, b.countChange(ctx, x, b.now()), "count x again, past it") // a free slot: the index refuses
	c, err := a.figures(ctx)
	testenv.Must(t, err, "figures")
	if got := c.sum().services; got != 111 {
		t.Fatalf("services %d, want 111 (w, x and y once each)", got)
	}
}

// TestACountFromFarBehindSearches: a replica whose last seen slot is many
// slots behind (others counted meanwhile) finds the last one by a
// galloping search, not slot by slot.
func TestACountFromFarBehindSearches(t *testing.T) {
	t.Parallel()
	rec, db, a := newRecordedStore(t)
	ctx := context.Background()
	b, err := New(ctx, db)
	testenv.Must(t, err, "second replica")
	id := func(i int) string {
		for j := 0; ; j++ {
			if x := fmt.Sprint("test/", i, "/", j); stripeOf(x) == 0 {
				return x
			}
		}
	}
	testenv.Must(t, a.countChange(ctx, change{id: id(0), services: 1}, a.now()), "a counts")
	const others = 300
	for i := 1; i <= others; i++ {
		testenv.Must(t, b.countChange(ctx, change{id: id(i), services: 1}, b.now()), "b counts")
	}
	rec.Reset()
	testenv.Must(t, a.countChange(ctx, change{id: id(others + 1), services: 1}, a.now()), "a counts again")
	if n := len(rec.Queries()); n > 40 {
		t.Fatalf("%d queries to count one change %d slots behind", n, others)
	}
	c, err := a.figures(ctx)
	testenv.Must(t, err, "figures")
	if got := c.sum().services; got != others+2 {
		t.Fatalf("services %d, want %d", got, others+2)
	}
}

// TestSweepKeepsTheFiguresAndWhatANewReplicaStartsFrom: the hourly sweep
// deletes the old slots of every stripe but the last keepSlots, records
// each stripe's head, and a replica started afterwards reads the same
// figures from those heads.
func TestSweepKeepsTheFiguresAndWhatANewReplicaStartsFrom(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	counted := 0
	for i := 0; counted < 2*(keepSlots+60); i++ {
		id := fmt.Sprint("test/", i)
		if k := stripeOf(id); k != 0 && k != 1 {
			continue
		}
		testenv.Must(t, s.countChange(ctx, change{id: id, services: 1}, s.now()), "count")
		counted++
	}
	before, err := s.figures(ctx)
	testenv.Must(t, err, "figures")
	s.now = func() time.Time { return time.Now().Add(2 * keepFor) }
	testenv.Must(t, s.SweepFigures(ctx, s.now()), "sweep")
	for k := range 2 {
		if before[k].N <= keepSlots+1 {
			t.Fatalf("stripe %d has only %d slots: nothing to sweep", k, before[k].N)
		}
		if d, err := s.figureSlot(ctx, k, 1); err != nil || d != nil {
			t.Errorf("stripe %d: its first slot survived the sweep (%v)", k, err)
		}
		h, err := mongodb.FindByID[headDoc](ctx, s.stats, headID(k))
		if err != nil || h == nil || h.Head != before[k].N {
			t.Errorf("stripe %d: head %+v (%v), want %d", k, h, err, before[k].N)
		}
	}
	r, err := New(ctx, db)
	testenv.Must(t, err, "a replica started after the sweep")
	after, err := r.figures(ctx)
	testenv.Must(t, err, "its figures")
	if got, want := after.sum().services, before.sum().services; got != want || !after.same(before) {
		t.Fatalf("services %d after the sweep, %d before", got, want)
	}
}

// TestALongBulkWriteKeepsAndEndsItsIntent: a bulk write that outlasts the
// lease keeps its intent by renewing it (no recount meanwhile), and
// deletes it when it ends.
func TestALongBulkWriteKeepsAndEndsItsIntent(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	var ahead atomic.Int64 // how far the store's clock runs ahead
	s.now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	testenv.Must(t, s.Uncounted(ctx, func(ctx context.Context) error {
		time.Sleep(lease/4 + 250*time.Millisecond) // one renewal
		ahead.Store(int64(3 * time.Second))        // the first lease all but over, the renewed one not
		if _, err := s.Recount(ctx, s.now()); !errors.Is(err, ErrRecountBusy) {
			t.Errorf("recount during the bulk write: %v", err)
		}
		return nil
	}), "a long bulk write")
	if n, err := s.pending.CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Fatalf("%d intents left after the bulk write (%v)", n, err)
	}
}
