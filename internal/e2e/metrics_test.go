package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/testenv"
)

// total sums the samples of name carrying every label in labels.
func total(t *testing.T, text, name string, labels ...string) float64 {
	t.Helper()
	_, values := samples(t, text, name, labels...)
	var sum float64
	for _, v := range values {
		sum += v
	}
	return sum
}

// requests counts a service's HTTP requests by route, method and status.
func requests(t *testing.T, text, method, route string, status int) float64 {
	t.Helper()
	return sample(t, text, "http_server_request_duration_seconds_count",
		`http_request_method="`+method+`"`, `http_route="`+route+`"`, `http_response_status_code="`+strconv.Itoa(status)+`"`)
}

// After a known sequence of requests, each service's /metrics counts them:
// requests by route and status, outbound calls by upstream, cache hits,
// misses and bypasses, breaker states, registrations by outcome, the
// reconciler's backlog, and the password hashes.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	t.Parallel()
	// The cache's Redis budget (50 ms) is for production: on a loaded test
	// machine an eviction that misses it leaves its change event to be
	// claimed 30 s later, and the counts below would wait for it. Redis
	// stopped below is refused at once whatever the budget.
	s := newStack(t, map[string]string{"REDIS_TIMEOUT": "1s"})
	bffURL := s.bff.URL + "/api/bff/"
	a, b := newPerson("metrics-a"), newPerson("metrics-b")
	for _, p := range []person{a, b} {
		if r := testenv.Call(t, nil, http.MethodPost, bffURL+"register/", p.registration(), nil); r.Status != http.StatusCreated {
			t.Fatalf("register: %s", r)
		}
	}
	// The new profiles' change notifications reach the BFF before the
	// reads, so that none of them lands between a read and the next.
	testenv.Eventually(t, 10*time.Second, testenv.Holds("both change notifications are received", func() bool {
		return sample(t, scrape(t, s.bff), "bff_cache_change_messages_total", `result="invalidated"`) == 2
	}))
	bad := a.registration()
	bad["email"], bad["password2"] = "other-"+a.email, "Not-The-Same-1"
	if r := testenv.Call(t, nil, http.MethodPost, bffURL+"register/", bad, nil); r.Status != http.StatusBadRequest {
		t.Fatalf("invalid registration: %s", r)
	}
	login := testenv.Call(t, nil, http.MethodPost, bffURL+"login/", map[string]any{"email": a.email, "password": a.password}, nil)
	if login.Status != http.StatusOK || login.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("login: %s %v", login, login.Header)
	}
	tk := sessionOf(t, login)
	for range 2 {
		if r := testenv.Call(t, nil, http.MethodGet, bffURL+"me/", nil, testenv.Bearer(tk.access)); r.Status != http.StatusOK || r.Header.Get("X-Cache") != "HIT" {
			t.Fatalf("read: %s %v", r, r.Header)
		}
	}
	if r := testenv.Call(t, nil, http.MethodGet, bffURL+"me/", nil, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("read without a token: %s", r)
	}
	// A registration whose profile cannot be created: compensated, the
	// reconciler verifies it afterwards.
	fault(s.custProxy, http.MethodPost, createPath, http.StatusInternalServerError, false)
	failed := testenv.Call(t, nil, http.MethodPost, bffURL+"register/", newPerson("metrics-c").registration(), nil)
	_ = s.custProxy.Pass()
	if failed.Status < 500 {
		t.Fatalf("failed registration: %s", failed)
	}
	testenv.Eventually(t, 15*time.Second, testenv.Holds("the reconciler finishes the failed registration", func() bool {
		m := scrape(t, s.bff)
		return sample(t, m, "bff_saga_outcomes_total", `outcome="compensated"`) == 1 && sample(t, m, "bff_reconciler_backlog") == 0
	}))
	// Redis goes away: reads bypass the cache, and the third failure in a
	// row opens the redis breaker.
	s.Redis.Stop()
	for range 3 {
		if r := testenv.Call(t, nil, http.MethodGet, bffURL+"me/", nil, testenv.Bearer(tk.access)); r.Status != http.StatusOK || r.Header.Get("X-Cache") != "BYPASS" {
			t.Fatalf("read without Redis: %s %v", r, r.Header)
		}
	}

	bffM, authM, custM := scrape(t, s.bff), scrape(t, s.auth), scrape(t, s.customer)
	for _, c := range []struct {
		method, route string
		status        int
		want          float64
	}{
		{"POST", "/api/bff/register/", 201, 2},
		{"POST", "/api/bff/register/", 400, 1},
		{"POST", "/api/bff/register/", failed.Status, 1},
		{"POST", "/api/bff/login/", 200, 1},
		{"GET", "/api/bff/me/", 200, 5},
		{"GET", "/api/bff/me/", 401, 1},
	} {
		if got := requests(t, bffM, c.method, c.route, c.status); got != c.want {
			t.Errorf("bff %s %s %d: %v requests counted, want %v", c.method, c.route, c.status, got, c.want)
		}
	}
	if got := total(t, bffM, "http_server_request_duration_seconds_count"); got != 11 {
		t.Errorf("bff: %v requests counted in all, want 11", got)
	}
	for result, want := range map[string]float64{"hit": 2, "miss": 1, "bypass": 3} {
		if got := sample(t, bffM, "bff_cache_requests_total", `result="`+result+`"`); got != want {
			t.Errorf("cache %s: %v, want %v", result, got, want)
		}
	}
	for outcome, want := range map[string]float64{"completed": 2, "compensated": 1, "pending": 1, "failed": 0} {
		if got := sample(t, bffM, "bff_saga_outcomes_total", `saga_kind="register"`, `outcome="`+outcome+`"`); got != want {
			t.Errorf("registrations %s: %v, want %v", outcome, got, want)
		}
	}
	for _, br := range []string{"auth", "customer"} {
		if got := sample(t, bffM, "bff_breaker_state", `breaker="`+br+`"`); got != 0 {
			t.Errorf("breaker %s: state %v, want 0 (closed)", br, got)
		}
	}
	if !strings.Contains(bffM, `bff_breaker_state{breaker="redis"`) {
		t.Error("no state of the redis breaker")
	}
	if got := sample(t, bffM, "bff_breaker_transitions_total", `breaker="redis"`, `to="open"`); got != 1 {
		t.Errorf("redis breaker opened %v times, want 1", got)
	}
	// Each replica compared its clock with the database's (the same
	// clock here) and says what its service allows.
	for name, c := range map[string]struct {
		text    string
		allowed float64
	}{"bff": {bffM, 1}, "auth": {authM, 1}, "customer": {custM, 0.5}} {
		if got := sample(t, c.text, "db_clock_skew_allowed_seconds"); got != c.allowed {
			t.Errorf("%s allows a clock skew of %v s, want %v", name, got, c.allowed)
		}
		if got := sample(t, c.text, "db_clock_skew_seconds"); got < -1 || got > 1 || !strings.Contains(c.text, "\ndb_clock_skew_seconds") {
			t.Errorf("%s: clock skew %v s, want one measured near 0", name, got)
		}
	}
	// The cache spans say what the metrics count, and the breaker's
	// opening is an event on the span of the call that opened it.
	results := map[string]int{}
	opened := 0
	for _, sp := range find(s.spans(), named("bff", "cache.view")) {
		results[sp.attr("cache.result")]++
		for _, ev := range sp.Events {
			if ev.Name == "breaker.state_change" {
				for _, kv := range ev.Attributes {
					if kv.Key == "breaker.to" && kv.Value.AsString() == "open" {
						opened++
					}
				}
			}
		}
	}
	if results["hit"] != 2 || results["miss"] != 1 || results["bypass"] != 3 || opened != 1 {
		t.Errorf("cache.view spans by result %v, breaker opened on %d of them", results, opened)
	}

	// Outbound calls by upstream: as many as reached each service through
	// its proxy; and each service served exactly the calls made to it.
	authCalls, custCalls := float64(len(s.authProxy.Headers())), float64(len(s.custProxy.Headers()))
	const out = "http_client_request_duration_seconds_count"
	if got := total(t, bffM, out, `upstream="auth"`); got != authCalls || got == 0 {
		t.Errorf("bff -> auth: %v calls counted, the proxy saw %v", got, authCalls)
	}
	if got := total(t, bffM, out, `upstream="customer"`); got != custCalls || got == 0 {
		t.Errorf("bff -> customer: %v calls counted, the proxy saw %v", got, custCalls)
	}
	custToAuth := total(t, custM, out, `upstream="auth"`)
	if got := total(t, authM, "http_server_request_duration_seconds_count"); got != authCalls+custToAuth {
		t.Errorf("auth served %v requests, the BFF made %v and the customer service %v", got, authCalls, custToAuth)
	}
	// The failed registration's create never reached the customer service.
	if got := total(t, custM, "http_server_request_duration_seconds_count"); got != custCalls-2 {
		t.Errorf("customer served %v requests, the BFF made %v of which 2 were failed by the proxy", got, custCalls)
	}
	if got := requests(t, custM, "POST", "/api/v1/customers/profile/create/", 201); got != 2 {
		t.Errorf("customer: %v profiles created, want 2", got)
	}
	if got := requests(t, authM, "POST", "/api/auth/register/", 201); got != 3 {
		t.Errorf("auth: %v registrations, want 3", got)
	}
	for op, want := range map[string]float64{"hash": 3, "verify": 1} {
		if got := sample(t, authM, "auth_password_hash_duration_seconds_count", `operation="`+op+`"`); got != want {
			t.Errorf("password %s: %v, want %v", op, got, want)
		}
	}
	for _, name := range []string{"auth_password_hash_active", "auth_password_hash_waiting", "auth_password_hash_limit"} {
		if !strings.Contains(authM, name+"{") {
			t.Errorf("auth lacks %s", name)
		}
	}
	// Every service says who it is.
	for svc, m := range map[string]string{"bff": bffM, "auth": authM, "customer": custM} {
		if !strings.Contains(m, `service_name="`+svc+`"`) {
			t.Errorf("%s: no target_info with its service name", svc)
		}
	}
}
