package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestRedisCluster runs the whole system on a real Redis Cluster of three
// masters that the test starts itself (REDIS_URL redis-cluster://...), two
// BFF replicas sharing it, and exercises everything the services do with
// Redis: the BFF's cache (a MISS, then a HIT at the other replica; a write
// through one replica read through the other), the change feed (a direct
// write at the customer service relayed from its outbox to the stream and
// consumed by the BFF's group, which evicts the view), the erasure cascade
// (a user deleted at the auth service: the customer service's group
// deletes the profile, the BFF's evicts the view) and auth's rate limiter
// (its Lua script and the lockout's keys). A command refused in cluster
// mode (CROSSSLOT, a script touching keys of two slots) shows as a wrong
// answer here and as a log line naming it, which the test also looks for.
// Skipped only when redis-server is not installed.
func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("system test on a Redis Cluster: not in the fast tier (-short)")
	}
	t.Parallel()
	cluster := testenv.RedisCluster(t)
	// Limits high enough never to refuse the test's own calls, except
	// the lockout: two failed logins in a row lock an email.
	authEnv := maps.Clone(adminEnv)
	authEnv["AUTH_RATE_LIMITS"] = "register=1000/1m,register_email=1000/1m,login=1000/1m,login_email=1000/1m,service_token=1000/1m,login_failures=2/15m"
	sys := systest.Start(t, systest.Options{
		Replicas: map[string]int{"bff": 2},
		RedisURL: cluster.URL,
		ServiceEnv: map[string]map[string]string{
			"auth": authEnv,
			// The cache's hit-path budget (50 ms) is for production; on a
			// loaded test machine a slow answer would open the breaker
			// and turn the HITs this test expects into BYPASS.
			"bff": {"REDIS_TIMEOUT": "1s"},
		},
	})
	for _, in := range sys.Replicas("auth") {
		if got := in.Env["REDIS_URL"]; got != cluster.URL {
			t.Fatalf("%s runs with REDIS_URL %q, want the cluster's %q", in, got, cluster.URL)
		}
	}
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs})
	defer rdb.Close()
	ctx := context.Background()
	bffs := sys.Replicas("bff")
	a, b := bffs[0].URL, bffs[1].URL

	// Registration through the BFF (its saga, the idempotency key).
	p := newPerson("cluster")
	reg := testenv.Call(t, nil, http.MethodPost, a+"/api/bff/register/", p.registration(), map[string]string{"Idempotency-Key": "cluster-" + p.email})
	if reg.Status != http.StatusCreated {
		t.Fatalf("register through the BFF: %s", reg)
	}
	tok := sessionOf(t, reg)
	var created struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	reg.JSON(t, &created)
	userID := created.User.ID

	// The cache: a MISS at one replica, then a HIT at the other, once the
	// registration's change events (which evict the view) are handled.
	testenv.Eventually(t, 15*time.Second, func() error { return sys.FeedSettled(ctx, "bff", "customer") })
	me := func(base string) testenv.Answer {
		return testenv.Call(t, nil, http.MethodGet, base+"/api/bff/me/", nil, testenv.Bearer(tok.access))
	}
	if got := me(a); got.Status != http.StatusOK || got.Header.Get("X-Cache") != "MISS" {
		t.Errorf("first GET /api/bff/me/ at bff[0]: %s (X-Cache %q), want 200 MISS", got, got.Header.Get("X-Cache"))
	}
	if got := me(b); got.Status != http.StatusOK || got.Header.Get("X-Cache") != "HIT" {
		t.Errorf("GET /api/bff/me/ at bff[1] after bff[0] cached it: %s (X-Cache %q), want 200 HIT", got, got.Header.Get("X-Cache"))
	}

	// A write through one replica, read through the other at once: no
	// stale view, then cached again.
	patch := testenv.Call(t, nil, http.MethodPatch, a+"/api/bff/me/", map[string]string{"first_name": "Ada 1", "city": "Town 1"}, testenv.Bearer(tok.access))
	if patch.Status != http.StatusOK {
		t.Fatalf("PATCH /api/bff/me/ at bff[0]: %s", patch)
	}
	if first, city := viewOf(t, me(b)); first != "Ada 1" || city != "Town 1" {
		t.Fatalf("GET /api/bff/me/ at bff[1] after the PATCH at bff[0]: first_name %q, city %q; want Ada 1, Town 1", first, city)
	}
	// The PATCH's own change events evict the view again when the BFF's
	// group handles them; once every event is relayed and handled, a
	// view loaded at one replica is a HIT at the other.
	testenv.Eventually(t, 15*time.Second, func() error { return sys.FeedSettled(ctx, "bff", "customer") })
	me(b)
	if got := me(a); got.Header.Get("X-Cache") != "HIT" {
		t.Errorf("GET /api/bff/me/ at bff[0] after bff[1] loaded it: X-Cache %q, want HIT", got.Header.Get("X-Cache"))
	}

	// A direct write at the customer service: its event goes outbox →
	// stream → the BFF's consumer group, which evicts the view.
	direct := testenv.Call(t, nil, http.MethodPatch, sys.URL("customer")+"/api/v1/customers/profile/update/", map[string]string{"city": "Direct City"}, testenv.Bearer(tok.access))
	if direct.Status != http.StatusOK {
		t.Fatalf("PATCH profile/update/ at the customer service: %s", direct)
	}
	testenv.Eventually(t, 15*time.Second, func() error {
		got := me(b)
		if _, city := viewOf(t, got); city != "Direct City" {
			return fmt.Errorf("the BFF still serves city %q (X-Cache %q) after a direct write at the customer service", city, got.Header.Get("X-Cache"))
		}
		return nil
	})
	testenv.Eventually(t, 15*time.Second, func() error { return sys.FeedSettled(ctx, "bff", "customer") })

	// Auth's rate limiter on the cluster: the lockout's counter (its Lua
	// script) counts failed logins, a success forgets them (DEL of the
	// counter and the lock), and two failures in a row lock the email.
	login := func(password string) testenv.Answer {
		return testenv.Call(t, nil, http.MethodPost, sys.URL("auth")+"/api/auth/login/", map[string]string{"email": p.email, "password": password}, nil)
	}
	for i, step := range []struct {
		password string
		want     int
	}{
		{"wrong-password-1", http.StatusUnauthorized},
		{p.password, http.StatusOK}, // forgets the first failure
		{"wrong-password-2", http.StatusUnauthorized},
		{p.password, http.StatusOK}, // one failure counted, not two: no lockout
		{"wrong-password-3", http.StatusUnauthorized},
		{"wrong-password-4", http.StatusUnauthorized}, // the second in a row: locked
		{p.password, http.StatusTooManyRequests},
	} {
		if got := login(step.password); got.Status != step.want {
			t.Errorf("login %d (%s password): %s, want %d", i+1, map[bool]string{true: "right", false: "wrong"}[step.password == p.password], got, step.want)
			break // the later steps assume this one
		}
	}
	if n := countKeys(ctx, t, rdb, "auth:rl:*"); n == 0 {
		t.Error("no rate-limit key auth:rl:* in the cluster")
	}

	// The user deleted at the auth service: the customer service's group
	// erases the profile, the BFF's evicts the view.
	del := testenv.Call(t, nil, http.MethodDelete, sys.URL("auth")+"/api/auth/profile/delete/", nil, testenv.Bearer(tok.access))
	if del.Status != http.StatusNoContent {
		t.Fatalf("DELETE /api/auth/profile/delete/: %s", del)
	}
	admin := adminToken(t, sys.URL("auth"))
	testenv.Eventually(t, 15*time.Second, func() error {
		got := testenv.Call(t, nil, http.MethodPost, sys.URL("customer")+"/api/v1/customers/check_profile_exists/",
			map[string]string{"user_id": userID}, testenv.Bearer(admin))
		var v struct {
			Exists bool `json:"exists"`
		}
		got.JSON(t, &v)
		if got.Status != http.StatusOK || v.Exists {
			return fmt.Errorf("the deleted user's profile: %s", got)
		}
		return nil
	})
	for _, base := range []string{a, b} {
		testenv.Eventually(t, 15*time.Second, func() error {
			if got := me(base); got.Status == http.StatusOK {
				return fmt.Errorf("%s still serves the deleted user's view (X-Cache %q)", base, got.Header.Get("X-Cache"))
			}
			return nil
		})
	}
	testenv.Eventually(t, 15*time.Second, func() error { return sys.FeedSettled(ctx, "bff", "customer") })

	// The keys were spread over the masters (the cluster was used as one),
	// and no service met a command the cluster refused.
	used := 0
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		if n > 0 {
			used++
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if used < 2 {
		t.Errorf("keys on %d of 3 masters", used)
	}
	for _, in := range sys.Replicas("auth") {
		checkNoClusterErrors(t, in)
	}
	for _, in := range sys.Replicas("customer") {
		checkNoClusterErrors(t, in)
	}
	for _, in := range bffs {
		checkNoClusterErrors(t, in)
	}
}

// viewOf is the merged view's first name and city.
func viewOf(t *testing.T, a testenv.Answer) (firstName, city string) {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("GET /api/bff/me/: %s", a)
	}
	var v struct {
		User struct {
			FirstName string `json:"first_name"`
		} `json:"user"`
		Profile struct {
			City string `json:"city"`
		} `json:"profile"`
	}
	a.JSON(t, &v)
	return v.User.FirstName, v.Profile.City
}

// countKeys counts the keys matching pattern on every master.
func countKeys(ctx context.Context, t *testing.T, rdb *redis.ClusterClient, pattern string) int {
	t.Helper()
	var n atomic.Int64
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, pattern).Result()
		n.Add(int64(len(keys)))
		return err
	})
	testenv.Must(t, err, "KEYS %s", pattern)
	return int(n.Load())
}

// checkNoClusterErrors fails the test for a log line of in that names an
// error only a cluster gives.
func checkNoClusterErrors(t *testing.T, in *systest.Instance) {
	t.Helper()
	for _, line := range strings.Split(in.Logs.String(), "\n") {
		for _, e := range []string{"CROSSSLOT", "MOVED", "ASK ", "CLUSTERDOWN", "TRYAGAIN"} {
			if strings.Contains(line, e) {
				t.Errorf("%s logged %s: %s", in, e, line)
			}
		}
	}
}

// The bootstrap admin the auth service creates at start: the tests'
// staff account for looking at what the services hold (any service's
// client may lose a right it does not need; the admin keeps them).
const (
	e2eAdminEmail    = "e2e-admin@e2e-example.com"
	e2eAdminPassword = "Admin-E2E-Quartz-4417"
)

// adminEnv creates the bootstrap admin at the auth service's start.
var adminEnv = map[string]string{"AUTH_BOOTSTRAP_ADMIN_EMAIL": e2eAdminEmail, "AUTH_BOOTSTRAP_ADMIN_PASSWORD": e2eAdminPassword}

// adminToken is the bootstrap admin's access token, from the auth service
// at base.
func adminToken(t *testing.T, base string) string {
	t.Helper()
	a := testenv.Call(t, nil, http.MethodPost, base+"/api/auth/login/",
		map[string]string{"email": e2eAdminEmail, "password": e2eAdminPassword}, nil)
	if a.Status != http.StatusOK {
		t.Fatalf("the admin's login: %s", a)
	}
	var v struct {
		Tokens struct {
			Access string `json:"access"`
		} `json:"tokens"`
	}
	a.JSON(t, &v)
	if v.Tokens.Access == "" {
		t.Fatalf("the admin's login: no access token in %s", a)
	}
	return v.Tokens.Access
}
