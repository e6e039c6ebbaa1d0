package rediscache_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/rediscache"
	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/testenv"
)

// TestCacheOnRedisCluster runs the cache against a real Redis Cluster of
// three masters, where every key is routed by its hash slot and a
// command, pipeline or script whose keys span slots is refused
// (CROSSSLOT): a miss then a hit, an invalidation, a move of the shared
// epoch (which lives in another slot than any user's keys), concurrent
// lookups of many users sharing round trips, and the change-event
// subscriber evicting a view.
func TestCacheOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs real Redis servers: not in the fast tier (-short)")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster := testenv.RedisCluster(t)
	e := newEnv(t, envOptions{redisURL: cluster.URL})

	// Miss, then hit.
	if _, status := e.view(t, userA); status != bff.CacheMiss {
		t.Fatalf("first lookup: %s, want MISS", status)
	}
	body, status := e.view(t, userA)
	if status != bff.CacheHit || !bytes.Equal(body, e.origin.body(userA)) {
		t.Fatalf("second lookup: %s %s, want a HIT of the origin's view", status, body)
	}

	// An invalidation (the drop script on the view and its generation).
	e.origin.version.Add(1)
	e.cache.Invalidate(ctx, userA)
	if body, status := e.view(t, userA); status != bff.CacheMiss || !bytes.Equal(body, e.origin.body(userA)) {
		t.Fatalf("after an invalidation: %s %s, want a MISS of the new view", status, body)
	}
	if _, status := e.view(t, userA); status != bff.CacheHit {
		t.Fatalf("after the reload: %s, want HIT", status)
	}

	// The epoch moved on: every view cached before is a miss.
	testenv.Must(t, e.rdb.Incr(ctx, rediscache.DefaultKeyPrefix+"epoch").Err(), "move the epoch on")
	if _, status := e.view(t, userA); status != bff.CacheMiss {
		t.Fatalf("after the epoch moved on: %s, want MISS", status)
	}
	if _, status := e.view(t, userA); status != bff.CacheHit {
		t.Fatalf("after the reload in the new epoch: %s, want HIT", status)
	}

	// Concurrent lookups of users spread over the slots share pipelined
	// round trips; each is served its own view.
	users := make([]string, 40)
	for i := range users {
		users[i] = "cluster-user-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	for round := range 2 {
		var wg sync.WaitGroup
		for _, u := range users {
			wg.Go(func() {
				body, status, err := e.cache.View(ctx, u, "token-of-"+u)
				switch {
				case err != nil:
					t.Errorf("round %d, %s: %v", round, u, err)
				case status == bff.CacheBypass:
					t.Errorf("round %d, %s: BYPASS: a Redis call failed", round, u)
				case !bytes.Equal(body, e.origin.body(u)):
					t.Errorf("round %d, %s: got %s", round, u, body)
				}
			})
		}
		wg.Wait()
	}
	if n := e.counter(t, "bff.cache.requests", "result", "bypass"); n != 0 {
		t.Fatalf("%d lookups bypassed the cache", n)
	}
	if n := e.counter(t, "bff.cache.writes", "result", "error"); n != 0 {
		t.Fatalf("%d cache writes failed", n)
	}

	// The subscriber: a change event evicts the view.
	subscribed(t, e.rdb, e.cache, rediscache.SubscriberOptions{MeterProvider: e.meter})
	e.origin.version.Add(1)
	publish(t, e.rdb, event("cluster-1", changefeed.CustomerChanged, userA))
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the change event to evict the view", func() bool {
		n, err := e.rdb.Exists(ctx, viewKey(userA)).Result()
		return err == nil && n == 0
	}))
	if body, status := e.view(t, userA); status != bff.CacheMiss || !bytes.Equal(body, e.origin.body(userA)) {
		t.Fatalf("after the change event: %s %s, want a MISS of the new view", status, body)
	}
}
