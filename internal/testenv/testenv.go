// Package testenv gives integration tests real backing servers: one embedded
// FerretDB (SQLite backend in a temp dir) shared by the test binary with a
// fresh database per test, and a Redis per test — a real redis-server on a
// free port when one is installed, else miniredis (the log says which).
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/mongodb"
)

var shared struct {
	once   sync.Once
	dir    string
	server *embedded.Mongo
	client *mongo.Client
	err    error
}

// Main runs the tests of a package and then stops the shared server and
// removes its files. Call it from TestMain: os.Exit(testenv.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.client != nil {
		_ = shared.client.Disconnect(context.Background())
	}
	if shared.server != nil {
		shared.server.Close()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	return code
}

func start() {
	shared.dir, shared.err = os.MkdirTemp("", "ferretdb-test-*")
	if shared.err != nil {
		return
	}
	ctx := context.Background()
	shared.server, shared.err = embedded.StartMongo(ctx, "127.0.0.1:0", shared.dir, nil)
	if shared.err != nil {
		return
	}
	shared.client, shared.err = mongodb.Connect(ctx, shared.server.URI, "testenv", nil)
}

// MongoURI returns the URI of the shared embedded server.
func MongoURI(t testing.TB) string {
	t.Helper()
	shared.once.Do(start)
	if shared.err != nil {
		t.Fatalf("testenv: embedded FerretDB: %v", shared.err)
	}
	return shared.server.URI
}

// DBName returns a fresh database name, dropped when the test ends.
func DBName(t testing.TB) string {
	t.Helper()
	MongoURI(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = shared.client.Database(name).Drop(ctx)
	})
	return name
}

// Mongo returns a client of the shared server and a fresh database on it.
func Mongo(t testing.TB) (*mongo.Client, *mongo.Database) {
	t.Helper()
	name := DBName(t)
	return shared.client, shared.client.Database(name)
}

// Redis starts a Redis for this test, stopped when it ends.
func Redis(t testing.TB) *embedded.Redis {
	t.Helper()
	r, err := embedded.StartRedis(context.Background(), "127.0.0.1:0", true)
	if err != nil {
		t.Fatalf("testenv: redis: %v", err)
	}
	t.Cleanup(r.Stop)
	t.Logf("testenv: using %s at %s", r.Kind, r.Addr)
	return r
}

// RedisCluster starts a Redis Cluster of three masters (real redis-server
// nodes, embedded.StartRedisCluster) for this test, stopped when it ends.
// Without redis-server the test is skipped, saying so: miniredis has no
// cluster mode.
func RedisCluster(t testing.TB) *embedded.RedisCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := embedded.StartRedisCluster(ctx, 3)
	if errors.Is(err, embedded.ErrNoRedisServer) {
		t.Skip("testenv: redis-server is not installed (Debian: apt-get install redis-server), so no Redis Cluster can start; CI installs it")
	}
	if err != nil {
		t.Fatalf("testenv: redis cluster: %v", err)
	}
	t.Cleanup(c.Stop)
	t.Logf("testenv: using a Redis Cluster of %d masters at %s", len(c.Addrs), c.URL)
	return c
}

// Must fails the test on err.
func Must(t testing.TB, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}

// MongoClient returns a client of the shared server.
func MongoClient(t testing.TB) *mongo.Client {
	t.Helper()
	MongoURI(t)
	return shared.client
}

// Find returns the documents of c matching filter; an error fails the test.
func Find(t testing.TB, c *mongo.Collection, filter any) []bson.M {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cur, err := c.Find(ctx, filter)
	Must(t, err, "find in %s", c.Name())
	var out []bson.M
	Must(t, cur.All(ctx, &out), "read %s", c.Name())
	return out
}
