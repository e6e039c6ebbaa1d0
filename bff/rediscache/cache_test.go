package rediscache_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/breaker"
	"github.com/acme/customer-platform/bff/rediscache"
	"github.com/acme/customer-platform/internal/testenv"
)

const (
	userA = "0b6f1c2e-4f9a-4c1e-9d3b-6a2f8e7d5c41"
	userB = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
)

func viewKey(userID string) string { return rediscache.DefaultKeyPrefix + "{" + userID + "}" }

func TestMissThenHit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	body, status := e.view(t, userA)
	if status != bff.CacheMiss {
		t.Fatalf("first view: %s, want MISS", status)
	}
	if string(body) != string(e.origin.body(userA)) {
		t.Fatalf("body %s", body)
	}
	hit, status := e.view(t, userA)
	if status != bff.CacheHit {
		t.Fatalf("second view: %s, want HIT", status)
	}
	if string(hit) != string(body) {
		t.Fatalf("hit body %s, want %s", hit, body)
	}
	if n := e.origin.loads.Load(); n != 1 {
		t.Fatalf("origin loaded %d times, want 1", n)
	}
	// Stored as "<user id>\n<epoch>\n<body>" under the user's key (no
	// epoch yet: no outage), with the TTL ±10 %.
	ctx := context.Background()
	stored, err := e.rdb.Get(ctx, viewKey(userA)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if stored != userA+"\n\n"+string(body) {
		t.Fatalf("stored %q", stored)
	}
	ttl, err := e.rdb.PTTL(ctx, viewKey(userA)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 53*time.Second || ttl > 66*time.Second {
		t.Fatalf("TTL %s, want 60s ±10%%", ttl)
	}
	if e.counter(t, "bff.cache.requests", "result", "miss") != 1 || e.counter(t, "bff.cache.requests", "result", "hit") != 1 {
		t.Fatal("hit and miss not counted")
	}
}

func TestTTLJitterSpreadsExpiries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{opts: rediscache.Options{TTL: 100 * time.Second}})
	ctx := context.Background()
	seen := map[time.Duration]bool{}
	for i := range 20 {
		id := userA[:len(userA)-2] + string(rune('a'+i%26)) + "0"
		e.view(t, id)
		ttl, err := e.rdb.PTTL(ctx, viewKey(id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < 89*time.Second || ttl > 110*time.Second {
			t.Fatalf("TTL %s outside 100s ±10%%", ttl)
		}
		seen[ttl.Round(time.Second)] = true
	}
	if len(seen) < 2 {
		t.Fatalf("20 entries all expire at the same second: %v", seen)
	}
}

func TestInvalidateForcesAReload(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.view(t, userA)
	e.view(t, userB)
	e.origin.version.Store(2)
	e.cache.Invalidate(context.Background(), userA)
	body, status := e.view(t, userA)
	if status != bff.CacheMiss || !strings.Contains(string(body), `"version":2`) {
		t.Fatalf("after Invalidate: %s %s, want a MISS with the new version", status, body)
	}
	// The other user's view is untouched.
	if _, status := e.view(t, userB); status != bff.CacheHit {
		t.Fatalf("another user's view: %s, want HIT", status)
	}
	if e.counter(t, "bff.cache.invalidations", "result", "ok") != 1 {
		t.Fatal("invalidation not counted")
	}
	// An id that cannot be a key is ignored, not sent to Redis.
	e.cache.Invalidate(context.Background(), "*")
	e.cache.Invalidate(context.Background(), "")
}

func TestInvalidateOfACancelledRequestStillEvicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.view(t, userA)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.cache.Invalidate(ctx, userA)
	if _, status := e.view(t, userA); status != bff.CacheMiss {
		t.Fatalf("after Invalidate with a cancelled context: %s, want MISS", status)
	}
}

func TestOneOriginLoadPerUserAtATime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	release := make(chan struct{})
	var mu sync.Mutex
	inFlight, maxInFlight := 0, 0
	e.origin.ViewFn = func(_ context.Context, userID, _ string) ([]byte, bff.CacheStatus, error) {
		mu.Lock()
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
		return e.origin.body(userID), bff.CacheBypass, nil
	}
	const callers = 20
	var wg sync.WaitGroup
	bodies := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _, err := e.cache.View(context.Background(), userA, "tok")
			bodies[i], errs[i] = string(b), err
		}()
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the first load to start", func() bool { return e.origin.loads.Load() == 1 }))
	// Hold the load until every caller has either joined it or is about to.
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || bodies[i] != string(e.origin.body(userA)) {
			t.Fatalf("caller %d: %q, %v", i, bodies[i], errs[i])
		}
	}
	// A caller whose miss was read just before the load's write and that
	// reached the flight group just after it ended starts a second load, so
	// the total may exceed one; two loads of one user never overlap.
	if maxInFlight != 1 {
		t.Fatalf("%d origin loads of one user ran at once, want 1", maxInFlight)
	}
	if n := e.origin.loads.Load(); n > callers/2 {
		t.Fatalf("origin loaded %d times for %d concurrent callers", n, callers)
	}
}

func TestCallerThatGoesAwayDoesNotCancelTheSharedLoad(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	release := make(chan struct{})
	var loadErr error
	e.origin.ViewFn = func(ctx context.Context, userID, _ string) ([]byte, bff.CacheStatus, error) {
		<-release
		loadErr = ctx.Err()
		return e.origin.body(userID), bff.CacheBypass, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, _, err := e.cache.View(ctx, userA, "tok")
		first <- err
	}()
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the load to start", func() bool { return e.origin.loads.Load() == 1 }))
	second := make(chan []byte, 1)
	go func() {
		b, _, _ := e.cache.View(context.Background(), userA, "tok")
		second <- b
	}()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled caller got %v", err)
	}
	close(release)
	if b := <-second; string(b) != string(e.origin.body(userA)) {
		t.Fatalf("the waiting caller got %q", b)
	}
	if loadErr != nil {
		t.Fatalf("the shared load saw its first caller's cancellation: %v", loadErr)
	}
	if _, status := e.view(t, userA); status != bff.CacheHit {
		t.Fatalf("the shared load was not cached: %s", status)
	}
}

// TestStaleSetRace: a load that read the origin before an invalidation must
// not write its (stale) result after it — neither on this replica nor when
// the invalidation comes through another replica.
func TestStaleSetRace(t *testing.T) {
	t.Parallel()
	for _, viaOtherReplica := range []bool{false, true} {
		name := "same replica"
		if viaOtherReplica {
			name = "other replica"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			other := newEnv(t, envOptions{sharedRedis: e.redis})
			readOrigin, release := make(chan struct{}), make(chan struct{})
			e.origin.ViewFn = func(_ context.Context, userID, _ string) ([]byte, bff.CacheStatus, error) {
				body := e.origin.body(userID) // the origin is read now: version 1
				close(readOrigin)
				<-release // ... and the write comes late
				return body, bff.CacheBypass, nil
			}
			e.origin.version.Store(1)
			done := make(chan []byte, 1)
			go func() {
				b, status, err := e.cache.View(context.Background(), userA, "tok")
				if err != nil || status != bff.CacheMiss {
					t.Errorf("racing view: %s %v", status, err)
				}
				done <- b
			}()
			<-readOrigin
			// The profile changes and is invalidated while the load is in flight.
			e.origin.version.Store(2)
			if viaOtherReplica {
				other.cache.Invalidate(context.Background(), userA)
			} else {
				e.cache.Invalidate(context.Background(), userA)
			}
			// A caller arriving now must not join the stale load (same
			// replica) nor find its result later.
			e.origin.ViewFn = nil
			close(release)
			if b := <-done; !strings.Contains(string(b), `"version":1`) {
				t.Fatalf("racing view answered %s", b)
			}
			stored, err := e.rdb.Get(context.Background(), viewKey(userA)).Result()
			if err == nil && strings.Contains(stored, `"version":1`) {
				t.Fatalf("the stale load was written after the invalidation: %s", stored)
			}
			body, _ := e.view(t, userA)
			if !strings.Contains(string(body), `"version":2`) {
				t.Fatalf("served %s after the invalidation, want version 2", body)
			}
			if e.counter(t, "bff.cache.writes", "result", "stale") != 1 {
				t.Fatal("the skipped stale write is not counted")
			}
		})
	}
}

func TestInvalidateMakesLaterCallersSkipTheLoadInFlight(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	readOrigin, release := e.origin.holdFirstLoad(t)
	done := make(chan struct{})
	go func() { defer close(done); _, _, _ = e.cache.View(context.Background(), userA, "tok") }()
	<-readOrigin
	e.origin.version.Store(2)
	e.cache.Invalidate(context.Background(), userA)
	// This caller does not join the load that read version 1.
	body, status := e.view(t, userA)
	if status != bff.CacheMiss || !strings.Contains(string(body), `"version":2`) {
		t.Fatalf("%s %s, want a fresh MISS with version 2", status, body)
	}
	release()
	<-done
	if body, _ := e.view(t, userA); !strings.Contains(string(body), `"version":2`) {
		t.Fatalf("then served %s", body)
	}
}

func TestViewsNeverLeakBetweenUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a, _ := e.view(t, userA)
	// Someone (a bug, an operator) put A's entry under B's key.
	stored, err := e.rdb.Get(context.Background(), viewKey(userA)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Set(context.Background(), viewKey(userB), stored, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	b, status := e.view(t, userB)
	if status != bff.CacheMiss || string(b) == string(a) || !strings.Contains(string(b), userB) {
		t.Fatalf("B got %s %s", status, b)
	}
	// And the bad entry was replaced by B's own.
	if b2, status := e.view(t, userB); status != bff.CacheHit || string(b2) != string(b) {
		t.Fatalf("then %s %s", status, b2)
	}
}

func TestBadUserIDIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, id := range []string{"", "a b", "x}y", strings.Repeat("a", 65), "a\nb", "*"} {
		if _, _, err := e.cache.View(context.Background(), id, "tok"); !errors.Is(err, rediscache.ErrBadUserID) {
			t.Fatalf("View(%q): %v", id, err)
		}
	}
	if e.origin.loads.Load() != 0 {
		t.Fatal("the origin was asked for a bad id")
	}
}

func TestOriginErrorsAreNotCached(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	errAuth := errors.New("auth: token not valid")
	e.origin.ViewFn = func(context.Context, string, string) ([]byte, bff.CacheStatus, error) {
		return nil, bff.CacheBypass, errAuth
	}
	if _, _, err := e.cache.View(context.Background(), userA, "tok"); !errors.Is(err, errAuth) {
		t.Fatalf("got %v, want the origin's error", err)
	}
	e.origin.ViewFn = nil
	if _, status := e.view(t, userA); status != bff.CacheMiss {
		t.Fatalf("after an origin error: %s, want MISS", status)
	}
	if n := e.origin.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}

func TestRedisDownBypassesAndComesBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{opts: rediscache.Options{Timeout: 100 * time.Millisecond}})
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the view to be cached", func() bool {
		_, status := e.view(t, userA)
		return status == bff.CacheHit
	}))
	e.redis.Stop()
	for i := range 10 {
		body, status := e.view(t, userA)
		if status != bff.CacheBypass || string(body) != string(e.origin.body(userA)) {
			t.Fatalf("request %d during the outage: %s %s", i, status, body)
		}
	}
	if got := e.breaker.State(context.Background()); got != breaker.Open && got != breaker.HalfOpen {
		t.Fatalf("breaker %s during the outage, want open", got)
	}
	if e.counter(t, "bff.breaker.transitions", "to", "open") < 1 {
		t.Fatal("the breaker never opened")
	}
	if e.counter(t, "bff.cache.requests", "result", "bypass") < 10 {
		t.Fatal("bypasses not counted")
	}
	// Invalidation while down fails softly.
	e.cache.Invalidate(context.Background(), userA)

	if err := e.redis.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The half-open probe brings the cache back without anyone's help.
	testenv.Eventually(t, 10*time.Second, testenv.Holds("HITs to return", func() bool {
		_, status := e.view(t, userA)
		return status == bff.CacheHit
	}))
	if got := e.breaker.State(context.Background()); got != breaker.Closed {
		t.Fatalf("breaker %s after recovery", got)
	}
}

func TestSlowRedisOpensTheBreaker(t *testing.T) {
	t.Parallel()
	base := newEnv(t, envOptions{})
	proxy := newStallProxy(t, base.redis.Addr)
	e := newEnv(t, envOptions{sharedRedis: base.redis, redisURL: proxy.url(), opts: rediscache.Options{Timeout: 50 * time.Millisecond}})
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the view to be cached through the proxy", func() bool {
		_, status := e.view(t, userA)
		return status == bff.CacheHit
	}))
	proxy.stalled.Store(true)
	for i := range 6 {
		body, status := e.view(t, userA)
		if status != bff.CacheBypass || !strings.Contains(string(body), userA) {
			t.Fatalf("request %d with Redis stalled: %s %s", i, status, body)
		}
	}
	if got := e.breaker.State(context.Background()); got == breaker.Closed {
		t.Fatal("timeouts did not open the breaker")
	}
	if e.counter(t, "bff.breaker.rejections", "breaker", "redis") < 1 {
		t.Fatal("the open breaker never refused a call: requests kept waiting on Redis")
	}
	proxy.stalled.Store(false)
	testenv.Eventually(t, 10*time.Second, testenv.Holds("HITs to return", func() bool {
		_, status := e.view(t, userA)
		return status == bff.CacheHit
	}))
}

func TestCancelledCallersDoNotTripTheBreaker(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		if _, _, err := e.cache.View(ctx, userA, "tok"); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
	}
	if got := e.breaker.State(context.Background()); got != breaker.Closed {
		t.Fatalf("cancelled requests opened the breaker: %s", got)
	}
	if e.origin.loads.Load() != 0 {
		t.Fatal("a cancelled request loaded from the origin")
	}
}

func TestLookupSpansCarryTheResult(t *testing.T) {
	t.Parallel()
	bs := rediscache.BreakerSettings()
	bs.OpenTimeout = time.Hour
	e := newEnv(t, envOptions{breaker: bs})
	e.view(t, userA)
	e.view(t, userA)
	for range bs.FailuresToOpen {
		_ = e.breaker.Do(context.Background(), func(context.Context) error { return errors.New("down") })
	}
	e.view(t, userA)
	var results []string
	for _, s := range e.spans.Ended() {
		if s.Name() != "cache.view" {
			continue
		}
		attrs := attribute.NewSet(s.Attributes()...)
		v, _ := attrs.Value("cache.result")
		results = append(results, v.AsString())
	}
	if strings.Join(results, ",") != "miss,hit,bypass" {
		t.Fatalf("cache.view spans' cache.result: %v", results)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	if _, err := rediscache.New(nil, e.origin, rediscache.Options{}); err == nil {
		t.Fatal("nil client accepted")
	}
	if _, err := rediscache.New(e.rdb, nil, rediscache.Options{}); err == nil {
		t.Fatal("nil origin accepted")
	}
	if _, err := rediscache.New(e.rdb, e.origin, rediscache.Options{Jitter: 0.9}); err == nil {
		t.Fatal("jitter of 90% accepted")
	}
}

func TestBreakerSettingsCountACacheMissAsSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	reg, err := breaker.NewRegistry(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := reg.New("redis", rediscache.BreakerSettings())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 10 {
		err := b.Do(ctx, func(ctx context.Context) error { return e.rdb.Get(ctx, "no-such-key").Err() })
		if !errors.Is(err, redis.Nil) {
			t.Fatalf("got %v, want redis.Nil", err)
		}
	}
	if got := b.State(ctx); got != breaker.Closed {
		t.Fatalf("cache misses opened the breaker: %s", got)
	}
	e.redis.Stop()
	for range rediscache.BreakerSettings().FailuresToOpen {
		_ = b.Do(ctx, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			return e.rdb.Get(ctx, "no-such-key").Err()
		})
	}
	if got := b.State(ctx); got != breaker.Open {
		t.Fatalf("state %s with Redis down, want open", got)
	}
}

// TestAReadAfterAWriteNeverJoinsAnOlderLoad: replica B has a load of a
// view in flight, begun before a write; the write is answered (its
// eviction through replica A moved the user's generation on, or an
// eviction that failed was followed by a move of the shared epoch); a
// read on B after that must not join B's older load, which read the
// origins before the write: the load in flight is keyed by the user, the
// generation and the epoch read in the lookup, not by the user alone.
func TestAReadAfterAWriteNeverJoinsAnOlderLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, a *env)
	}{
		{name: "evicted through another replica", write: func(t *testing.T, a *env) {
			a.cache.Invalidate(context.Background(), userA)
		}},
		{name: "the epoch moved on after a failed eviction", write: func(t *testing.T, a *env) {
			testenv.Must(t, a.rdb.Incr(context.Background(), rediscache.DefaultKeyPrefix+"epoch").Err(), "move the epoch on")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newEnv(t, envOptions{})
			b := newEnv(t, envOptions{sharedRedis: a.redis})
			readOrigin, free := b.origin.holdFirstLoad(t)
			first := make(chan struct{})
			go func() { defer close(first); _, _, _ = b.cache.View(context.Background(), userA, "tok") }()
			<-readOrigin // B's first load read the origins: version 0
			b.origin.version.Store(2)
			tc.write(t, a)
			type answer struct {
				body   []byte
				status bff.CacheStatus
				err    error
			}
			second := make(chan answer, 1)
			go func() {
				body, status, err := b.cache.View(context.Background(), userA, "tok")
				second <- answer{body, status, err}
			}()
			testenv.Eventually(t, 10*time.Second, testenv.Holds("the read after the write to load the view itself", func() bool {
				return b.origin.loads.Load() == 2
			}))
			got := <-second
			free()
			<-first
			if got.err != nil || got.status != bff.CacheMiss || !strings.Contains(string(got.body), `"version":2`) {
				t.Fatalf("the read after the write: %s %s %v, want a MISS with version 2", got.status, got.body, got.err)
			}
		})
	}
}
