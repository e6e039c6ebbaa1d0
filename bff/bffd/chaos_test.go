package bffd_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/faultproxy"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// chaosAnswer is what a client got: a status (0: no answer, the
// connection failed) and the body.
type chaosAnswer struct {
	status int
	body   []byte
}

func (a chaosAnswer) final() bool {
	return a.status == http.StatusCreated || a.status == http.StatusBadRequest
}

func (a chaosAnswer) userID() string {
	var v struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	_ = json.Unmarshal(a.body, &v)
	return v.User.ID
}

// post sends a JSON request and tolerates a dead replica (status 0).
func post(client *http.Client, url string, body any, header map[string]string) chaosAnswer {
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return chaosAnswer{}
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return chaosAnswer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return chaosAnswer{status: resp.StatusCode, body: b}
}

// Issue 14's system test: auth, customer and two BFF replicas as real
// processes, a fault proxy in front of auth and of customer injecting
// faults into about a fifth of the register and create calls (refused,
// 5xx, 5xx after acting, connection cut after acting, an answer later than
// the BFF's timeout), 200 concurrent registrations with an
// Idempotency-Key, one BFF killed with SIGKILL and restarted mid-run,
// each failed call retried once with the same key; then, with the faults
// off and the sagas settled, every client asks once more. Checked through
// the services' APIs for all 200 emails: one user and its profile per
// email, nothing orphaned, nothing answered 201 undone, and every last
// answer is the 201 of that very user.
func TestRegistrationChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: real processes")
	}
	t.Parallel()
	start := time.Now()
	sys := systest.Start(t, systest.Options{
		Services:  []string{"auth", "customer", "bff"},
		Replicas:  map[string]int{"bff": 2},
		Processes: true,
		Proxies:   []systest.Link{{From: "bff", To: "auth"}, {From: "bff", To: "customer"}},
		ServiceEnv: map[string]map[string]string{
			"bff": {"AUTH_TIMEOUT": "2s", "CUSTOMER_TIMEOUT": "1s", "STORE_TIMEOUT": "10s", "SAGA_LEASE_TTL": "30s", "RECONCILE_INTERVAL": "300ms"},
		},
	})
	faults := func(path string, late time.Duration) []faultproxy.Rule {
		// Each rule draws in turn (a missed draw falls through): about 20 %
		// of the matching calls get one of the five faults.
		return []faultproxy.Rule{
			{Method: "POST", Path: path, Fraction: 0.04, Action: faultproxy.Drop},
			{Method: "POST", Path: path, Fraction: 0.04, Action: faultproxy.Fail, Status: 503},
			{Method: "POST", Path: path, Fraction: 0.045, Action: faultproxy.FailAfter, Status: 502},
			{Method: "POST", Path: path, Fraction: 0.045, Action: faultproxy.DropAfter},
			{Method: "POST", Path: path, Fraction: 0.05, Action: faultproxy.DelayResponse, Delay: late},
		}
	}
	authProxy, custProxy := sys.Proxy("bff", "auth"), sys.Proxy("bff", "customer")
	authProxy.SetRules(faults(registerPath, 2500*time.Millisecond)...)
	custProxy.SetRules(faults(createPath, 1500*time.Millisecond)...)
	bffs := sys.Replicas("bff")

	const n = 200
	client := &http.Client{Timeout: 40 * time.Second}
	type attempt struct {
		email, key string
		answers    []chaosAnswer
	}
	regs := make([]*attempt, n)
	var (
		wg       sync.WaitGroup
		finished atomic.Int32
		killOnce sync.Once
	)
	for i := range n {
		regs[i] = &attempt{email: fmt.Sprintf("chaos-%03d@example.com", i), key: fmt.Sprintf("chaos-key-%03d", i)}
		wg.Go(func() {
			r := regs[i]
			header := map[string]string{"Idempotency-Key": r.key}
			a := post(client, bffs[i%2].URL+"/api/bff/register/", registration(r.email), header)
			r.answers = append(r.answers, a)
			if !a.final() {
				time.Sleep(time.Duration(100+i%7*50) * time.Millisecond)
				r.answers = append(r.answers, post(client, bffs[(i+1)%2].URL+"/api/bff/register/", registration(r.email), header))
			}
			if finished.Add(1) == n/4 {
				// A quarter through: one BFF dies at once and comes back.
				killOnce.Do(func() {
					bffs[0].Kill()
					time.Sleep(500 * time.Millisecond)
					bffs[0].Start()
				})
			}
		})
	}
	wg.Wait()
	injected := authProxy.Stats().Injected + custProxy.Stats().Injected
	if err := authProxy.Pass(); err != nil {
		t.Fatal(err)
	}
	if err := custProxy.Pass(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, testenv.Holds("every saga settles", func() bool { return settledIn(t, sys) }))
	// Every client asks once more, with its key (and again after
	// Retry-After while the answer is "later": a 409 or a 5xx).
	for i, r := range regs {
		wg.Go(func() {
			for try := range 5 {
				a := post(client, bffs[(i+try+1)%2].URL+"/api/bff/register/", registration(r.email), map[string]string{"Idempotency-Key": r.key})
				r.answers = append(r.answers, a)
				if a.final() {
					return
				}
				time.Sleep(time.Second)
			}
		})
	}
	wg.Wait()
	testenv.Eventually(t, 60*time.Second, testenv.Holds("every saga settles", func() bool { return settledIn(t, sys) }))

	// The invariants, through the services' APIs.
	token := serviceToken(t, sys)
	firstTry, retried, late409 := 0, 0, 0
	for _, r := range regs {
		uid := lookupUser(t, sys, token, r.email)
		hasProfile := uid != "" && profileExists(t, sys, token, uid)
		if uid != "" && !hasProfile {
			t.Errorf("%s: orphan user %s (no profile); answers %s; sagas %v", r.email, uid, answersOf(r.answers), sagasOf(t, sys, uid))
		}
		for _, a := range r.answers {
			if a.status == http.StatusCreated && (a.userID() != uid || !hasProfile) {
				t.Errorf("%s: answered 201 for user %q, which is gone (the email holds %q, profile %v)", r.email, a.userID(), uid, hasProfile)
			}
		}
		last := r.answers[len(r.answers)-1]
		if last.status != http.StatusCreated || last.userID() != uid || uid == "" {
			t.Errorf("%s: the last retry got %d %s; the email holds user %q", r.email, last.status, last.body, uid)
		}
		switch {
		case r.answers[0].status == http.StatusCreated:
			firstTry++
		case len(r.answers) > 2 && r.answers[1].status == http.StatusConflict:
			late409++
			retried++
		default:
			retried++
		}
	}
	if st := stateCounts(t, sys); st[bff.StateNeedsAttention] > 0 {
		t.Errorf("sagas that need attention: %v", st)
	}
	t.Logf("%d registrations, %d faults injected, one BFF killed and restarted: %d registered at the first call, %d needed a retry (%d of those got 409 first); %v",
		n, injected, firstTry, retried, late409, time.Since(start).Round(time.Second))
}

func answersOf(as []chaosAnswer) string {
	out := ""
	for _, a := range as {
		b := a.body
		if len(b) > 120 {
			b = b[:120]
		}
		out += fmt.Sprintf("[%d %s] ", a.status, b)
	}
	return out
}

func sagasOf(t *testing.T, sys *systest.System, userID string) []string {
	var out []string
	s := &stack{t: t, bffDB: sys.DB("bff")}
	for _, d := range s.sagas(t) {
		if d["user_id"] == userID {
			out = append(out, fmt.Sprintf("%v/%v/%v", d["state"], d["last_error"], d["attempts"]))
		}
	}
	return out
}

func settledIn(t *testing.T, sys *systest.System) bool {
	for st, n := range stateCounts(t, sys) {
		if n > 0 && !bff.Terminal(st) {
			return false
		}
	}
	return true
}

func stateCounts(t *testing.T, sys *systest.System) map[string]int {
	s := &stack{t: t, bffDB: sys.DB("bff")}
	return s.sagaStates(t)
}

// serviceToken is the BFF's service account's token (staff enough for the
// lookups).
func serviceToken(t *testing.T, sys *systest.System) string {
	t.Helper()
	a := testenv.Call(t, nil, http.MethodPost, sys.URL("auth")+"/api/auth/token/service/",
		map[string]string{"client_id": systest.BFFClientID, "client_secret": systest.BFFClientSecret}, nil)
	var v struct {
		Access string `json:"access"`
	}
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &v) != nil || v.Access == "" {
		t.Fatalf("service token: %s", a)
	}
	return v.Access
}

func lookupUser(t *testing.T, sys *systest.System, token, email string) string {
	t.Helper()
	a := testenv.Call(t, nil, http.MethodGet, sys.URL("auth")+"/api/auth/users/?email="+url.QueryEscape(email), nil, testenv.Bearer(token))
	var v struct {
		Count   int `json:"count"`
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
	}
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &v) != nil || v.Count > 1 {
		t.Fatalf("user lookup of %s: %s", email, a)
	}
	if v.Count == 0 {
		return ""
	}
	return v.Results[0].ID
}

func profileExists(t *testing.T, sys *systest.System, token, userID string) bool {
	t.Helper()
	a := testenv.Call(t, nil, http.MethodPost, sys.URL("customer")+"/api/v1/customers/check_profile_exists/", map[string]string{"user_id": userID}, testenv.Bearer(token))
	var v struct {
		Exists bool `json:"exists"`
	}
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &v) != nil {
		t.Fatalf("profile check of %s: %s", userID, a)
	}
	return v.Exists
}
