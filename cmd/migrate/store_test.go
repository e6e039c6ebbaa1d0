package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/customer"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
)

// TestImportProfiles checks the bulk upsert of customer/mongodb/import.go on
// the embedded FerretDB: inserts, then a re-run that updates only the
// migrated fields, in bulk writes larger than FerretDB's connection pool.
func TestImportProfiles(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded database: not in -short")
	}
	t.Parallel()
	ctx := context.Background()
	_, db := testenv.Mongo(t)
	store, err := custmongo.New(ctx, db)
	testenv.Must(t, err, "open")
	if _, err := custmongo.New(ctx, db); err != nil {
		t.Fatalf("opening twice: %v", err)
	}

	// A profile the user made before the migration.
	existing := customer.Customer{
		ID: contract.NewID(), UserID: contract.NewID(),
		Address:                customer.Address{StreetAddress: "old", City: "Old", PostalCode: "00001", Country: "USA"},
		PreferredContactMethod: "sms", NotificationPreferences: map[string]bool{"email": false},
		CustomerSince: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), CreatedAt: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
	}
	testenv.Must(t, store.Create(ctx, existing), "existing")

	const n = 130
	ps := make([]customer.Customer, 0, n+2)
	for i := range n {
		ps = append(ps, customer.Customer{
			UserID:                  contract.NewID(),
			Address:                 customer.Address{StreetAddress: fmt.Sprintf("%d Main St", i), City: "Portland", State: "OR", PostalCode: "97201", Country: "USA"},
			CompanyName:             fmt.Sprintf("Co %d", i),
			EmergencyContact:        customer.EmergencyContact{Name: "E", Phone: "555-0100", Relationship: "friend"},
			PreferredContactMethod:  "email",
			NotificationPreferences: customer.DefaultNotificationPreferences(),
			IsVerified:              i%2 == 0,
			CustomerSince:           time.Date(2016, 1, 2, 3, 4, 5, 6e6, time.UTC),
		})
	}
	mine := existing
	mine.ID, mine.City, mine.PreferredContactMethod = "", "Migrated", "email"
	mine.CustomerSince = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	ps = append(ps, mine, customer.Customer{UserID: "not-a-uuid"}, ps[1])

	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res, err := store.ImportProfiles(ctx, ps, t0)
	testenv.Must(t, err, "first import")
	for i := range n {
		if res[i].Err != nil || !res[i].Inserted {
			t.Fatalf("profile %d: %+v", i, res[i])
		}
	}
	if r := res[n]; r.Err != nil || r.Inserted {
		t.Errorf("the existing profile: %+v, want updated", r)
	}
	if res[n+1].Err == nil {
		t.Error("a profile without a UUID user_id was written")
	}
	if res[n+2].Err == nil {
		t.Error("a user's second profile in one import was written")
	}

	// The re-run matches every profile: updates only.
	ps[0].City = "Salem"
	res, err = store.ImportProfiles(ctx, ps[:n+1], t0.Add(time.Hour))
	testenv.Must(t, err, "second import")
	for i, r := range res {
		if r.Err != nil || r.Inserted {
			t.Fatalf("re-run, profile %d: %+v", i, r)
		}
	}
	if c, _ := store.Count(ctx, customer.Filter{}); c != n+1 {
		t.Fatalf("%d profiles, want %d", c, n+1)
	}
	got, err := store.ProfilesByUserIDs(ctx, []string{ps[0].UserID, ps[1].UserID, existing.UserID, contract.NewID()})
	testenv.Must(t, err, "read")
	if len(got) != 3 {
		t.Fatalf("%d profiles read", len(got))
	}
	p0 := got[ps[0].UserID]
	if p0.City != "Salem" || p0.CompanyName != "Co 0" || !p0.IsVerified || !contract.ValidID(p0.ID) ||
		!p0.CustomerSince.Equal(ps[0].CustomerSince) || !p0.CreatedAt.Equal(t0) || !p0.UpdatedAt.Equal(t0.Add(time.Hour)) ||
		p0.EmergencyContact.Relationship != "friend" || !p0.NotificationPreferences["email"] {
		t.Errorf("imported profile %+v", p0)
	}
	// Through the service's own read path as well.
	viaStore, err := store.ByUserID(ctx, ps[1].UserID)
	if err != nil || viaStore.ID != got[ps[1].UserID].ID || viaStore.StreetAddress != "1 Main St" || viaStore.TotalServices != 0 {
		t.Errorf("ByUserID: %+v %v", viaStore, err)
	}
	ex := got[existing.UserID]
	if ex.ID != existing.ID || ex.City != "Migrated" || ex.PreferredContactMethod != "sms" || ex.NotificationPreferences["email"] ||
		!ex.CustomerSince.Equal(existing.CustomerSince) || !ex.CreatedAt.Equal(existing.CreatedAt) {
		t.Errorf("the existing profile lost what only inserts write: %+v", ex)
	}

	var ids []string
	testenv.Must(t, store.EachProfileUserID(ctx, func(id string) error { ids = append(ids, id); return nil }), "each")
	if len(ids) != n+1 {
		t.Errorf("%d user ids", len(ids))
	}
	dups, err := store.DuplicateUserIDs(ctx)
	if err != nil || len(dups) != 0 {
		t.Errorf("duplicates %v %v", dups, err)
	}
}

func TestBackupAndRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded database: not in -short")
	}
	t.Parallel()
	ctx := context.Background()
	_, db := testenv.Mongo(t)
	coll := db.Collection(custmongo.CustomersCollection)
	when := time.Date(2020, 2, 3, 4, 5, 6, 7e6, time.UTC)
	docs := []any{
		bson.D{{Key: "_id", Value: "a"}, {Key: "user_id", Value: "u1"}, {Key: "customer_since", Value: when}, {Key: "is_verified", Value: true},
			{Key: "notification_preferences", Value: bson.D{{Key: "email", Value: true}}}},
		bson.D{{Key: "_id", Value: "b"}, {Key: "user_id", Value: "u2"}, {Key: "city", Value: "Zürich \"quoted\""}},
	}
	_, err := coll.InsertMany(ctx, docs)
	testenv.Must(t, err, "insert")

	dir := t.TempDir()
	path := filepath.Join(dir, "backup.json")
	n, err := backup(ctx, coll, path)
	if err != nil || n != 2 {
		t.Fatalf("backup: %d %v", n, err)
	}
	if _, err := backup(ctx, coll, path); err == nil {
		t.Fatal("a backup overwrote an existing file")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*partial")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// The migration changes the collection; a damaged backup changes nothing.
	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "c"}, {Key: "user_id", Value: "u3"}})
	testenv.Must(t, err, "insert c")
	raw, err := os.ReadFile(path)
	testenv.Must(t, err, "read backup")
	damaged := filepath.Join(dir, "damaged.json")
	testenv.Must(t, os.WriteFile(damaged, raw[:len(raw)-20], 0o600), "write damaged")
	if _, err := restore(ctx, coll, damaged, 1); err == nil {
		t.Fatal("a damaged backup was restored")
	}
	if c, _ := coll.CountDocuments(ctx, bson.D{}); c != 3 {
		t.Fatalf("a failed restore changed the collection: %d documents", c)
	}

	n, err = restore(ctx, coll, path, 1)
	if err != nil || n != 2 {
		t.Fatalf("restore: %d %v", n, err)
	}
	var got []bson.M
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	testenv.Must(t, err, "find")
	testenv.Must(t, cur.All(ctx, &got), "decode")
	if len(got) != 2 || got[0]["customer_since"].(primitive.DateTime).Time().UTC() != when || got[0]["is_verified"] != true ||
		got[1]["city"] != "Zürich \"quoted\"" || got[0]["notification_preferences"].(bson.M)["email"] != true {
		t.Errorf("restored %v", got)
	}
}
