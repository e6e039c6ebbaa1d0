package ratelimit_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/auth/ratelimit"
	"github.com/acme/customer-platform/internal/redisconn"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestParseRules(t *testing.T) {
	t.Parallel()
	r, err := ratelimit.ParseRules("register=10/1m, login=20/m ,login_email=5/30s,service_token=off,login_failures=3/10m")
	if err != nil {
		t.Fatal(err)
	}
	want := "register=10/1m0s,register_email=5/1m0s,login=20/1m0s,login_email=5/30s,service_token=off,login_failures=3/10m0s"
	if r.String() != want {
		t.Fatalf("rules %s, want %s", r, want)
	}
	if r, _ := ratelimit.ParseRules(""); r.String() != ratelimit.DefaultRules().String() {
		t.Fatalf("empty: %s", r)
	}
	if r, _ := ratelimit.ParseRules("OFF"); !r.Off || r.String() != "off" {
		t.Fatalf("off: %s", r)
	}
	for _, bad := range []string{"register", "register=10", "register=0/1m", "register=-1/1m", "register=x/1m", "register=10/0s", "register=10/500ms", "registr=10/1m", "login=10/forever"} {
		if _, err := ratelimit.ParseRules(bad); err == nil {
			t.Errorf("ParseRules(%q) accepted", bad)
		}
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func TestLockoutFor(t *testing.T) {
	t.Parallel()
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for extra, w := range want {
		if got := ratelimit.LockoutFor(int64(extra), 5*time.Minute); got != w {
			t.Errorf("LockoutFor(%d) = %s, want %s", extra, got, w)
		}
	}
	if got := ratelimit.LockoutFor(1<<40, time.Hour); got != time.Hour {
		t.Errorf("huge count: %s", got)
	}
}

// scenario checks a limiter against rules: window counting, reset after the
// window, lockout growth and reset on success.
func scenario(t *testing.T, b ratelimit.Backend, advance func(time.Duration)) {
	ctx := context.Background()
	rules, err := ratelimit.ParseRules("login=3/2s,login_failures=2/1h")
	if err != nil {
		t.Fatal(err)
	}
	l := ratelimit.New(rules, b)
	for i := range 3 {
		if d, err := l.Allow(ctx, auth.BucketLogin, "10.0.0.1"); err != nil || d != 0 {
			t.Fatalf("request %d refused: %s %v", i, d, err)
		}
	}
	d, err := l.Allow(ctx, auth.BucketLogin, "10.0.0.1")
	if err != nil || d < time.Second || d > 2*time.Second {
		t.Fatalf("4th request: retry after %s, %v", d, err)
	}
	if d, _ := l.Allow(ctx, auth.BucketLogin, "10.0.0.2"); d != 0 {
		t.Fatal("another key was limited")
	}
	if d, _ := l.Allow(ctx, auth.BucketRegister, "10.0.0.1"); d != 0 {
		t.Fatal("a bucket without a rule was limited")
	}
	advance(2100 * time.Millisecond)
	if d, _ := l.Allow(ctx, auth.BucketLogin, "10.0.0.1"); d != 0 {
		t.Fatalf("after the window: retry after %s", d)
	}

	key := auth.EmailKey("a@example.com")
	_ = l.LoginFailed(ctx, key)
	if d, _ := l.LockedOut(ctx, key); d != 0 {
		t.Fatal("locked after one failure")
	}
	_ = l.LoginFailed(ctx, key)
	if d, _ := l.LockedOut(ctx, key); d < 29*time.Second || d > 30*time.Second {
		t.Fatalf("first lockout %s, want 30s", d)
	}
	_ = l.LoginFailed(ctx, key)
	if d, _ := l.LockedOut(ctx, key); d < 59*time.Second || d > time.Minute {
		t.Fatalf("second lockout %s, want 1m", d)
	}
	_ = l.LoginSucceeded(ctx, key)
	if d, _ := l.LockedOut(ctx, key); d != 0 {
		t.Fatalf("still locked after a success: %s", d)
	}
	_ = l.LoginFailed(ctx, key)
	if d, _ := l.LockedOut(ctx, key); d != 0 {
		t.Fatal("the failure count was not reset by the success")
	}

	off := ratelimit.New(ratelimit.Rules{Off: true}, b)
	for range 10 {
		_ = off.LoginFailed(ctx, "k")
		if d, _ := off.Allow(ctx, auth.BucketLogin, "10.0.0.1"); d != 0 {
			t.Fatal("limits off still limited")
		}
	}
	if d, _ := off.LockedOut(ctx, "k"); d != 0 {
		t.Fatal("limits off still locked out")
	}
}

func TestMemory(t *testing.T) {
	t.Parallel()
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	scenario(t, ratelimit.NewMemory(c.now), c.add)
}

func TestRedis(t *testing.T) {
	t.Parallel()
	r := testenv.Redis(t)
	rc, err := redisconn.Open(r.URL, redisconn.Options{})
	testenv.Must(t, err, "redis")
	defer rc.Close()
	scenario(t, ratelimit.NewRedis(rc), func(d time.Duration) { time.Sleep(d) })
	keys, err := rc.Keys(context.Background(), "*").Result()
	testenv.Must(t, err, "keys")
	for _, k := range keys {
		if !strings.HasPrefix(k, "auth:rl:") {
			t.Errorf("key %q outside the auth:rl: namespace", k)
		}
		if ttl := rc.PTTL(context.Background(), k).Val(); ttl <= 0 {
			t.Errorf("key %q has no expiry", k)
		}
	}
}

func TestMemoryConcurrentCounting(t *testing.T) {
	t.Parallel()
	l := ratelimit.New(ratelimit.Rules{Buckets: map[string]ratelimit.Rate{auth.BucketLogin: {Limit: 50, Window: time.Hour}}}, ratelimit.NewMemory(nil))
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for range 80 {
		wg.Go(func() {
			if d, _ := l.Allow(context.Background(), auth.BucketLogin, "k"); d > 0 {
				mu.Lock()
				refused++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if refused != 30 {
		t.Fatalf("%d of 80 refused with a limit of 50", refused)
	}
}

// TestRedisCluster: the same scenario on a real 3-master Redis Cluster:
// every command and script touches keys of one slot (Clear's keys are
// deleted one command each), so nothing is refused as CROSSSLOT.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	cl := testenv.RedisCluster(t)
	rc, err := redisconn.Open(cl.URL, redisconn.Options{})
	testenv.Must(t, err, "redis cluster")
	defer rc.Close()
	scenario(t, ratelimit.NewRedis(rc), func(d time.Duration) { time.Sleep(d) })
}
