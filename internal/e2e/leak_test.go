package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// exchange is one request the test made to the BFF and its answer.
type exchange struct {
	method, route string
	testenv.Answer
}

// traffic drives the BFF (and the auth service's refresh) through what a
// user does — registration, a repeated one, a failed and a good login,
// cached reads, a change of email and tax id, a token refresh, account
// deletion — and a registration whose auth call fails after the user was
// created, so that the reconciler looks the user up by email and removes
// it. It returns the secrets involved and the BFF exchanges.
func traffic(t *testing.T, s *stack) (secrets map[string]string, ex []exchange) {
	t.Helper()
	secrets = map[string]string{
		"service client secret":          systest.BFFClientSecret,
		"migrate service client secret":  systest.MigrateClientSecret,
		"customer service client secret": systest.CustomerClientSecret,
		"signing key":                    systest.SigningKey,
	}
	bffURL := s.bff.URL + "/api/bff/"
	do := func(method, route string, body any, header map[string]string) testenv.Answer {
		t.Helper()
		a := testenv.Call(t, nil, method, bffURL+route, body, header)
		ex = append(ex, exchange{method: method, route: "/api/bff/" + route, Answer: a})
		return a
	}
	addTokens := func(name string, tk tokens) {
		secrets[name+" access token"] = tk.access
		secrets[name+" refresh token"] = tk.refresh
	}

	p := newPerson("leak")
	secrets["password"], secrets["email"], secrets["tax id"] = p.password, p.email, p.taxID
	reg := do(http.MethodPost, "register/", p.registration(), map[string]string{"Idempotency-Key": "leak-key-1"})
	if reg.Status != http.StatusCreated {
		t.Fatalf("register: %s", reg)
	}
	addTokens("registration", sessionOf(t, reg))
	if a := do(http.MethodPost, "register/", p.registration(), nil); a.Status != http.StatusBadRequest {
		t.Fatalf("second registration: %s", a)
	}
	secrets["wrong password"] = "Wrong-Horse-Staple-77"
	if a := do(http.MethodPost, "login/", map[string]any{"email": p.email, "password": secrets["wrong password"]}, nil); a.Status != http.StatusUnauthorized {
		t.Fatalf("bad login: %s", a)
	}
	login := do(http.MethodPost, "login/", map[string]any{"email": p.email, "password": p.password}, nil)
	if login.Status != http.StatusOK {
		t.Fatalf("login: %s", login)
	}
	tk := sessionOf(t, login)
	addTokens("login", tk)
	for range 2 {
		if a := do(http.MethodGet, "me/", nil, testenv.Bearer(tk.access)); a.Status != http.StatusOK {
			t.Fatalf("read: %s", a)
		}
	}
	secrets["new email"], secrets["new tax id"] = "renamed."+p.email, "TAX-NEW-"+p.taxID
	if a := do(http.MethodPatch, "me/", map[string]any{"email": secrets["new email"], "tax_id": secrets["new tax id"], "city": "Boston"},
		testenv.Bearer(tk.access)); a.Status != http.StatusOK {
		t.Fatalf("update: %s", a)
	}
	refreshed := testenv.Call(t, nil, http.MethodPost, s.auth.URL+"/api/auth/token/refresh/", map[string]any{"refresh": tk.refresh}, nil)
	if refreshed.Status != http.StatusOK {
		t.Fatalf("refresh: %s", refreshed)
	}
	access, _ := refreshed.Map(t)["access"].(string)
	secrets["refreshed access token"] = access
	if r, _ := refreshed.Map(t)["refresh"].(string); r != "" {
		secrets["rotated refresh token"] = r
	}
	if a := do(http.MethodGet, "me/", nil, testenv.Bearer(access)); a.Status != http.StatusOK {
		t.Fatalf("read with the refreshed token: %s", a)
	}

	// The auth service creates the user but the BFF never hears back: the
	// reconciler finds the user by email and removes it.
	q := newPerson("orphan")
	secrets["orphan's password"], secrets["orphan's email"], secrets["orphan's tax id"] = q.password, q.email, q.taxID
	fault(s.authProxy, http.MethodPost, registerPath, http.StatusBadGateway, true)
	if a := do(http.MethodPost, "register/", q.registration(), nil); a.Status < 500 {
		t.Fatalf("registration without an answer from auth: %s", a)
	}
	_ = s.authProxy.Pass()
	testenv.Eventually(t, 20*time.Second, testenv.Holds("the reconciler removes the orphan user", func() bool {
		return sample(t, scrape(t, s.bff), "bff_saga_outcomes_total", `outcome="compensated"`) == 1
	}))
	if a := do(http.MethodDelete, "me/", nil, testenv.Bearer(access)); a.Status != http.StatusNoContent {
		t.Fatalf("delete: %s", a)
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the account deletion is finished", func() bool {
		return sample(t, scrape(t, s.bff), "bff_saga_outcomes_total", `saga_kind="delete_account"`, `outcome="completed"`) == 1
	}))
	return secrets, ex
}

// needles are the forms in which a secret could appear: as is, lower-cased,
// URL-encoded, and for a JWT its signature alone.
func needles(secret string) []string {
	out := []string{secret, strings.ToLower(secret), url.QueryEscape(secret), url.QueryEscape(strings.ToLower(secret))}
	if parts := strings.Split(secret, "."); len(parts) == 3 && len(parts[2]) > 20 {
		out = append(out, parts[2])
	}
	return out
}

// haystack is every piece of text the three services emitted: span names,
// attributes, events, links, statuses and resources, log lines, metrics.
func haystack(t *testing.T, s *stack) map[string]string {
	t.Helper()
	out := map[string]string{}
	attrs := func(kvs []attribute.KeyValue) string {
		var b strings.Builder
		for _, kv := range kvs {
			fmt.Fprintf(&b, "%s=%s\n", kv.Key, kv.Value.String())
		}
		return b.String()
	}
	for i, sp := range s.spans() {
		var b strings.Builder
		b.WriteString(sp.Name + "\n" + attrs(sp.Attributes) + sp.Status.Description + "\n" + attrs(sp.Resource.Attributes()))
		for _, ev := range sp.Events {
			b.WriteString(ev.Name + "\n" + attrs(ev.Attributes))
		}
		for _, l := range sp.Links {
			b.WriteString(attrs(l.Attributes))
		}
		out[fmt.Sprintf("span %d %v", i, sp)] = b.String()
	}
	for _, svc := range s.services() {
		out[svc.Name+" log"] = svc.Logs.String()
		out[svc.Name+" /metrics"] = scrape(t, svc)
	}
	return out
}

// No password, token, email, tax id or server secret reaches a span, a
// log line or a metric of any of the three services.
func TestTelemetryCarriesNoSecrets(t *testing.T) {
	t.Parallel()
	s := newStack(t, map[string]string{"AUTH_TIMEOUT": "2s"})
	secrets, ex := traffic(t, s)
	hay := haystack(t, s)
	if len(hay) < 50 {
		t.Fatalf("only %d places to search: the services exported too little", len(hay))
	}
	// The reconciler's lookup by email was traced (with the query redacted).
	if len(find(s.spans(), func(sp span) bool {
		return sp.svc == "bff" && strings.HasSuffix(sp.attr("url.full"), "/api/auth/users/?email=REDACTED")
	})) == 0 {
		t.Error("no span of the reconciler's lookup by email")
	}
	for what, secret := range secrets {
		for _, n := range needles(secret) {
			for where, text := range hay {
				if i := strings.Index(text, n); i >= 0 {
					t.Errorf("the %s is in the %s: ...%s...", what, where, text[max(0, i-120):min(len(text), i+len(n)+40)])
				}
			}
		}
	}

	t.Run("log lines", func(t *testing.T) {
		checkLogLines(t, s, ex)
	})
}

// checkLogLines checks the services' logs: every line written inside a
// request carries its trace and span ids, every request has exactly one
// access line, and a request logs at most one error.
func checkLogLines(t *testing.T, s *stack, ex []exchange) {
	for _, svc := range s.services() {
		access := map[string]int{}
		errorsOf := map[string]int{}
		for _, l := range svc.Logs.Lines(t) {
			id, _ := l["request_id"].(string)
			if id == "" {
				continue
			}
			tid, _ := l["trace_id"].(string)
			sid, _ := l["span_id"].(string)
			if len(tid) != 32 || len(sid) != 16 {
				t.Errorf("%s: a line of request %s without its trace: %v", svc.Name, id, l)
			}
			if l["msg"] == "request" {
				access[id]++
			}
			if l["level"] == "ERROR" {
				errorsOf[id]++
			}
		}
		if len(access) == 0 {
			t.Errorf("%s: no access lines", svc.Name)
		}
		for id, n := range access {
			if n != 1 {
				t.Errorf("%s: request %s has %d access lines", svc.Name, id, n)
			}
		}
		for id, n := range errorsOf {
			if n > 1 {
				t.Errorf("%s: request %s logged %d errors", svc.Name, id, n)
			}
		}
	}
	// Each of the test's requests to the BFF has its access line.
	lines := s.bff.Logs.Lines(t)
	for _, e := range ex {
		id := e.Header.Get("X-Request-ID")
		var got []map[string]any
		for _, l := range lines {
			if l["msg"] == "request" && l["request_id"] == id {
				got = append(got, l)
			}
		}
		if len(got) != 1 {
			t.Errorf("%s %s (%s): %d access lines", e.method, e.route, id, len(got))
			continue
		}
		l := got[0]
		if l["method"] != e.method || l["route"] != e.route || l["status"] != float64(e.Status) || l["duration_ms"] == nil {
			t.Errorf("%s %s %d: access line %v", e.method, e.route, e.Status, l)
		}
	}
}
