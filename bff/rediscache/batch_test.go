package rediscache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/breaker"
	"github.com/acme/customer-platform/internal/testenv"
)

// gateHook, once armed (holding set to false), holds the next lookup
// round trip until released; it counts the MGETs that reach Redis, and
// the MGETs of each round trip (a pipeline of MGETs and the epoch's GET).
type gateHook struct {
	gate    chan struct{}
	holding atomic.Bool
	mgets   atomic.Int64
	mu      sync.Mutex
	trips   []int
}

func (h *gateHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || cmds[0].Name() != "mget" { // a connection's set-up
			return next(ctx, cmds)
		}
		n := 0
		for _, c := range cmds {
			if c.Name() == "mget" {
				n++
			}
		}
		h.mgets.Add(int64(n))
		h.mu.Lock()
		h.trips = append(h.trips, n)
		h.mu.Unlock()
		if h.holding.CompareAndSwap(false, true) {
			<-h.gate
		}
		return next(ctx, cmds)
	}
}

type staticOrigin struct{}

func (staticOrigin) View(_ context.Context, userID, _ string) ([]byte, bff.CacheStatus, error) {
	return fmt.Appendf(nil, `{"user":{"id":%q},"profile":null}`, userID), bff.CacheBypass, nil
}
func (staticOrigin) Invalidate(context.Context, string) {}

func batchCache(t *testing.T) (*Cache, *redis.Client, *gateHook) {
	return batchCacheWith(t, nil)
}

func batchCacheWith(t *testing.T, br *breaker.Breaker) (*Cache, *redis.Client, *gateHook) {
	t.Helper()
	h := &gateHook{gate: make(chan struct{})}
	h.holding.Store(true) // disarmed
	c, rdb := hookedCache(t, h, Options{Timeout: 5 * time.Second, Breaker: br})
	return c, rdb, h
}

// hookedCache is a cache over a real Redis whose client runs hook, over
// staticOrigin.
func hookedCache(t *testing.T, hook redis.Hook, o Options) (*Cache, *redis.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real Redis")
	}
	r := testenv.Redis(t)
	opt, err := redis.ParseURL(r.URL)
	testenv.Must(t, err, "url")
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(hook)
	c, err := New(rdb, staticOrigin{}, o)
	testenv.Must(t, err, "cache")
	return c, rdb
}

// TestLookupsQueuedDuringARoundTripShareTheNext: while one lookup's round
// trip is held, the lookups that arrive wait, then go together in one
// pipeline, and each gets its own values.
func TestLookupsQueuedDuringARoundTripShareTheNext(t *testing.T) {
	t.Parallel()
	c, rdb, h := batchCache(t)
	ctx := context.Background()
	const n = 20
	for i := range n {
		view, gen := c.keys(fmt.Sprintf("user-%d", i))
		testenv.Must(t, rdb.Set(ctx, view, "view-"+fmt.Sprint(i), 0).Err(), "set")
		testenv.Must(t, rdb.Set(ctx, gen, "gen-"+fmt.Sprint(i), 0).Err(), "set")
	}
	h.holding.Store(false)
	h.mu.Lock()
	h.trips = nil
	h.mu.Unlock()

	type result struct {
		vals []any
		err  error
	}
	first := make(chan result, 1)
	go func() {
		view, gen := c.keys("user-0")
		vals, err := c.lookups.get(ctx, view, gen)
		first <- result{vals, err}
	}()
	waitFor(t, "the first lookup to be held", func() bool { return h.holding.Load() })

	results := make([]result, n)
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() {
			view, gen := c.keys(fmt.Sprintf("user-%d", i))
			vals, err := c.lookups.get(ctx, view, gen)
			results[i] = result{vals, err}
		})
	}
	waitFor(t, "the other lookups to queue", func() bool {
		c.lookups.mu.Lock()
		defer c.lookups.mu.Unlock()
		return len(c.lookups.queue) == n-1
	})
	close(h.gate)
	results[0] = <-first
	wg.Wait()

	for i, r := range results {
		want := []any{"view-" + fmt.Sprint(i), "gen-" + fmt.Sprint(i), nil} // no epoch yet
		if r.err != nil || fmt.Sprint(r.vals) != fmt.Sprint(want) {
			t.Errorf("lookup %d: %v %v, want %v", i, r.vals, r.err, want)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.trips) != 2 || h.trips[0] != 1 || h.trips[1] != n-1 {
		t.Fatalf("round trips with %v lookups; want the held one alone, then one of %d", h.trips, n-1)
	}
	c.lookups.mu.Lock()
	defer c.lookups.mu.Unlock()
	if c.lookups.inflight != 0 || len(c.lookups.queue) != 0 {
		t.Fatalf("after the round trips: %d in flight, %d queued", c.lookups.inflight, len(c.lookups.queue))
	}
}

// TestConcurrentViewsGetTheirOwn: many concurrent hits and misses of many
// users, each answered with its own user's view.
func TestConcurrentViewsGetTheirOwn(t *testing.T) {
	t.Parallel()
	c, _, h := batchCache(t)
	close(h.gate)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 50 {
				id := fmt.Sprintf("user-%d", (g*7+i)%40)
				body, _, err := c.View(ctx, id, "tok")
				if err != nil {
					t.Errorf("View(%s): %v", id, err)
					return
				}
				if want := fmt.Sprintf(`{"user":{"id":%q},"profile":null}`, id); string(body) != want {
					t.Errorf("View(%s) = %s", id, body)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestLookupOfAGoneCaller: a caller that went away gets its context's
// error, at once if it was gone before asking.
func TestLookupOfAGoneCaller(t *testing.T) {
	t.Parallel()
	c, _, h := batchCache(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.lookups.get(ctx, "a", "b"); err != context.Canceled {
		t.Fatalf("cancelled caller: %v", err)
	}
	if h.mgets.Load() != 0 {
		t.Fatal("a cancelled caller's lookup reached Redis")
	}
	// A caller that goes away while its round trip is held stops waiting.
	h.holding.Store(false)
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.lookups.get(ctx, "a", "b"); done <- err }()
	waitFor(t, "the lookup to be held", func() bool { return h.holding.Load() })
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("caller gone during the round trip: %v", err)
	}
	close(h.gate)
	waitFor(t, "the round trip slot to be freed", func() bool {
		c.lookups.mu.Lock()
		defer c.lookups.mu.Unlock()
		return c.lookups.inflight == 0
	})
}

// TestLookupRoundTripErrorReachesEveryLookup: a failed round trip fails
// each lookup it carried (which then answer BYPASS from the origin).
func TestLookupRoundTripErrorReachesEveryLookup(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs a real Redis")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testenv.Must(t, err, "listen")
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := New(rdb, staticOrigin{}, Options{Timeout: time.Second})
	testenv.Must(t, err, "cache")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := c.lookups.get(context.Background(), "a", "b"); err == nil {
				t.Error("a lookup against no Redis succeeded")
			}
			body, status, err := c.View(context.Background(), "user-1", "tok")
			if err != nil || status != bff.CacheBypass || len(body) == 0 {
				t.Errorf("View without Redis: %s %v", status, err)
			}
		})
	}
	wg.Wait()
}

// TestHalfOpenProbeIsNotWaitedFor: after an outage, the request that
// makes the breaker's probe is answered from the origins without waiting
// for the probe, which closes the breaker when it succeeds.
func TestHalfOpenProbeIsNotWaitedFor(t *testing.T) {
	t.Parallel()
	reg, err := breaker.NewRegistry(nil, nil)
	testenv.Must(t, err, "registry")
	bs := BreakerSettings()
	bs.OpenTimeout = 20 * time.Millisecond
	br, err := reg.New("redis", bs)
	testenv.Must(t, err, "breaker")
	c, _, h := batchCacheWith(t, br)
	ctx := context.Background()
	for range bs.FailuresToOpen {
		_ = br.Do(ctx, func(context.Context) error { return errors.New("down") })
	}
	waitFor(t, "the breaker to probe", func() bool { return br.State(ctx) == breaker.HalfOpen })
	h.holding.Store(false) // hold the probe's round trip

	body, status, err := c.View(ctx, "user-7", "tok")
	if err != nil || status != bff.CacheBypass || len(body) == 0 {
		t.Fatalf("View while probing: %s %v", status, err)
	}
	waitFor(t, "the probe to be sent", h.holding.Load)
	if got := br.State(ctx); got != breaker.HalfOpen {
		t.Fatalf("the request returned while its probe was held, yet the breaker is %s", got)
	}
	close(h.gate)
	waitFor(t, "the probe to close the breaker", func() bool { return br.State(ctx) == breaker.Closed })
	if _, status, _ := c.View(ctx, "user-7", "tok"); status != bff.CacheMiss {
		t.Fatalf("after the probe: %s, want MISS", status)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
