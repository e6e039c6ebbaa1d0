package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
)

// derived is a profile under the id the service gives a new profile.
func derived(at time.Time) customer.Customer {
	p := profile(contract.NewID(), at)
	p.ID = customer.ProfileID(p.UserID)
	return p
}

// read re-reads a profile as the service would before a write.
func read(t *testing.T, s *Store, id string) customer.Customer {
	t.Helper()
	c, err := s.ByID(context.Background(), id)
	testenv.Must(t, err, "read %s", id)
	return c
}

func svcRecord(c customer.Customer, at time.Time, hash string) customer.ServiceRecord {
	return customer.ServiceRecord{ID: contract.NewID(), CustomerID: c.ID, ServiceType: "visit", PerformedAt: at, CreatedAt: at, RecordedBy: "staff", RequestHash: hash}
}

// TestByUserIDDerivedAndAlias: a profile under its derived id is found by
// _id; one under another id (an import's, a test's) through the alias its
// Create wrote; both lose what names them when deleted.
func TestByUserIDDerivedAndAlias(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	d := derived(base)
	testenv.Must(t, s.Create(ctx, d), "create derived")
	l := profile(contract.NewID(), base)
	testenv.Must(t, s.Create(ctx, l), "create legacy id")
	aliases := db.Collection(AliasesCollection)
	for _, c := range []customer.Customer{d, l} {
		got, err := s.ByUserID(ctx, c.UserID)
		if err != nil || got.ID != c.ID || got.ServiceSeries == "" {
			t.Fatalf("by user id %s: %+v %v", c.UserID, got, err)
		}
	}
	if n, _ := aliases.CountDocuments(ctx, bson.D{}); n != 1 {
		t.Fatalf("%d aliases, want the legacy id's one", n)
	}
	if err := s.Create(ctx, derived(base)); err != nil {
		t.Fatalf("another user: %v", err)
	}
	again := d
	again.ID = contract.NewID()
	if err := s.Create(ctx, again); !errors.Is(err, customer.ErrProfileExists) {
		t.Fatalf("a second profile of a user: %v", err)
	}
	for _, c := range []customer.Customer{d, l} {
		testenv.Must(t, s.Delete(ctx, read(t, s, c.ID)), "delete")
		if _, err := s.ByUserID(ctx, c.UserID); !errors.Is(err, customer.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	}
	if n, _ := aliases.CountDocuments(ctx, bson.D{}); n != 0 {
		t.Fatalf("%d aliases left", n)
	}
}

// TestCreateHealsAMissingAlias: a profile with a legacy id and no alias (a
// replica of the previous version created it after this one started) is
// not found by user; the create it refuses gives it its alias.
func TestCreateHealsAMissingAlias(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	old := profile(contract.NewID(), base)
	_, err := db.Collection(CustomersCollection).InsertOne(ctx, toCustomerDoc(old))
	testenv.Must(t, err, "insert as the previous version")
	if _, err := s.ByUserID(ctx, old.UserID); !errors.Is(err, customer.ErrNotFound) {
		t.Fatalf("before: %v", err)
	}
	mine := old
	mine.ID = customer.ProfileID(old.UserID)
	if err := s.Create(ctx, mine); !errors.Is(err, customer.ErrProfileExists) {
		t.Fatalf("create: %v", err)
	}
	if got, err := s.ByUserID(ctx, old.UserID); err != nil || got.ID != old.ID {
		t.Fatalf("after: %+v %v", got, err)
	}
}

// addConcurrently runs the calls at once, each reading the profile first
// as the service does (so they start from different counts), and returns
// their results.
func addConcurrently(t *testing.T, s *Store, id string, recs []customer.ServiceRecord, keys []string) ([]customer.ServiceRecord, []bool) {
	t.Helper()
	got, created := make([]customer.ServiceRecord, len(recs)), make([]bool, len(recs))
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	for i := range recs {
		wg.Go(func() {
			c, err := s.ByID(context.Background(), id)
			if err != nil {
				errs[i] = err
				return
			}
			got[i], created[i], errs[i] = s.AddService(context.Background(), c, recs[i], keys[i])
		})
	}
	wg.Wait()
	testenv.Must(t, errors.Join(errs...), "add services")
	return got, created
}

// slots counts the documents of the services collection: one per record,
// nothing else.
func slots(t *testing.T, db *mongo.Database, customerID string) int64 {
	t.Helper()
	n, err := db.Collection(ServicesCollection).CountDocuments(context.Background(), bson.D{{Key: "customer_id", Value: customerID}})
	testenv.Must(t, err, "count records")
	return n
}

// TestOneKeyCountsOnce: 20 concurrent calls with one Idempotency-Key,
// among 20 unkeyed ones, record one service for the key, and all 20
// answer it; 19 say it was not created.
func TestOneKeyCountsOnce(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	c := derived(base)
	testenv.Must(t, s.Create(context.Background(), c), "create")
	var recs []customer.ServiceRecord
	var keys []string
	for range 20 {
		r := svcRecord(c, base, "")
		recs, keys = append(recs, svcRecord(c, base, "h"), r), append(keys, "key:once", "auto:"+r.ID)
	}
	got, created := addConcurrently(t, s, c.ID, recs, keys)
	n, id := 0, got[0].ID
	for i := 0; i < len(got); i += 2 {
		if created[i] {
			n++
		}
		if got[i].ID != id {
			t.Errorf("call %d answered record %s, call 0 %s", i, got[i].ID, id)
		}
	}
	if after := read(t, s, c.ID); n != 1 || after.TotalServices != 21 || slots(t, db, c.ID) != 21 {
		t.Fatalf("the key created %d times; total %d, %d records; want 1, 21, 21", n, after.TotalServices, slots(t, db, c.ID))
	}
}

// TestMixedIncrementsCount: unkeyed calls and three keys each sent ten
// times, all at once, count every unkeyed call and each key once; the
// last service date is the latest performed_at whatever the order.
func TestMixedIncrementsCount(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	c := derived(base)
	testenv.Must(t, s.Create(context.Background(), c), "create")
	var recs []customer.ServiceRecord
	var keys []string
	for i := range 30 {
		r := svcRecord(c, base.Add(time.Duration(i%7)*time.Hour), "")
		recs, keys = append(recs, r), append(keys, "auto:"+r.ID)
	}
	for k := range 3 {
		for range 10 {
			recs, keys = append(recs, svcRecord(c, base, fmt.Sprint(k))), append(keys, fmt.Sprint("key:k", k))
		}
	}
	addConcurrently(t, s, c.ID, recs, keys)
	got := read(t, s, c.ID)
	if got.TotalServices != 33 || slots(t, db, c.ID) != 33 || !got.LastServiceDate.Equal(base.Add(6*time.Hour)) {
		t.Fatalf("total %d, %d records, last %v; want 33, 33, %v", got.TotalServices, slots(t, db, c.ID), got.LastServiceDate, base.Add(6*time.Hour))
	}
	page, err := s.Services(context.Background(), c.ID, 0, 100)
	testenv.Must(t, err, "services")
	if len(page) != 33 {
		t.Fatalf("%d listed", len(page))
	}
	for i := 1; i < len(page); i++ {
		if page[i].PerformedAt.After(page[i-1].PerformedAt) {
			t.Fatalf("not newest first at %d: %v after %v", i, page[i].PerformedAt, page[i-1].PerformedAt)
		}
	}
}

// TestKeyAfterACrash: an attempt that stopped after claiming its key and
// before its slot is completed by its retry, once, even after other
// records took the slots it would have had.
func TestKeyAfterACrash(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	c := derived(base)
	testenv.Must(t, s.Create(ctx, c), "create")
	c = read(t, s, c.ID)
	// The first attempt: its key document, then nothing.
	_, err := db.Collection(ServiceKeysCollection).InsertOne(ctx, keyDoc{ID: keyID(c.ServiceSeries, "key:lost"), From: 1})
	testenv.Must(t, err, "the crashed attempt's key")
	for range 2 {
		r := svcRecord(c, base, "")
		_, _, err := s.AddService(ctx, read(t, s, c.ID), r, "auto:"+r.ID)
		testenv.Must(t, err, "another record")
	}
	r := svcRecord(c, base, "h")
	first, created, err := s.AddService(ctx, c, r, "key:lost")
	if err != nil || !created {
		t.Fatalf("the retry: created %v, %v", created, err)
	}
	again, created, err := s.AddService(ctx, read(t, s, c.ID), svcRecord(c, base, "h"), "key:lost")
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("the second retry: created %v, %v, record %s want %s", created, err, again.ID, first.ID)
	}
	if got := read(t, s, c.ID); got.TotalServices != 3 || slots(t, db, c.ID) != 3 {
		t.Fatalf("total %d, %d records; want 3", got.TotalServices, slots(t, db, c.ID))
	}
}

// TestHintOnlyShortensTheProbe: the count is the slots', whatever the
// hint says (missing, behind, ahead after a delete stopped half-way).
func TestHintOnlyShortensTheProbe(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	c := derived(base)
	testenv.Must(t, s.Create(ctx, c), "create")
	for i := range 11 {
		r := svcRecord(c, base.Add(time.Duration(i)*time.Minute), "")
		_, _, err := s.AddService(ctx, read(t, s, c.ID), r, "auto:"+r.ID)
		testenv.Must(t, err, "add")
	}
	c = read(t, s, c.ID)
	hints := db.Collection(ServiceHintsCollection)
	var h hintDoc
	testenv.Must(t, hints.FindOne(ctx, byID(c.ServiceSeries)).Decode(&h), "the hint")
	if h.N != 11 {
		t.Fatalf("hint %d after 11 records one after the other, want 11", h.N)
	}
	for _, n := range []int64{-1, 0, 1, 5, 10, 12, 40} {
		if n < 0 {
			_, err := hints.DeleteOne(ctx, byID(c.ServiceSeries))
			testenv.Must(t, err, "drop the hint")
		} else {
			_, err := hints.ReplaceOne(ctx, byID(c.ServiceSeries), hintDoc{ID: c.ServiceSeries, N: n}, options.Replace().SetUpsert(true))
			testenv.Must(t, err, "set the hint")
		}
		if got := read(t, s, c.ID); got.TotalServices != 11 || !got.LastServiceDate.Equal(base.Add(10*time.Minute)) {
			t.Errorf("hint %d: total %d, last %v", n, got.TotalServices, got.LastServiceDate)
		}
	}
}

// TestRecreatedProfileStartsFromZero: a profile deleted and created again
// has the same (derived) id but a new series: the old records, and one a
// request racing the delete inserted afterwards, are not counted.
func TestRecreatedProfileStartsFromZero(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	c := derived(base)
	testenv.Must(t, s.Create(ctx, c), "create")
	r := svcRecord(c, base, "")
	_, _, err := s.AddService(ctx, read(t, s, c.ID), r, "auto:"+r.ID)
	testenv.Must(t, err, "add")
	stale := read(t, s, c.ID)
	testenv.Must(t, s.Delete(ctx, stale), "delete")
	late := svcRecord(c, base, "")
	if _, _, err := s.AddService(ctx, stale, late, "auto:"+late.ID); err != nil {
		t.Fatalf("the racing increment: %v", err)
	}
	testenv.Must(t, s.Create(ctx, c), "create again")
	if got := read(t, s, c.ID); got.TotalServices != 0 || got.LastServiceDate != nil || got.ServiceSeries == stale.ServiceSeries {
		t.Fatalf("the new profile: total %d, last %v", got.TotalServices, got.LastServiceDate)
	}
}

// TestServicesPages: newest first by performed_at, ties newest recorded
// first, paged; through slot numbers while no record was back-dated, and
// through the whole history once one was.
func TestServicesPages(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	c := derived(base)
	testenv.Must(t, s.Create(ctx, c), "create")
	var ids []string // newest first
	add := func(at time.Time) {
		r := svcRecord(c, at, "")
		_, _, err := s.AddService(ctx, read(t, s, c.ID), r, "auto:"+r.ID)
		testenv.Must(t, err, "add")
		ids = append([]string{r.ID}, ids...)
	}
	for i := range 7 {
		add(base.Add(time.Duration(i/2) * time.Hour)) // pairs of equal dates
	}
	check := func(what string, want []string) {
		t.Helper()
		for _, pg := range []struct{ off, lim int }{{0, 3}, {3, 3}, {6, 3}, {0, 100}, {2, 1}, {7, 3}} {
			got, err := s.Services(ctx, c.ID, pg.off, pg.lim)
			testenv.Must(t, err, "page")
			w := want[min(pg.off, len(want)):min(pg.off+pg.lim, len(want))]
			if len(got) != len(w) {
				t.Fatalf("%s, page %+v: %d records, want %d", what, pg, len(got), len(w))
			}
			for i := range w {
				if got[i].ID != w[i] {
					t.Errorf("%s, page %+v: item %d is %s, want %s", what, pg, i, got[i].ID, w[i])
				}
			}
		}
	}
	check("in order", ids)
	// A back-dated record goes where its date puts it.
	r := svcRecord(c, base.Add(-time.Hour), "")
	_, _, err := s.AddService(ctx, read(t, s, c.ID), r, "auto:"+r.ID)
	testenv.Must(t, err, "back-dated")
	check("back-dated", append(ids, r.ID))
	if got := read(t, s, c.ID); got.TotalServices != 8 || !got.LastServiceDate.Equal(base.Add(3*time.Hour)) {
		t.Fatalf("total %d, last %v", got.TotalServices, got.LastServiceDate)
	}
}
