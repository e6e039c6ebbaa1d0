package embedded

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The cluster routes keys by slot across its masters and refuses a
// multi-key command across slots, as a production cluster does.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := StartRedisCluster(ctx, 3)
	if errors.Is(err, ErrNoRedisServer) {
		t.Skip("redis-server is not installed (Debian: apt-get install redis-server); the cluster cannot start")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if len(c.Addrs) != 3 || !strings.HasPrefix(c.URL, "redis-cluster://") {
		t.Fatalf("cluster %v %q", c.Addrs, c.URL)
	}
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	defer cl.Close()
	for i := range 30 {
		if err := cl.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET: %v", err)
		}
	}
	used := 0
	err = cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		if n > 0 {
			used++
		}
		return err
	})
	if err != nil || used != 3 {
		t.Fatalf("keys on %d of 3 masters (%v)", used, err)
	}
	if err := cl.MGet(ctx, "k1", "k2", "k3").Err(); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("MGET across slots: %v, want CROSSSLOT", err)
	}
	if err := cl.MGet(ctx, "{u}:a", "{u}:b").Err(); err != nil {
		t.Fatalf("MGET of one hash tag: %v", err)
	}
}
