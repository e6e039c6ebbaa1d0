package rediscache_test

// End-to-end tests of the merged-view cache through the real BFF (bffd.Run)
// with the real auth and customer services in process, on the embedded
// FerretDB and a real Redis.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authhttp "github.com/acme/customer-platform/auth/httpapi"
	bffhttp "github.com/acme/customer-platform/bff/httpapi"
	customerhttp "github.com/acme/customer-platform/customer/httpapi"
	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

const e2ePassword = "Tr1cky-Wombat-Lantern"

// e2eStack is the auth and customer services, a BFF with the Redis cache,
// and optionally a second BFF without one (the origin path, for latency
// comparisons), all sharing one Redis for the change feed.
type e2eStack struct {
	sys      *systest.System
	redis    *embedded.Redis
	auth     *systest.Instance
	customer *systest.Instance
	bff      *systest.Instance
	origin   *systest.Instance // BFF without a cache; nil unless asked for
}

func newE2EStack(t *testing.T, bffEnv map[string]string, withOriginBFF bool) *e2eStack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: not in the fast tier (-short)")
	}
	// The BFFs run with their default timeouts and reconciler interval.
	env := map[string]string{"AUTH_TIMEOUT": "", "CUSTOMER_TIMEOUT": "", "RECONCILE_INTERVAL": "", "SHUTDOWN_TIMEOUT": "2s"}
	maps.Copy(env, bffEnv)
	sys := systest.Start(t, systest.Options{Redis: true, ServiceEnv: map[string]map[string]string{"bff": env}})
	s := &e2eStack{sys: sys, redis: sys.Redis, auth: sys.Service("auth"), customer: sys.Service("customer"), bff: sys.Service("bff")}
	if withOriginBFF {
		s.origin = sys.AddReplica("bff", systest.ReplicaOptions{Env: map[string]string{"REDIS_URL": ""}})
	}
	// The cache's invalidations only work once the BFF listens to the feed.
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the BFF to subscribe to the change feed", func() bool {
		return s.readyDetails(t)["invalidation_subscribed"] == true
	}))
	return s
}

// readyDetails returns the details of the cached BFF's /readyz, which must
// answer 200 whatever Redis does.
func (s *e2eStack) readyDetails(t testing.TB) map[string]any {
	t.Helper()
	a := do(t, http.MethodGet, s.bff.URL+"/readyz", "", nil)
	if a.Status != http.StatusOK {
		t.Fatalf("/readyz: %s", a)
	}
	d, _ := a.Map(t)["details"].(map[string]any)
	return d
}

func (s *e2eStack) redisBreaker(t testing.TB) string {
	t.Helper()
	b, _ := s.readyDetails(t)["breakers"].(map[string]any)
	state, _ := b["redis"].(string)
	return state
}

// user is a registered user with a profile.
type user struct {
	id, access, email string
}

// newUser registers a user at the auth service and creates their profile at
// the customer service, directly (the BFF's registration is not what these
// tests are about).
func (s *e2eStack) newUser(t testing.TB, city string) user {
	t.Helper()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	email := "cache-" + hex.EncodeToString(rnd[:]) + "@example.com"
	a := do(t, http.MethodPost, s.auth.URL+"/api/auth/register/", "", map[string]any{
		"email": email, "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+15555550100",
		"password1": e2ePassword, "password2": e2ePassword,
	})
	if a.Status != http.StatusCreated {
		t.Fatalf("register: %s", a)
	}
	var reg struct {
		ID     string `json:"id"`
		Tokens struct {
			Access string `json:"access"`
		} `json:"tokens"`
	}
	testenv.Must(t, json.Unmarshal(a.Body, &reg), "register answer")
	u := user{id: reg.ID, access: reg.Tokens.Access, email: email}
	p := do(t, http.MethodPost, s.customer.URL+"/api/v1/customers/profile/create/", u.access, map[string]any{
		"street_address": "742 Evergreen Terrace", "city": city, "state": "OR", "postal_code": "97403",
	})
	if p.Status != http.StatusCreated {
		t.Fatalf("profile create: %s", p)
	}
	return u
}

// me is GET /api/bff/me/ at base.
func me(t testing.TB, base string, u user) (answer, meView) {
	t.Helper()
	a := do(t, http.MethodGet, base+"/api/bff/me/", u.access, nil)
	var v meView
	if a.Status == http.StatusOK {
		testenv.Must(t, json.Unmarshal(a.Body, &v), "view %s", a.Body)
	}
	return a, v
}

type meView struct {
	User struct {
		ID        string `json:"id"`
		Email     string `json:"email"`
		FirstName string `json:"first_name"`
	} `json:"user"`
	Profile *struct {
		UserID string `json:"user_id"`
		City   string `json:"city"`
	} `json:"profile"`
}

// answer is an answer and how long it took.
type answer struct {
	testenv.Answer
	elapsed time.Duration
}

func (a answer) cache() string { return a.Header.Get("X-Cache") }

// apiDocs holds every exchange of these tests to the OpenAPI document of the
// service that answered it.
var apiDocs = apitest.Docs{
	apitest.MustLoad("bff", bffhttp.OpenAPI()),
	apitest.MustLoad("auth", authhttp.OpenAPI()),
	apitest.MustLoad("customer", customerhttp.OpenAPI()),
}

// do sends a request with the bearer token ("" none), checked against the
// documents, and times it.
func do(t testing.TB, method, url, token string, body any) answer {
	t.Helper()
	var header map[string]string
	if token != "" {
		header = testenv.Bearer(token)
	}
	start := time.Now()
	a := testenv.Call(t, apiDocs.Client(t, testenv.DefaultClient), method, url, body, header)
	return answer{Answer: a, elapsed: time.Since(start)}
}

func TestE2EMissHitAndInvalidation(t *testing.T) {
	t.Parallel()
	// A TTL far longer than the test: a fresh view can only come from an
	// invalidation, never from an expiry. The cache's Redis budget (50 ms)
	// is for production: on a loaded test machine a write that misses it
	// moves the epoch on, and the HITs below would be MISSes.
	s := newE2EStack(t, map[string]string{"CACHE_TTL": "10m", "REDIS_TIMEOUT": "1s"}, false)
	ada := s.newUser(t, "Springfield")
	bob := s.newUser(t, "Ogdenville")
	// The new profiles' change events evict their views when the BFF
	// handles them: once they are handled, none lands between the reads.
	testenv.Eventually(t, 10*time.Second, func() error { return s.sys.FeedSettled(context.Background(), "bff", "customer") })

	first, v := me(t, s.bff.URL, ada)
	if first.Status != http.StatusOK || first.cache() != "MISS" {
		t.Fatalf("first GET: %s X-Cache=%q, want 200 MISS", first, first.cache())
	}
	if v.User.ID != ada.id || v.Profile == nil || v.Profile.City != "Springfield" || v.Profile.UserID != ada.id {
		t.Fatalf("view %s", first.Body)
	}
	second, _ := me(t, s.bff.URL, ada)
	if second.Status != http.StatusOK || second.cache() != "HIT" || !bytes.Equal(second.Body, first.Body) {
		t.Fatalf("second GET: %s X-Cache=%q, want the same body as a HIT", second, second.cache())
	}
	// Another user gets their own view, never Ada's.
	if a, bv := me(t, s.bff.URL, bob); a.cache() != "MISS" || bv.User.ID != bob.id || bv.Profile.City != "Ogdenville" {
		t.Fatalf("Bob's first GET: %s", a)
	}

	t.Run("direct PATCH at the customer service", func(t *testing.T) {
		p := do(t, http.MethodPatch, s.customer.URL+"/api/v1/customers/profile/update/", ada.access, map[string]any{"city": "Shelbyville"})
		if p.Status != http.StatusOK {
			t.Fatalf("PATCH at the customer service: %s", p)
		}
		testenv.Eventually(t, 10*time.Second, testenv.Holds("the BFF to serve the new city", func() bool {
			_, v := me(t, s.bff.URL, ada)
			return v.Profile != nil && v.Profile.City == "Shelbyville"
		}))
		if a, v := me(t, s.bff.URL, ada); a.cache() != "HIT" || v.Profile.City != "Shelbyville" {
			t.Fatalf("then: %s X-Cache=%q", a, a.cache())
		}
	})

	t.Run("direct PATCH at the auth service", func(t *testing.T) {
		p := do(t, http.MethodPatch, s.auth.URL+"/api/auth/profile/update/", ada.access, map[string]any{"first_name": "Augusta"})
		if p.Status != http.StatusOK {
			t.Fatalf("PATCH at the auth service: %s", p)
		}
		testenv.Eventually(t, 10*time.Second, testenv.Holds("the BFF to serve the new first name", func() bool {
			_, v := me(t, s.bff.URL, ada)
			return v.User.FirstName == "Augusta"
		}))
	})

	t.Run("PATCH through the BFF", func(t *testing.T) {
		p := do(t, http.MethodPatch, s.bff.URL+"/api/bff/me/", ada.access, map[string]any{"city": "Capital City"})
		if p.Status != http.StatusOK || !strings.Contains(string(p.Body), "Capital City") {
			t.Fatalf("PATCH /api/bff/me/: %s", p)
		}
		// The BFF evicted the view itself: no wait for the feed.
		if a, v := me(t, s.bff.URL, ada); v.Profile == nil || v.Profile.City != "Capital City" {
			t.Fatalf("GET after the PATCH: %s", a)
		}
	})

	// Bob's view was not touched by Ada's changes.
	if a, bv := me(t, s.bff.URL, bob); a.cache() != "HIT" || bv.User.ID != bob.id {
		t.Fatalf("Bob after Ada's changes: %s X-Cache=%q", a, a.cache())
	}

	// The cache and breaker metrics are on the metrics listener.
	m := do(t, http.MethodGet, s.bff.MetricsURL+"/metrics", "", nil)
	for _, want := range []string{`bff_cache_requests_total{`, `result="hit"`, `result="miss"`, `bff_breaker_state{`, `breaker="redis"`, `bff_cache_change_messages_total{`} {
		if !strings.Contains(string(m.Body), want) {
			t.Fatalf("/metrics has no %s", want)
		}
	}
	if got := s.redisBreaker(t); got != "closed" {
		t.Fatalf("redis breaker %q in /readyz, want closed", got)
	}
}

// TestE2ERedisOutage stops Redis under traffic: every answer stays a 200
// (BYPASS) no slower than the origin path plus the Redis timeout, the
// breaker opens (and /readyz shows it without failing), and the cache comes
// back by itself when Redis does.
func TestE2ERedisOutage(t *testing.T) {
	t.Parallel()
	const redisTimeout = 50 * time.Millisecond
	s := newE2EStack(t, map[string]string{"REDIS_TIMEOUT": redisTimeout.String()}, true)
	ada := s.newUser(t, "Springfield")
	testenv.Eventually(t, 10*time.Second, testenv.Holds("a HIT", func() bool {
		a, _ := me(t, s.bff.URL, ada)
		return a.cache() == "HIT"
	}))

	// Background traffic runs through the whole outage: Redis goes away
	// under it, not between requests.
	stopTraffic := make(chan struct{})
	trafficDone := make(chan error, 2)
	var served atomic.Int64
	for range 2 {
		go func() {
			for {
				select {
				case <-stopTraffic:
					trafficDone <- nil
					return
				default:
				}
				a := do(t, http.MethodGet, s.bff.URL+"/api/bff/me/", ada.access, nil)
				if c := a.cache(); a.Status != http.StatusOK || (c != "HIT" && c != "MISS" && c != "BYPASS") {
					trafficDone <- fmt.Errorf("background request: %s X-Cache=%q", a, c)
					return
				}
				served.Add(1)
			}
		}()
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("background traffic", func() bool { return served.Load() > 5 }))
	s.redis.Stop()
	var (
		cachedMax, originMax time.Duration
		bypasses             atomic.Int64
	)
	const rounds = 40
	for i := range rounds {
		// The origin path is measured interleaved with the cached BFF's
		// requests, under the same load.
		o, ov := me(t, s.origin.URL, ada)
		if o.Status != http.StatusOK || ov.User.ID != ada.id {
			t.Fatalf("origin BFF, request %d: %s", i, o)
		}
		originMax = max(originMax, o.elapsed)
		a, v := me(t, s.bff.URL, ada)
		if a.Status != http.StatusOK || a.cache() != "BYPASS" || v.User.ID != ada.id || v.Profile == nil || v.Profile.City != "Springfield" {
			t.Fatalf("request %d with Redis down: %s X-Cache=%q, want 200 BYPASS with the view", i, a, a.cache())
		}
		bypasses.Add(1)
		cachedMax = max(cachedMax, a.elapsed)
	}
	close(stopTraffic)
	for range 2 {
		if err := <-trafficDone; err != nil {
			t.Fatal(err)
		}
	}
	// Generous, but far below what waiting on Redis would cost (the client's
	// dial retries alone take 400ms).
	bound := 3*originMax + redisTimeout + 100*time.Millisecond
	t.Logf("Redis down: slowest cached-BFF request %s, slowest origin-path request %s, bound %s", cachedMax, originMax, bound)
	if cachedMax > bound {
		t.Fatalf("a request took %s with Redis down; the origin path took at most %s (bound %s)", cachedMax, originMax, bound)
	}
	if state := s.redisBreaker(t); state != "open" && state != "half-open" {
		t.Fatalf("redis breaker %q during the outage, want open", state)
	}
	m := do(t, http.MethodGet, s.bff.MetricsURL+"/metrics", "", nil)
	if !strings.Contains(string(m.Body), `bff_breaker_transitions_total{`) || !strings.Contains(string(m.Body), `to="open"`) {
		t.Fatal("/metrics does not show the breaker opening")
	}

	testenv.Must(t, s.redis.Start(context.Background()), "restart Redis")
	testenv.Eventually(t, 10*time.Second, testenv.Holds("HITs to return after Redis is back", func() bool {
		a, _ := me(t, s.bff.URL, ada)
		if a.Status != http.StatusOK {
			t.Fatalf("after the restart: %s", a)
		}
		return a.cache() == "HIT"
	}))
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the breaker to close", func() bool { return s.redisBreaker(t) == "closed" }))
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the BFF to resubscribe to the change feed", func() bool {
		return s.readyDetails(t)["invalidation_subscribed"] == true
	}))
}
