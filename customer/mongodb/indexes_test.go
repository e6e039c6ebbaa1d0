package mongodb

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/indexcheck"
)

// idOnlyCollections are the collections the hot paths read by _id only.
// The intents' collection is not one of them: a delete reads the service
// records in flight there ({op, series}); it holds only the writes in
// flight, so that read costs what is in flight, whatever is stored (and
// its index serves it on MongoDB).
var idOnlyCollections = []string{CustomersCollection, AliasesCollection, ServicesCollection, ServiceKeysCollection, ServiceHintsCollection, StatsCollection}

// hotPath drives every operation of the service's hot paths (docs/indexes.md):
// create, read by id and by user (derived id, alias, none), update,
// increments with and without a key and a retry, the history, delete, and
// the migration tool's reads by user.
func hotPath(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	d := derived(base)
	testenv.Must(t, s.Create(ctx, d), "create")
	l := profile(contract.NewID(), base)
	testenv.Must(t, s.Create(ctx, l), "create with a legacy id")
	for _, c := range []customer.Customer{d, l} {
		got, err := s.ByUserID(ctx, c.UserID)
		testenv.Must(t, err, "by user")
		city := "Salem"
		got, err = s.Update(ctx, got, customer.Changes{City: &city}, base.Add(time.Minute))
		testenv.Must(t, err, "update")
		r := svcRecord(got, base, "h")
		_, _, err = s.AddService(ctx, got, r, "auto:"+r.ID)
		testenv.Must(t, err, "increment")
		got, err = s.ByID(ctx, c.ID)
		testenv.Must(t, err, "by id")
		for range 2 {
			_, _, err = s.AddService(ctx, got, svcRecord(got, base, "k"), "key:k")
			testenv.Must(t, err, "keyed increment")
		}
		_, err = s.CountServices(ctx, c.ID)
		testenv.Must(t, err, "count services")
		_, err = s.Services(ctx, c.ID, 0, 20)
		testenv.Must(t, err, "services")
	}
	_, err := s.ProfilesByUserIDs(ctx, []string{d.UserID, l.UserID, contract.NewID()})
	testenv.Must(t, err, "profiles by user ids")
	if _, err := s.ByUserID(ctx, contract.NewID()); err == nil {
		t.Fatal("a user without a profile has one")
	}
	for _, c := range []customer.Customer{d, l} {
		got, err := s.ByUserID(ctx, c.UserID)
		testenv.Must(t, err, "by user")
		testenv.Must(t, s.Delete(ctx, got), "delete")
	}
	imp := []customer.Customer{{UserID: contract.NewID(), NotificationPreferences: customer.DefaultNotificationPreferences()}}
	imp = append(imp, imp[0])
	imp[1].UserID, imp[1].ID = contract.NewID(), contract.NewID()
	_, err = s.ImportProfiles(ctx, imp, base)
	testenv.Must(t, err, "import")
}

func newRecordedStore(t *testing.T) (*indexcheck.Recorder, *mongo.Database, *Store) {
	t.Helper()
	rec, db := indexcheck.Connect(t)
	s, err := New(context.Background(), db)
	testenv.Must(t, err, "new store")
	return rec, db, s
}

// TestHotPathsAreIDLookups: every query of the hot paths is a lone _id
// equality, so its cost does not grow with the data on FerretDB (and is
// the _id index on MongoDB).
func TestHotPathsAreIDLookups(t *testing.T) {
	t.Parallel()
	rec, _, s := newRecordedStore(t)
	rec.Reset()
	hotPath(t, s)
	rec.CheckIDOnly(t, idOnlyCollections...)
}

// TestEveryQueryIsIndexed: every query the store sends, the staff's and
// the start's included, is served by an index on MongoDB, except the
// listed scans.
func TestEveryQueryIsIndexed(t *testing.T) {
	t.Parallel()
	rec, db, s := newRecordedStore(t)
	ctx := context.Background()
	hotPath(t, s)
	// A create refused over a profile without its alias (healAlias).
	old := profile(contract.NewID(), base)
	_, err := db.Collection(CustomersCollection).InsertOne(ctx, toCustomerDoc(old))
	testenv.Must(t, err, "a profile of the previous version")
	old.ID = customer.ProfileID(old.UserID)
	if err := s.Create(ctx, old); err == nil {
		t.Fatal("a second profile")
	}
	// The staff's and the tools' reads.
	yes := true
	for _, f := range []customer.Filter{{}, {City: "Salem"}, {State: "IL"}, {Country: "USA"}, {BusinessType: "llc"}, {IsVerified: &yes}, {UserID: old.UserID}, {Search: "main"}} {
		_, err := s.Count(ctx, f)
		testenv.Must(t, err, "count")
		_, err = s.List(ctx, f, 0, 10)
		testenv.Must(t, err, "list")
	}
	_, err = s.Stats(ctx, base)
	testenv.Must(t, err, "stats")
	testenv.Must(t, s.EachProfileUserID(ctx, func(string) error { return nil }), "each user id")
	testenv.Must(t, s.EachProfileRef(ctx, 10, func([]ProfileRef) error { return nil }), "each ref")
	_, err = s.DuplicateUserIDs(ctx)
	testenv.Must(t, err, "duplicates")
	_, err = New(ctx, db) // the start's upgrade
	testenv.Must(t, err, "a restart")

	// countDocuments is an aggregate ($match, $group) on the wire.
	rec.CheckIndexed(t, db,
		indexcheck.Exempt{Collection: CustomersCollection, Command: "aggregate", Fields: []string{}, Reason: "the migration tool's duplicate check"},
		indexcheck.Exempt{Collection: CustomersCollection, Command: "find", Fields: []string{}, Reason: "staff: the unfiltered list (sorted on the created_at index on MongoDB); the figures' recount; the start's alias backfill; the migration tool's EachProfileUserID"},
		indexcheck.Exempt{Collection: CustomersCollection, Command: "aggregate", Fields: []string{"company_name", "postal_code", "street_address"}, Reason: "staff: the list's free-text search (count)"},
		indexcheck.Exempt{Collection: CustomersCollection, Command: "find", Fields: []string{"company_name", "postal_code", "street_address"}, Reason: "staff: the list's free-text search"},
		indexcheck.Exempt{Collection: ServicesCollection, Command: "aggregate", Fields: []string{}, Reason: "the figures' recount of total_services"},
		indexcheck.Exempt{Collection: ServicesCollection, Command: "find", Fields: []string{"series"}, Reason: "the start's conversion of records of the previous shape"},
		indexcheck.Exempt{Collection: AliasesCollection, Command: "find", Fields: []string{}, Reason: "the start's alias backfill"},
		indexcheck.Exempt{Collection: PendingCollection, Command: "aggregate", Fields: []string{}, Reason: "the recount's check for writes in flight (the collection holds only those)"},
	)
}
