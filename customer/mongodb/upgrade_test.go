package mongodb

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
)

// oldWorld is a database as the previous version left it: profiles with
// random ids and no alias or series, one document per service record.
type oldWorld struct {
	db       *mongo.Database
	profiles []customer.Customer
	recs     map[string][]serviceDoc // by customer id
	orphan   serviceDoc              // a record whose profile is gone
}

func writeOldWorld(t *testing.T) *oldWorld {
	t.Helper()
	ctx := context.Background()
	_, db := testenv.Mongo(t)
	w := &oldWorld{db: db, recs: map[string][]serviceDoc{}}
	for i := range 5 {
		p := profile(contract.NewID(), base.Add(time.Duration(i)*time.Minute))
		_, err := db.Collection(CustomersCollection).InsertOne(ctx, toCustomerDoc(p))
		testenv.Must(t, err, "old profile")
		w.profiles = append(w.profiles, p)
		for k := range i { // profile i has i records, the latest first in insertion order
			at := base.Add(time.Duration(i-k) * time.Hour)
			r := customer.ServiceRecord{ID: contract.NewID(), CustomerID: p.ID, ServiceType: "visit", PerformedAt: at, CreatedAt: at, RequestHash: "old"}
			key := "auto:" + r.ID
			switch k {
			case 0:
				key = "key:paid-" + p.ID[:4]
			case 1:
				key = "legacy:1"
			}
			d := toServiceDoc(r, key)
			_, err := db.Collection(ServicesCollection).InsertOne(ctx, d)
			testenv.Must(t, err, "old record")
			w.recs[p.ID] = append(w.recs[p.ID], d)
		}
	}
	gone := contract.NewID()
	w.orphan = toServiceDoc(customer.ServiceRecord{ID: contract.NewID(), CustomerID: gone, PerformedAt: base, CreatedAt: base}, "auto:x")
	_, err := db.Collection(ServicesCollection).InsertOne(ctx, w.orphan)
	testenv.Must(t, err, "orphan record")
	return w
}

// check verifies every profile, its figures and its history through the
// new read paths.
func (w *oldWorld) check(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	for i, p := range w.profiles {
		got, err := s.ByUserID(ctx, p.UserID)
		if err != nil || got.ID != p.ID {
			t.Fatalf("profile %d by user: %+v %v", i, got, err)
		}
		recs := w.recs[p.ID]
		if got.TotalServices != len(recs) {
			t.Errorf("profile %d: total %d, want %d", i, got.TotalServices, len(recs))
		}
		if len(recs) == 0 {
			if got.LastServiceDate != nil {
				t.Errorf("profile %d: last %v, want none", i, got.LastServiceDate)
			}
			continue
		}
		if got.LastServiceDate == nil || !got.LastServiceDate.Equal(recs[0].PerformedAt) {
			t.Errorf("profile %d: last %v, want %v", i, got.LastServiceDate, recs[0].PerformedAt)
		}
		page, err := s.Services(ctx, p.ID, 0, 100)
		testenv.Must(t, err, "services")
		if len(page) != len(recs) {
			t.Fatalf("profile %d: %d listed", i, len(page))
		}
		for k := range recs { // inserted latest first: newest first
			if page[k].ID != recs[k].ID || !page[k].PerformedAt.Equal(recs[k].PerformedAt) {
				t.Errorf("profile %d, record %d: %+v, want %s", i, k, page[k], recs[k].ID)
			}
		}
	}
}

// TestUpgradeFromThePreviousShape: New on the previous version's data
// aliases its profiles and converts its records, with their counts, dates
// and order; a retry of a request recorded before the upgrade finds its
// record; a second start changes nothing.
func TestUpgradeFromThePreviousShape(t *testing.T) {
	t.Parallel()
	w := writeOldWorld(t)
	ctx := context.Background()
	s, err := New(ctx, w.db)
	testenv.Must(t, err, "new on old data")
	w.check(t, s)

	// A retry of a keyed request made before the upgrade counts nothing.
	p := w.profiles[3]
	c, err := s.ByID(ctx, p.ID)
	testenv.Must(t, err, "read")
	r, created, err := s.AddService(ctx, c, customer.ServiceRecord{ID: contract.NewID(), CustomerID: p.ID, PerformedAt: base, CreatedAt: base, RequestHash: "old"}, "key:paid-"+p.ID[:4])
	if err != nil || created || r.ID != w.recs[p.ID][0].ID || r.RequestHash != "old" {
		t.Fatalf("retry after the upgrade: created %v, %v, %+v", created, err, r)
	}

	again, err := s.Upgrade(ctx)
	if err != nil || again != (UpgradeResult{Orphans: 1}) {
		t.Fatalf("second upgrade: %+v %v", again, err)
	}
	if _, err := New(ctx, w.db); err != nil {
		t.Fatalf("a restart: %v", err)
	}
	w.check(t, s)
	total := 1 // the orphan, left alone
	for _, recs := range w.recs {
		total += len(recs)
	}
	if n, _ := w.db.Collection(ServicesCollection).CountDocuments(ctx, bson.D{}); n != int64(total) {
		t.Fatalf("%d record documents, want %d", n, total)
	}
	if n, _ := w.db.Collection(AliasesCollection).CountDocuments(ctx, bson.D{}); n != int64(len(w.profiles)) {
		t.Fatalf("%d aliases, want %d", n, len(w.profiles))
	}
	if err := w.db.Collection(ServicesCollection).FindOne(ctx, byID(w.orphan.ID)).Err(); err != nil {
		t.Fatalf("the orphan record: %v", err)
	}
}

// TestUpgradeStoppedHalfWay: a conversion that stopped after a record's
// slot and before deleting its old document, and one that stopped after
// its key document only, are completed by the next start without counting
// anything twice; so are two starts at once.
func TestUpgradeStoppedHalfWay(t *testing.T) {
	t.Parallel()
	w := writeOldWorld(t)
	ctx := context.Background()
	p := w.profiles[4]
	recs := w.recs[p.ID]
	s := &Store{
		customers: w.db.Collection(CustomersCollection), aliases: w.db.Collection(AliasesCollection),
		services: w.db.Collection(ServicesCollection), keys: w.db.Collection(ServiceKeysCollection), hints: w.db.Collection(ServiceHintsCollection),
	}
	// recs[3] is the oldest: the conversion's first. It got its slot, and
	// its old document stayed.
	_, _, err := s.record(ctx, p.ID, p.ID, 1, fromServiceDoc(recs[3]), recs[3].Key, true)
	testenv.Must(t, err, "the first conversion's slot")
	// recs[2]'s conversion claimed its key and stopped.
	_, err = w.db.Collection(ServiceKeysCollection).InsertOne(ctx, keyDoc{ID: keyID(p.ID, recs[2].Key), From: 2})
	testenv.Must(t, err, "the second conversion's key")

	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := New(ctx, w.db); errs <- err }()
	}
	testenv.Must(t, errors.Join(<-errs, <-errs), "two starts at once")
	s2, err := New(ctx, w.db)
	testenv.Must(t, err, "a third start")
	w.check(t, s2)
	if n := slots(t, w.db, p.ID); n != int64(len(recs)) {
		t.Fatalf("%d record documents of profile 4, want %d", n, len(recs))
	}
}
