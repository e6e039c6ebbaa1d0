package probe

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// probeAPI8Misconfiguration: the headers every answer carries, the
// token answers' caching, CORS, what errors show, and links built from
// what the client sent.
func probeAPI8Misconfiguration(t *testing.T, s *suite) {
	c := s.customerAccount(t, "misconfig")

	// Security headers on every service's answers: success, 400, 401,
	// 404, 405, 413 and 415 alike.
	huge := strings.Repeat("x", 2<<20)
	for _, svc := range []struct {
		name, base, post, authed string
	}{
		{"auth", s.auth, "/api/auth/login/", "/api/auth/profile/"},
		{"customer", s.customer, "/api/v1/customers/profile/create/", "/api/v1/customers/profile/"},
		{"bff", s.bff, "/api/bff/login/", "/api/bff/me/"},
	} {
		for _, x := range []struct {
			what, method, path string
			body               any
			header             map[string]string
		}{
			{"health", http.MethodGet, "/healthz", nil, nil},
			{"success", http.MethodGet, svc.authed, nil, c.as()},
			{"401", http.MethodGet, svc.authed, nil, nil},
			{"404", http.MethodGet, "/no/such/route/", nil, nil},
			{"405", http.MethodDelete, svc.post, nil, c.as()},
			{"400", http.MethodPost, svc.post, "{", c.as()},
			{"413", http.MethodPost, svc.post, `{"email": "` + huge + `"}`, c.as()},
			{"415", http.MethodPost, svc.post, `email=a`, with(c.as(), "Content-Type", "application/x-www-form-urlencoded")},
		} {
			a := s.call(t, x.method, svc.base+x.path, x.body, x.header)
			wantSecurityHeaders(t, svc.name+" "+x.what+" ("+x.method+" "+x.path+")", a)
		}
	}

	// Answers carrying tokens are never stored by a cache.
	fresh := s.newEmail("nostore")
	pw := "Probe-Quartz-NoStore-6620"
	authReg := map[string]any{"email": fresh, "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+15035550142", "password1": pw, "password2": pw}
	addr := s.newAddr()
	tokenAnswers := map[string]testenv.Answer{
		"auth register": s.call(t, http.MethodPost, s.auth+"/api/auth/register/", authReg, from(addr)),
		"auth login":    s.call(t, http.MethodPost, s.auth+"/api/auth/login/", map[string]any{"email": fresh, "password": pw}, from(addr)),
		"auth token/service": s.call(t, http.MethodPost, s.auth+"/api/auth/token/service/",
			map[string]string{"client_id": systest.BFFClientID, "client_secret": systest.BFFClientSecret}, from(addr)),
		"BFF register": s.call(t, http.MethodPost, s.bff+"/api/bff/register/", registration(s.newEmail("nostore-bff"), pw), from(s.newAddr())),
		"BFF login":    s.call(t, http.MethodPost, s.bff+"/api/bff/login/", map[string]any{"email": c.email, "password": c.password}, from(c.addr)),
	}
	tokenAnswers["auth token/refresh"] = s.call(t, http.MethodPost, s.auth+"/api/auth/token/refresh/",
		map[string]string{"refresh": refreshOf(t, tokenAnswers["auth login"])}, from(addr))
	for what, a := range tokenAnswers {
		if a.Status/100 != 2 || !strings.Contains(string(a.Body), `"access"`) {
			t.Errorf("%s: %s, want tokens", what, a)
			continue
		}
		if cc := a.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("%s carries tokens with Cache-Control %q, want no-store", what, cc)
		}
		if p := a.Header.Get("Pragma"); p != "no-cache" {
			t.Errorf("%s carries tokens with Pragma %q, want no-cache", what, p)
		}
	}

	// CORS: only the configured origin, never credentials, never another
	// origin reflected — at the BFF and at the services behind it.
	for _, origin := range []string{"https://evil.example", "null", allowedOrigin + ".evil.example", "http://app.probe-example.com"} {
		for _, base := range []string{s.bff + "/api/bff/me/", s.auth + "/api/auth/profile/", s.customer + "/api/v1/customers/profile/"} {
			a := s.call(t, http.MethodGet, base, nil, with(c.as(), "Origin", origin))
			if v := a.Header.Get("Access-Control-Allow-Origin"); v != "" {
				t.Errorf("GET %s from Origin %s: Access-Control-Allow-Origin %q", base, origin, v)
			}
			a = s.call(t, http.MethodOptions, base, nil, map[string]string{"Origin": origin,
				"Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "authorization"})
			if a.Status/100 == 2 || a.Header.Get("Access-Control-Allow-Origin") != "" || a.Header.Get("Access-Control-Allow-Methods") != "" {
				t.Errorf("preflight of %s from Origin %s: %d with %v", base, origin, a.Status, a.Header)
			}
		}
	}
	a := s.call(t, http.MethodGet, s.bff+"/api/bff/me/", nil, with(c.as(), "Origin", allowedOrigin))
	if a.Header.Get("Access-Control-Allow-Origin") != allowedOrigin || a.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("the allowed origin: Access-Control-Allow-Origin %q, -Credentials %q", a.Header.Get("Access-Control-Allow-Origin"),
			a.Header.Get("Access-Control-Allow-Credentials"))
	}

	// Errors show no internals, whatever the request.
	for _, x := range []struct {
		method, url string
		body        any
		header      map[string]string
	}{
		{http.MethodPost, s.auth + "/api/auth/login/", `{"email": {"$ne": null}, "password": {"$ne": null}}`, from(s.newAddr())},
		{http.MethodPost, s.auth + "/api/auth/login/", map[string]any{"email": "' OR 1=1 --", "password": "x"}, from(s.newAddr())},
		{http.MethodPost, s.auth + "/api/auth/login/", `{"email": "a@b.c", "password": "x"`, from(s.newAddr())},
		{http.MethodPost, s.auth + "/api/auth/register/", `{"email": 1e999}`, from(s.newAddr())},
		{http.MethodPost, s.auth + "/api/auth/token/refresh/", map[string]any{"refresh": "a.b.c"}, from(s.newAddr())},
		{http.MethodGet, s.auth + "/api/auth/users/?email[$ne]=x&after=zzz&page_size=-3", nil, s.admin.as()},
		{http.MethodGet, s.auth + "/api/auth/users/%00/", nil, s.admin.as()},
		{http.MethodGet, s.customer + "/api/v1/customers/not-a-uuid/", nil, c.as()},
		{http.MethodGet, s.customer + "/api/v1/customers/{\"$gt\":\"\"}/", nil, c.as()},
		{http.MethodGet, s.customer + "/api/v1/customers/?search=(a%2B)%2B$&city[$ne]=x", nil, s.admin.as()},
		{http.MethodGet, s.customer + "/api/v1/customers/?search=%7B%22%24gt%22%3A%22%22%7D&is_verified=maybe", nil, s.admin.as()},
		{http.MethodPatch, s.customer + "/api/v1/customers/profile/update/", map[string]any{"notification_preferences": map[string]any{"$set": map[string]any{"x": 1}}}, c.as()},
		{http.MethodPatch, s.customer + "/api/v1/customers/profile/update/", map[string]any{"city": []any{"a"}, "$where": "1"}, c.as()},
		{http.MethodPost, s.customer + "/api/v1/customers/" + c.profileID + "/increment_service/", map[string]any{"performed_at": "yesterday"}, s.employee.as()},
		{http.MethodPost, s.bff + "/api/bff/register/", `[1, 2, 3]`, from(s.newAddr())},
		{http.MethodPost, s.bff + "/api/bff/register/", map[string]any{"email": map[string]any{"$gt": ""}}, from(s.newAddr())},
		{http.MethodPost, s.bff + "/api/bff/login/", `{"email": "\ud800@x.y", "password": "x"}`, from(s.newAddr())},
		{http.MethodPatch, s.bff + "/api/bff/me/", `null`, c.as()},
		{http.MethodGet, s.bff + "/api/bff/me/", nil, testenv.Bearer(strings.Repeat("A", 8000))},
		{http.MethodGet, s.bff + "/api/bff/me/", nil, map[string]string{"Authorization": "Basic YWRtaW46YWRtaW4="}},
	} {
		a := s.call(t, x.method, x.url, x.body, x.header)
		what := x.method + " " + x.url[strings.Index(x.url, "/api"):]
		if a.Status >= 500 {
			t.Errorf("%s: %s, want a 4xx", what, a)
		}
		noLeak(t, what, a)
		if a.Status >= 400 {
			wantShape(t, what, a)
		}
	}

	// Links are never built from what the client says its host is. Two
	// service records, so a page of one has a next link.
	for range 2 {
		if a := s.call(t, http.MethodPost, s.customer+"/api/v1/customers/"+c.profileID+"/increment_service/", map[string]any{}, s.employee.as()); a.Status != http.StatusOK {
			t.Fatalf("increment_service: %s", a)
		}
	}
	for _, x := range []struct {
		what, url string
		who       *account
	}{
		{"customer listing", s.customer + "/api/v1/customers/?page_size=1", s.admin},
		{"user listing", s.auth + "/api/auth/users/?page_size=1", s.admin},
		{"service records", s.customer + "/api/v1/customers/" + c.profileID + "/services/?page_size=1", c},
	} {
		for _, h := range []map[string]string{{"Host": "evil.example"}, {"X-Forwarded-Host": "evil.example"}, {"Forwarded": "host=evil.example"}} {
			a := callHost(t, x.url, x.who, h)
			if a.Status != http.StatusOK {
				if a.Status == http.StatusBadRequest {
					continue // a host outside an allowed list refused: as good
				}
				t.Errorf("%s with %v: %s", x.what, h, a)
				continue
			}
			var v struct{ Next, Previous *string }
			a.JSON(t, &v)
			if v.Next == nil {
				t.Errorf("%s with %v: no next link to check: %s", x.what, h, a)
			} else if strings.Contains(*v.Next, "evil") {
				t.Errorf("%s with %v links to %s", x.what, h, *v.Next)
			}
		}
	}
}

// wantShape checks that an error answer has one of the contract's shapes:
// a validation 400's field → messages map, or {"detail", "code"}.
func wantShape(t *testing.T, what string, a testenv.Answer) {
	t.Helper()
	if a.Status == http.StatusBadRequest {
		var fields map[string][]string
		if err := json.Unmarshal(a.Body, &fields); err == nil && len(fields) > 0 {
			return
		}
	}
	wantError(t, what, a, a.Status)
}

// wantSecurityHeaders checks the headers Django's security middleware
// sends and the Content-Security-Policy of an API.
func wantSecurityHeaders(t *testing.T, what string, a testenv.Answer) {
	t.Helper()
	for h, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
	} {
		if got := a.Header.Get(h); got != want {
			t.Errorf("%s (%d): %s %q, want %q", what, a.Status, h, got, want)
		}
	}
	if csp := a.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src") {
		t.Errorf("%s (%d): Content-Security-Policy %q", what, a.Status, csp)
	}
}

// refreshOf is the refresh token of an auth login answer.
func refreshOf(t *testing.T, a testenv.Answer) string {
	t.Helper()
	var v struct{ Tokens struct{ Refresh string } }
	a.JSON(t, &v)
	return v.Tokens.Refresh
}

// callHost sends GET u as who with header, whose Host member sets the
// request's Host.
func callHost(t *testing.T, u string, who *account, header map[string]string) testenv.Answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	testenv.Must(t, err, "request %s", u)
	for k, v := range who.as() {
		req.Header.Set(k, v)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := testenv.DefaultClient.Do(req)
	testenv.Must(t, err, "GET %s", u)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	testenv.Must(t, err, "read the answer to GET %s", u)
	return testenv.Answer{Status: resp.StatusCode, Header: resp.Header, Body: body}
}
