package redisconn

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/testenv"
)

// A client opened from a redis-sentinel:// URL asks the Sentinel for the
// master and reads and writes there; one from a redis-cluster:// URL is a
// cluster client. Real servers: a master and a Sentinel (redis-server
// --sentinel), a 3-master cluster. Skipped only when redis-server is not
// installed.
func TestOpenFollowsSentinelAndCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server processes: not in the fast tier (-short)")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := embedded.StartRedisSentinel(ctx)
	if errors.Is(err, embedded.ErrNoRedisServer) {
		t.Skip("redis-server is not installed (Debian: apt-get install redis-server); no Sentinel can start")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	c, err := Open(s.URL, Options{})
	if err != nil {
		t.Fatalf("Open(%q): %v", s.URL, err)
	}
	defer Close(c)
	if err := Ping(c)(ctx); err != nil {
		t.Fatalf("ping through the Sentinel: %v", err)
	}
	if err := c.Set(ctx, "sentinel:k", "v", time.Minute).Err(); err != nil {
		t.Fatalf("SET through the Sentinel: %v", err)
	}
	if got, err := c.Get(ctx, "sentinel:k").Result(); err != nil || got != "v" {
		t.Fatalf("GET through the Sentinel: %q, %v", got, err)
	}
	// The write is on the master the Sentinel names, not on the Sentinel.
	m := redis.NewClient(&redis.Options{Addr: s.MasterAddr})
	defer m.Close()
	if got, err := m.Get(ctx, "sentinel:k").Result(); err != nil || got != "v" {
		t.Fatalf("GET at the master %s: %q, %v; want the client's write", s.MasterAddr, got, err)
	}

	cl := testenv.RedisCluster(t)
	cc, err := Open(cl.URL, Options{})
	if err != nil {
		t.Fatalf("Open(%q): %v", cl.URL, err)
	}
	defer Close(cc)
	if _, ok := cc.(*redis.ClusterClient); !ok {
		t.Fatalf("Open(%q) gave a %T, want a cluster client", cl.URL, cc)
	}
	if err := cc.Set(ctx, "cluster:k", "v", time.Minute).Err(); err != nil {
		t.Fatalf("SET on the cluster: %v", err)
	}
	if got, err := cc.Get(ctx, "cluster:k").Result(); err != nil || got != "v" {
		t.Fatalf("GET on the cluster: %q, %v", got, err)
	}
}
