package probe

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

func TestMain(m *testing.M) { os.Exit(systest.Main(m)) }

// The bootstrap admin the auth service creates at start.
const (
	adminEmail    = "probe-admin@probe-example.com"
	adminPassword = "Admin-Probe-Quartz-7731"
)

// allowedOrigin is the one browser origin the BFF lets call it.
const allowedOrigin = "https://app.probe-example.com"

// TestOWASPAPITop10 starts one system as a deployment runs it and drives
// each item of the OWASP API Security Top 10 (2023) against it.
func TestOWASPAPITop10(t *testing.T) {
	if testing.Short() {
		t.Skip("security probes against the running system: not in the fast tier (-short)")
	}
	s := newSuite(t)
	for _, p := range []struct {
		name  string
		probe func(*testing.T, *suite)
	}{
		{"API1BOLA", probeAPI1BOLA},
		{"API2BrokenAuthentication", probeAPI2BrokenAuthentication},
		{"API2RefreshTokenReuse", probeAPI2RefreshTokenReuse},
		{"API2NoLockoutLever", probeAPI2NoLockoutLever},
		{"API3BrokenObjectPropertyLevelAuthorization", probeAPI3PropertyLevelAuthorization},
		{"API4UnrestrictedResourceConsumption", probeAPI4ResourceConsumption},
		{"API5BrokenFunctionLevelAuthorization", probeAPI5FunctionLevelAuthorization},
		{"API5ServiceClientScopes", probeAPI5ServiceClientScopes},
		{"API6SensitiveBusinessFlows", probeAPI6BusinessFlows},
		{"API7SSRF", probeAPI7SSRF},
		{"API8SecurityMisconfiguration", probeAPI8Misconfiguration},
		{"API9ImproperInventoryManagement", probeAPI9Inventory},
		{"API9InternalDocuments", probeAPI9InternalDocs},
		{"API10UnsafeConsumptionOfAPIs", probeAPI10UnsafeConsumption},
		{"NullCharacters", probeNullCharacters},
	} {
		t.Run(p.name, func(t *testing.T) { p.probe(t, s) })
	}
}

// suite is the running system and the staff accounts the probes use.
type suite struct {
	sys                 *systest.System
	auth, customer, bff string // base URLs
	admin, employee     *account
	addrs               atomic.Int64
	seq                 atomic.Int64
}

// newSuite starts auth, customer and BFF outside development (so every
// production check applies) with the default rate limits, a bootstrap
// admin, one allowed CORS origin, and the loopback trusted as a load
// balancer: each actor's X-Forwarded-For is its client address.
func newSuite(t *testing.T) *suite {
	t.Helper()
	sys := systest.Start(t, systest.Options{
		Redis: true,
		Env: map[string]string{
			"DEPLOYMENT_ENVIRONMENT": "production",
			"TRUSTED_PROXIES":        "127.0.0.1/32,::1/128",
		},
		ServiceEnv: map[string]map[string]string{
			"auth": {
				"AUTH_RATE_LIMITS":              "", // unset: the defaults
				"AUTH_BOOTSTRAP_ADMIN_EMAIL":    adminEmail,
				"AUTH_BOOTSTRAP_ADMIN_PASSWORD": adminPassword,
			},
			"bff": {"CORS_ALLOWED_ORIGINS": allowedOrigin},
		},
	})
	s := &suite{sys: sys, auth: sys.URL("auth"), customer: sys.URL("customer"), bff: sys.URL("bff")}
	s.admin = s.loginAt(t, s.auth+"/api/auth/login/", adminEmail, adminPassword)
	emp := s.newEmail("employee")
	pw := "Employee-Probe-Walnut-4410"
	a := s.call(t, http.MethodPost, s.auth+"/api/auth/users/", map[string]any{
		"email": emp, "first_name": "Erin", "last_name": "Clerk", "phone_number": "+15035550100",
		"user_role": "employee", "password": pw,
	}, s.admin.as())
	if a.Status != http.StatusCreated {
		t.Fatalf("admin creates an employee: %s", a)
	}
	s.employee = s.loginAt(t, s.auth+"/api/auth/login/", emp, pw)
	return s
}

// account is one user of the system, with the client address it calls
// from.
type account struct {
	email, password string
	addr            string
	userID          string
	profileID       string // "" without a profile
	access, refresh string
}

// as is the header of a request of the account: its bearer token and its
// address.
func (a *account) as() map[string]string {
	return map[string]string{"Authorization": "Bearer " + a.access, "X-Forwarded-For": a.addr}
}

// newAddr is a client address no other actor uses.
func (s *suite) newAddr() string {
	n := s.addrs.Add(1)
	return fmt.Sprintf("10.77.%d.%d", n/250, n%250+1)
}

// newEmail is an email no other actor uses.
func (s *suite) newEmail(tag string) string {
	return fmt.Sprintf("%s.%d.%d@probe-example.com", tag, s.seq.Add(1), time.Now().UnixNano()%1e9)
}

// registration is a valid BFF registration body of email.
func registration(email, password string) map[string]any {
	return map[string]any{
		"email": email, "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+15035550142",
		"password1": password, "password2": password,
		"street_address": "12 Analytical Row", "city": "Portland", "state": "OR", "postal_code": "97201",
		"company_name": "Engines Ltd", "tax_id": "TAX-1815",
	}
}

// customerAccount registers a new customer through the BFF (user and
// profile) from an address of its own.
func (s *suite) customerAccount(t *testing.T, tag string) *account {
	t.Helper()
	acct := &account{email: s.newEmail(tag), password: "Probe-Quartz-" + tag + "-9921", addr: s.newAddr()}
	a := s.call(t, http.MethodPost, s.bff+"/api/bff/register/", registration(acct.email, acct.password), from(acct.addr))
	if a.Status != http.StatusCreated {
		t.Fatalf("register %s through the BFF: %s", acct.email, a)
	}
	var v struct {
		User    struct{ ID string }              `json:"user"`
		Profile struct{ ID string }              `json:"profile"`
		Tokens  struct{ Access, Refresh string } `json:"tokens"`
	}
	a.JSON(t, &v)
	acct.userID, acct.profileID, acct.access, acct.refresh = v.User.ID, v.Profile.ID, v.Tokens.Access, v.Tokens.Refresh
	if acct.userID == "" || acct.profileID == "" || acct.access == "" || acct.refresh == "" {
		t.Fatalf("registration of %s lacks ids or tokens: %s", acct.email, a)
	}
	return acct
}

// loginAt logs in at a login endpoint (auth's or the BFF's) from a new
// address.
func (s *suite) loginAt(t *testing.T, endpoint, email, password string) *account {
	t.Helper()
	acct := &account{email: email, password: password, addr: s.newAddr()}
	a := s.call(t, http.MethodPost, endpoint, map[string]any{"email": email, "password": password}, from(acct.addr))
	if a.Status != http.StatusOK {
		t.Fatalf("login of %s at %s: %s", email, endpoint, a)
	}
	var v struct {
		ID     string                           `json:"id"`
		User   struct{ ID string }              `json:"user"`
		Tokens struct{ Access, Refresh string } `json:"tokens"`
	}
	a.JSON(t, &v)
	acct.userID, acct.access, acct.refresh = v.ID, v.Tokens.Access, v.Tokens.Refresh
	if acct.userID == "" {
		acct.userID = v.User.ID
	}
	if acct.access == "" {
		t.Fatalf("login of %s answered no access token: %s", email, a)
	}
	return acct
}

// serviceToken is a service token of the client id with secret, asked
// for from an address of its own.
func (s *suite) serviceToken(t *testing.T, id, secret string) string {
	t.Helper()
	a := s.call(t, http.MethodPost, s.auth+"/api/auth/token/service/",
		map[string]string{"client_id": id, "client_secret": secret}, from(s.newAddr()))
	var v struct{ Access string }
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &v) != nil || v.Access == "" {
		t.Fatalf("service token of %s: %s", id, a)
	}
	return v.Access
}

// userByEmail is the id of the auth user with email ("" if none), as the
// admin sees it.
func (s *suite) userByEmail(t *testing.T, email string) string {
	t.Helper()
	a := s.call(t, http.MethodGet, s.auth+"/api/auth/users/?email="+url.QueryEscape(email), nil, s.admin.as())
	var v struct {
		Count   int                   `json:"count"`
		Results []struct{ ID string } `json:"results"`
	}
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &v) != nil || v.Count > 1 {
		t.Fatalf("user lookup of %s: %s", email, a)
	}
	if v.Count == 0 {
		return ""
	}
	return v.Results[0].ID
}

// profileExists reports whether the user has a customer profile, as the
// admin sees it.
func (s *suite) profileExists(t *testing.T, userID string) bool {
	t.Helper()
	a := s.call(t, http.MethodPost, s.customer+"/api/v1/customers/check_profile_exists/", map[string]string{"user_id": userID}, s.admin.as())
	var v struct{ Exists bool }
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &v) != nil {
		t.Fatalf("profile check of %s: %s", userID, a)
	}
	return v.Exists
}

// from is the header of an anonymous request from addr.
func from(addr string) map[string]string { return map[string]string{"X-Forwarded-For": addr} }

// with returns h and extra merged (extra wins).
func with(h map[string]string, extra ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		out[extra[i]] = extra[i+1]
	}
	return out
}

// call sends a request (testenv.Call).
func (s *suite) call(t *testing.T, method, u string, body any, header map[string]string) testenv.Answer {
	t.Helper()
	return testenv.Call(t, nil, method, u, body, header)
}

// wantError checks an error answer: the status, the contract's shape
// ({"detail", "code"}, code one of codes when given) and no internal
// detail. It returns the decoded body.
func wantError(t *testing.T, what string, a testenv.Answer, status int, codes ...string) map[string]any {
	t.Helper()
	if a.Status != status {
		t.Errorf("%s: status %d, want %d: %s", what, a.Status, status, a)
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(a.Body, &m); err != nil {
		t.Errorf("%s: the %d answer is not a JSON object: %q", what, a.Status, a.Body)
		return nil
	}
	if d, ok := m["detail"].(string); !ok || d == "" {
		t.Errorf("%s: no detail in the %d answer: %s", what, a.Status, a.Body)
	}
	code, _ := m["code"].(string)
	if code == "" || (len(codes) > 0 && !slices.Contains(codes, code)) {
		t.Errorf("%s: code %q, want one of %v: %s", what, code, codes, a.Body)
	}
	noLeak(t, what, a)
	return m
}

// wantFieldError checks a validation answer: 400 with field among its
// members, whose messages include msg when given.
func wantFieldError(t *testing.T, what string, a testenv.Answer, field, msg string) {
	t.Helper()
	if a.Status != http.StatusBadRequest {
		t.Errorf("%s: status %d, want 400 naming %s: %s", what, a.Status, field, a)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(a.Body, &m); err != nil {
		t.Errorf("%s: the 400 answer is not a JSON object: %q", what, a.Body)
		return
	}
	msgs, ok := m[field].([]any)
	if !ok || len(msgs) == 0 {
		t.Errorf("%s: the 400 answer does not name %s: %s", what, field, a.Body)
		return
	}
	if msg != "" && !slices.Contains(msgs, any(msg)) {
		t.Errorf("%s: %s's messages %v lack %q", what, field, msgs, msg)
	}
	noLeak(t, what, a)
}

// leakMarks are what an answer showing internals would contain: a Go
// stack or error text, the store's or cache's names, an upstream's
// address.
var leakMarks = []string{
	"goroutine ", ".go:", "panic", "runtime error", "mongo", "bson", "ferret", "sqlite", "redis",
	"gin-gonic", "invalid character", "json: ", "unexpected end of json", "dial tcp", "127.0.0.1",
	"connection refused", "context deadline", "$argon2", "password_hash",
}

// noLeak fails when the answer's body carries a mark of internals.
func noLeak(t *testing.T, what string, a testenv.Answer) {
	t.Helper()
	low := strings.ToLower(string(a.Body))
	for _, m := range leakMarks {
		if strings.Contains(low, m) {
			t.Errorf("%s: the %d answer shows internals (%q): %.300s", what, a.Status, m, a.Body)
		}
	}
}

// extraKeys returns the members of a JSON object that are not in allowed.
func extraKeys(obj map[string]any, allowed ...string) []string {
	var extra []string
	for k := range obj {
		if !slices.Contains(allowed, k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	return extra
}
