package authd_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/acme/customer-platform/internal/testenv/systest"
)

func wantThrottled(t *testing.T, a answer) {
	t.Helper()
	wantDetail(t, a, http.StatusTooManyRequests, "throttled", "")
	n, err := strconv.Atoi(a.Header.Get("Retry-After"))
	if err != nil || n < 1 || n > 3600 {
		t.Fatalf("Retry-After %q", a.Header.Get("Retry-After"))
	}
}

// rateLimitScenario runs the same checks on a fresh service with limits.
func rateLimitScenario(t *testing.T, withRedis bool) {
	s := startWith(t, systest.Options{Redis: withRedis, Env: map[string]string{
		"AUTH_RATE_LIMITS": "register=3/1m,register_email=2/1m,login=6/1m,login_email=4/1m,login_failures=3/10m"}})

	// Register: per email, then per address.
	s.register("ra@example.com", "Ra", "One")
	if f := s.post("/api/auth/register/", "", regBody("ra@example.com", "Ra", "One", goodPassword)).fields(t); f["email"] == nil {
		t.Fatalf("second registration: %v", f)
	}
	wantThrottled(t, s.post("/api/auth/register/", "", regBody("RA@example.com", "Ra", "One", goodPassword)))
	wantThrottled(t, s.post("/api/auth/register/", "", regBody("rb@example.com", "Rb", "Two", goodPassword)))
	if n := s.countByEmail("rb@example.com"); n != 0 {
		t.Fatal("a throttled registration created a user")
	}

	// Failed logins lock the email out, also with the right password, and an
	// unknown email is treated the same.
	for range 3 {
		wantDetail(t, s.login("ra@example.com", "wrong-password"), http.StatusUnauthorized, "no_active_account", "")
	}
	wantThrottled(t, s.login("ra@example.com", goodPassword))
	for range 2 {
		wantDetail(t, s.login("ghost@example.com", "wrong-password"), http.StatusUnauthorized, "no_active_account", "")
	}
	// Per-address login limit: the 6 of this minute are used.
	wantThrottled(t, s.login("ghost2@example.com", "wrong-password"))
}

func TestRateLimitInMemory(t *testing.T) {
	t.Parallel()
	rateLimitScenario(t, false)
}

func TestRateLimitRedis(t *testing.T) {
	t.Parallel()
	rateLimitScenario(t, true)
}

func TestRateLimitSharedAcrossReplicas(t *testing.T) {
	t.Parallel()
	sys := systest.Start(t, systest.Options{Services: []string{"auth"}, Replicas: map[string]int{"auth": 2}, Redis: true,
		Env: map[string]string{"AUTH_RATE_LIMITS": "login_email=3/1m,login=off,login_failures=off"}})
	a, b := replica(t, sys.Replicas("auth")[0]), replica(t, sys.Replicas("auth")[1])
	for i, s := range []*server{a, b, a} {
		if got := s.login("shared@example.com", "whatever-pass"); got.Status != http.StatusUnauthorized {
			t.Fatalf("login %d: %d %s", i, got.Status, got.Body)
		}
	}
	wantThrottled(t, b.login("shared@example.com", "whatever-pass"))
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	limits := "login=2/1m,login_email=off,login_failures=off"
	xff := func(s *server, ip string) answer {
		return s.do(req{method: http.MethodPost, path: "/api/auth/login/", body: map[string]any{"email": "p@example.com", "password": "whatever-pass"},
			header: map[string]string{"X-Forwarded-For": ip}})
	}
	// Behind a trusted proxy, each forwarded client has its own budget.
	trusted := start(t, map[string]string{"AUTH_RATE_LIMITS": limits, "TRUSTED_PROXIES": "127.0.0.1/32"})
	for range 2 {
		xff(trusted, "203.0.113.7")
	}
	wantThrottled(t, xff(trusted, "203.0.113.7"))
	if a := xff(trusted, "203.0.113.8"); a.Status != http.StatusUnauthorized {
		t.Fatalf("another forwarded client: %d %s", a.Status, a.Body)
	}
	// Without trusted proxies the header is ignored: the peer is the client.
	direct := start(t, map[string]string{"AUTH_RATE_LIMITS": limits})
	xff(direct, "203.0.113.1")
	xff(direct, "203.0.113.2")
	wantThrottled(t, xff(direct, "203.0.113.3"))
}
