package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// The embedded server gets an index that its lookups by _id use, and the
// lookups still find exactly what they found without it.
func TestIDLookupsUseAnIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	m, err := StartMongo(ctx, "127.0.0.1:0", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(m.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	c := client.Database("lookup").Collection("people")
	docs := make([]any, 300)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("p-%03d", i)}, {Key: "n", Value: i}}
	}
	if _, err := c.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "lookup.sqlite")
	table := waitForIndex(t, path)
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The exact shape of FerretDB's pushed-down filter.
	var id, parent, unused int
	var plan string
	q := fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %s WHERE _ferretdb_sjson->'$._id' = ?`, quoteIdent(table))
	if err := db.QueryRow(q, `"p-007"`).Scan(&id, &parent, &unused, &plan); err != nil {
		t.Fatal(err)
	}
	if want := "USING INDEX " + idIndexPrefix + table; !strings.Contains(plan, want) {
		t.Fatalf("query plan %q does not use %s", plan, want)
	}

	var got struct {
		N int `bson:"n"`
	}
	if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: "p-123"}}).Decode(&got); err != nil || got.N != 123 {
		t.Fatalf("find by _id: %+v, %v", got, err)
	}
	if res, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: "p-200"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: -1}}}}); err != nil || res.ModifiedCount != 1 {
		t.Fatalf("update by _id: %+v, %v", res, err)
	}
	if n, err := c.CountDocuments(ctx, bson.D{{Key: "n", Value: -1}}); err != nil || n != 1 {
		t.Fatalf("after the update %d documents have n=-1 (%v), want 1", n, err)
	}
	if res, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: "p-299"}}); err != nil || res.DeletedCount != 1 {
		t.Fatalf("delete by _id: %+v, %v", res, err)
	}
	if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: "p-299"}}).Err(); err != mongo.ErrNoDocuments {
		t.Fatalf("deleted document: %v", err)
	}
	if n, _ := c.CountDocuments(ctx, bson.D{}); n != 299 {
		t.Fatalf("%d documents left, want 299", n)
	}
	if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "p-000"}}); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("duplicate _id: %v", err)
	}

	// A dropped database stays dropped: the indexer never recreates it,
	// not even when it reaches the file's path after the drop.
	if err := client.Database("lookup").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := newIDIndexer(dir, nil).indexFile(ctx, path); err == nil {
		t.Error("indexing a dropped database's file succeeded")
	}
	time.Sleep(3 * idIndexPeriod)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the dropped database's file: %v", err)
	}
}

// waitForIndex waits for the indexer to index the file's collection table
// and returns the table's name.
func waitForIndex(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var table string
		err := db.QueryRow(`SELECT tbl_name FROM sqlite_master WHERE type = 'index' AND name LIKE ?`, idIndexPrefix+"%").Scan(&table)
		if err == nil {
			return table
		}
		if time.Now().After(deadline) {
			t.Fatalf("no _id lookup index after 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
