package indexcheck_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/indexcheck"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestRecordsWhatTheDriverSends drives each command shape a store uses and
// checks what the recorder saw and what each check concludes of it.
func TestRecordsWhatTheDriverSends(t *testing.T) {
	rec, db := indexcheck.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	users := db.Collection("users")
	_, err := users.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}, {Key: "at", Value: -1}}})
	testenv.Must(t, err, "create index")
	_, err = users.InsertOne(ctx, bson.D{{Key: "_id", Value: "u1"}, {Key: "email", Value: "a@example.com"}, {Key: "city", Value: "Oslo"}})
	testenv.Must(t, err, "insert")
	rec.Reset()

	run := func(what string, f func() error) {
		t.Helper()
		if err := f(); err != nil && err != mongo.ErrNoDocuments {
			t.Fatalf("%s: %v", what, err)
		}
	}
	run("find by _id", func() error { return users.FindOne(ctx, bson.D{{Key: "_id", Value: "u1"}}).Err() })
	run("find by email", func() error { return users.FindOne(ctx, bson.D{{Key: "email", Value: "a@example.com"}}).Err() })
	run("update by _id", func() error {
		_, err := users.UpdateOne(ctx, bson.D{{Key: "_id", Value: "u1"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}})
		return err
	})
	run("delete by city", func() error { _, err := users.DeleteMany(ctx, bson.D{{Key: "city", Value: "Rome"}}); return err })
	run("count by city", func() error { _, err := users.CountDocuments(ctx, bson.D{{Key: "city", Value: "Oslo"}}); return err })
	run("aggregate on email", func() error {
		_, err := users.Aggregate(ctx, mongo.Pipeline{{{Key: "$match", Value: bson.D{{Key: "email", Value: "a@example.com"}}}}, {{Key: "$sort", Value: bson.D{{Key: "at", Value: -1}}}}})
		return err
	})
	run("list sorted by email", func() error {
		_, err := users.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "email", Value: 1}}))
		return err
	})
	run("$or of an indexed and an unindexed field", func() error {
		_, err := users.Find(ctx, bson.D{{Key: "$or", Value: bson.A{bson.D{{Key: "_id", Value: "u1"}}, bson.D{{Key: "city", Value: "Oslo"}}}}})
		return err
	})

	var got []string
	for _, q := range rec.Queries() {
		got = append(got, q.String())
	}
	want := []string{
		"find users {_id}",
		"find users {email}",
		"update users {_id}",
		"delete users {city}",
		"aggregate users {city}", // countDocuments is an aggregation
		"aggregate users {email} sort {at}",
		"find users {} sort {email}",
		"find users {$or: [{_id}, {city}]}",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("recorded\n%q\nwant\n%q", got, want)
	}

	bad, err := rec.Unindexed(ctx, db)
	testenv.Must(t, err, "unindexed")
	var unserved []string
	for _, q := range bad {
		unserved = append(unserved, q.String())
	}
	wantUnserved := []string{"delete users {city}", "aggregate users {city}", "find users {$or: [{_id}, {city}]}"}
	if !slices.Equal(unserved, wantUnserved) {
		t.Errorf("unindexed %q, want %q", unserved, wantUnserved)
	}
	bad, err = rec.Unindexed(ctx, db, indexcheck.Exempt{Collection: "users", Fields: []string{"city"}, Reason: "test"},
		indexcheck.Exempt{Collection: "users", Command: "find", Reason: "test"})
	testenv.Must(t, err, "unindexed with exemptions")
	if len(bad) != 0 {
		t.Errorf("exempt queries reported: %v", bad)
	}

	var notID []string
	for _, q := range rec.NotIDOnly("users") {
		notID = append(notID, q.String())
	}
	if len(notID) != len(want)-2 || slices.Contains(notID, "find users {_id}") || slices.Contains(notID, "update users {_id}") {
		t.Errorf("not lone _id: %q", notID)
	}
	if n := len(rec.NotIDOnly("other")); n != 0 {
		t.Errorf("queries of another collection counted: %d", n)
	}
}

func TestIDOnly(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		filter bson.D
		want   bool
	}{
		"value":        {bson.D{{Key: "_id", Value: "x"}}, true},
		"$eq":          {bson.D{{Key: "_id", Value: bson.D{{Key: "$eq", Value: "x"}}}}, true},
		"$in":          {bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{"x"}}}}}, false},
		"range":        {bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: "x"}}}}, false},
		"_id and more": {bson.D{{Key: "_id", Value: "x"}, {Key: "v", Value: 1}}, false},
		"other field":  {bson.D{{Key: "user_id", Value: "x"}}, false},
		"empty":        {bson.D{}, false},
	} {
		if got := indexcheck.IDOnly(indexcheck.Query{Filter: tc.filter}); got != tc.want {
			t.Errorf("%s: IDOnly = %v, want %v", name, got, tc.want)
		}
	}
}
