// Package indexcheck records the queries a store sends to the database and
// checks them against the indexes the store created: every query must be
// one MongoDB answers from an index, and the hot paths must be lone `_id`
// equalities, the only filter the embedded FerretDB answers without reading
// every document of the collection (docs/ferretdb.md).
//
// A test connects through Connect, drives the store, and calls CheckIndexed
// and CheckIDOnly. The recorder sees the commands exactly as the driver sends
// them (filters, sorts, the `q` of each update and delete, an aggregation's
// leading $match), so it checks the production code path, not a description
// of it.
package indexcheck

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/internal/testenv"
)

// Query is one filter a command carried.
type Query struct {
	Collection string
	Command    string // find, update, delete, findAndModify, count, distinct, aggregate
	Filter     bson.D
	Sort       bson.D
}

func (q Query) String() string {
	s := fmt.Sprintf("%s %s %s", q.Command, q.Collection, shape(q.Filter))
	if len(q.Sort) > 0 {
		s += " sort " + shape(q.Sort)
	}
	return s
}

// shape prints a filter's field names and operators, not its values: a
// test's failure message names the query without quoting data.
func shape(d bson.D) string {
	parts := make([]string, 0, len(d))
	for _, e := range d {
		switch v := e.Value.(type) {
		case bson.D:
			parts = append(parts, e.Key+": "+shape(v))
		case bson.A:
			var sub []string
			for _, x := range v {
				if xd, ok := x.(bson.D); ok {
					sub = append(sub, shape(xd))
				} else {
					sub = append(sub, "…")
				}
			}
			parts = append(parts, e.Key+": ["+strings.Join(sub, ", ")+"]")
		default:
			parts = append(parts, e.Key)
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Exempt names queries known to read a whole collection, with the reason
// (a staff listing, a sweep, a start-up backfill). A query is exempt when
// its collection and command match and, if Fields is set, its filter's
// top-level fields are exactly Fields.
type Exempt struct {
	Collection string
	Command    string
	Fields     []string
	Reason     string
}

func (x Exempt) covers(q Query) bool {
	if x.Collection != q.Collection || (x.Command != "" && x.Command != q.Command) {
		return false
	}
	return x.Fields == nil || slices.Equal(x.Fields, fieldsOf(q.Filter))
}

// Recorder collects the queries of one client.
type Recorder struct {
	db string
	mu sync.Mutex
	qs []Query
}

// Connect returns a recorder and a fresh database on the shared embedded
// server, reached through a client of its own whose every command the
// recorder sees. The client is disconnected when the test ends.
func Connect(t testing.TB) (*Recorder, *mongo.Database) {
	t.Helper()
	r := &Recorder{db: testenv.DBName(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := mongo.Connect(ctx, options.Client().ApplyURI(testenv.MongoURI(t)).SetMonitor(r.Monitor()))
	testenv.Must(t, err, "indexcheck: connect")
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return r, c.Database(r.db)
}

// Monitor is the command monitor that feeds the recorder; Connect installs
// it. Commands on other databases than the recorder's are ignored.
func (r *Recorder) Monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if r.db != "" && e.DatabaseName != r.db {
			return
		}
		qs := parse(e.CommandName, e.Command)
		if len(qs) == 0 {
			return
		}
		r.mu.Lock()
		r.qs = append(r.qs, qs...)
		r.mu.Unlock()
	}}
}

// Reset forgets what was recorded so far (the set-up of a test).
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.qs = nil
	r.mu.Unlock()
}

// Queries returns what was recorded, in order.
func (r *Recorder) Queries() []Query {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.qs)
}

// parse extracts the filters of a command. Commands without a filter
// (insert, createIndexes, getMore, ...) give none.
func parse(name string, raw bson.Raw) []Query {
	var cmd bson.D
	if err := bson.Unmarshal(raw, &cmd); err != nil {
		return nil
	}
	get := func(k string) any {
		for _, e := range cmd {
			if e.Key == k {
				return e.Value
			}
		}
		return nil
	}
	coll, _ := get(name).(string)
	doc := func(v any) bson.D { d, _ := v.(bson.D); return d }
	switch name {
	case "find":
		return []Query{{coll, name, doc(get("filter")), doc(get("sort"))}}
	case "findAndModify":
		return []Query{{coll, name, doc(get("query")), doc(get("sort"))}}
	case "count", "distinct":
		return []Query{{coll, name, doc(get("query")), nil}}
	case "update", "delete":
		list := "updates"
		if name == "delete" {
			list = "deletes"
		}
		arr, _ := get(list).(bson.A)
		var qs []Query
		for _, x := range arr {
			qs = append(qs, Query{coll, name, doc(lookup(doc(x), "q")), nil})
		}
		return qs
	case "aggregate":
		arr, _ := get("pipeline").(bson.A)
		q := Query{Collection: coll, Command: name, Filter: bson.D{}}
	stages:
		for i, st := range arr {
			d := doc(st)
			if len(d) != 1 {
				break
			}
			switch {
			case d[0].Key == "$match" && i == 0:
				q.Filter = doc(d[0].Value)
			case d[0].Key == "$sort" && q.Sort == nil:
				q.Sort = doc(d[0].Value)
			default:
				break stages
			}
		}
		return []Query{q}
	}
	return nil
}

func lookup(d bson.D, k string) any {
	for _, e := range d {
		if e.Key == k {
			return e.Value
		}
	}
	return nil
}

// fieldsOf returns a filter's top-level fields, $and flattened, sorted.
func fieldsOf(f bson.D) []string {
	var out []string
	for _, e := range f {
		if e.Key == "$and" {
			arr, _ := e.Value.(bson.A)
			for _, x := range arr {
				if d, ok := x.(bson.D); ok {
					out = append(out, fieldsOf(d)...)
				}
			}
			continue
		}
		if !strings.HasPrefix(e.Key, "$") {
			out = append(out, e.Key)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// branches splits a filter on a top-level $or: MongoDB serves an $or from
// indexes only when every branch is served.
func branches(f bson.D) []bson.D {
	var rest bson.D
	var ors bson.A
	for _, e := range f {
		if e.Key == "$or" {
			ors, _ = e.Value.(bson.A)
			continue
		}
		rest = append(rest, e)
	}
	if ors == nil {
		return []bson.D{f}
	}
	out := make([]bson.D, 0, len(ors))
	for _, x := range ors {
		d, _ := x.(bson.D)
		out = append(out, append(slices.Clone(rest), d...))
	}
	return out
}

// served reports whether an index whose key list is keys can answer filter
// (its leading key is constrained) or, for an unfiltered query, its sort.
func served(keys [][]string, filter, sort bson.D) bool {
	for _, b := range branches(filter) {
		fields := fieldsOf(b)
		ok := false
		for _, k := range keys {
			if len(fields) > 0 && slices.Contains(fields, k[0]) {
				ok = true
			}
			if len(fields) == 0 && len(sort) > 0 && sort[0].Key == k[0] {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Unindexed returns the recorded queries that no index of their collection
// serves, leaving out the exempt ones. The `_id` index counts on every
// collection.
func (r *Recorder) Unindexed(ctx context.Context, db *mongo.Database, exempt ...Exempt) ([]Query, error) {
	indexes := map[string][][]string{}
	var out []Query
	for _, q := range r.Queries() {
		if slices.ContainsFunc(exempt, func(x Exempt) bool { return x.covers(q) }) {
			continue
		}
		keys, ok := indexes[q.Collection]
		if !ok {
			var err error
			if keys, err = indexKeys(ctx, db.Collection(q.Collection)); err != nil {
				return nil, err
			}
			indexes[q.Collection] = keys
		}
		if !served(keys, q.Filter, q.Sort) {
			out = append(out, q)
		}
	}
	return out, nil
}

func indexKeys(ctx context.Context, c *mongo.Collection) ([][]string, error) {
	keys := [][]string{{"_id"}}
	cur, err := c.Indexes().List(ctx)
	if err != nil {
		return nil, fmt.Errorf("indexcheck: list the indexes of %s: %w", c.Name(), err)
	}
	var specs []struct {
		Key bson.D `bson:"key"`
	}
	if err := cur.All(ctx, &specs); err != nil {
		return nil, fmt.Errorf("indexcheck: read the indexes of %s: %w", c.Name(), err)
	}
	for _, s := range specs {
		var k []string
		for _, e := range s.Key {
			k = append(k, e.Key)
		}
		if len(k) > 0 {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// CheckIndexed fails t for every recorded query that no index serves, and
// when nothing was recorded (a check of nothing proves nothing).
func (r *Recorder) CheckIndexed(t testing.TB, db *mongo.Database, exempt ...Exempt) {
	t.Helper()
	if len(r.Queries()) == 0 {
		t.Fatal("indexcheck: no query was recorded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bad, err := r.Unindexed(ctx, db, exempt...)
	testenv.Must(t, err, "indexcheck")
	for _, q := range bad {
		t.Errorf("indexcheck: no index serves %s", q)
	}
}

// IDOnly reports whether q's filter is a lone `_id` equality (a value, or
// {$eq: value}): what the embedded server answers without a scan.
func IDOnly(q Query) bool {
	if len(q.Filter) != 1 || q.Filter[0].Key != "_id" {
		return false
	}
	switch v := q.Filter[0].Value.(type) {
	case bson.D:
		return len(v) == 1 && v[0].Key == "$eq"
	case bson.A, bson.M:
		return false
	}
	return true
}

// NotIDOnly returns the recorded queries on the named collections (all
// when none are named) that are not lone `_id` equalities.
func (r *Recorder) NotIDOnly(collections ...string) []Query {
	var out []Query
	for _, q := range r.Queries() {
		if len(collections) > 0 && !slices.Contains(collections, q.Collection) {
			continue
		}
		if !IDOnly(q) {
			out = append(out, q)
		}
	}
	return out
}

// CheckIDOnly fails t for every recorded query on the named collections
// (all when none are named) that is not a lone `_id` equality, and when no
// query was recorded.
func (r *Recorder) CheckIDOnly(t testing.TB, collections ...string) {
	t.Helper()
	if len(r.Queries()) == 0 {
		t.Fatal("indexcheck: no query was recorded")
	}
	for _, q := range r.NotIDOnly(collections...) {
		t.Errorf("indexcheck: not a lone _id lookup (a scan on the embedded server): %s", q)
	}
}
