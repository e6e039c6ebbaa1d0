package probe

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/acme/customer-platform/internal/testenv"
)

// The members of the contract's answers.
var (
	userKeys     = []string{"id", "email", "first_name", "last_name", "phone_number", "user_role", "date_joined"}
	customerKeys = []string{
		"id", "user_id", "email", "first_name", "last_name", "phone_number",
		"street_address", "city", "state", "postal_code", "country", "company_name", "business_type", "tax_id",
		"emergency_contact_name", "emergency_contact_phone", "emergency_contact_relationship",
		"preferred_contact_method", "notification_preferences", "is_verified", "customer_since",
		"total_services", "last_service_date", "created_at", "updated_at",
	}
)

// probeAPI3PropertyLevelAuthorization: a customer sets the fields only
// staff or the system may write (mass assignment), at each service and
// through the BFF: 400 naming the field, nothing changed. And no answer a
// customer gets carries more than the contract's members.
func probeAPI3PropertyLevelAuthorization(t *testing.T, s *suite) {
	c := s.customerAccount(t, "mass-assign")
	readOnly := map[string]any{
		"is_verified": true, "user_id": s.admin.userID, "total_services": 99, "id": "00000000-0000-4000-8000-000000000000",
		"customer_since": "2000-01-01T00:00:00Z", "last_service_date": "2000-01-01T00:00:00Z",
		"created_at": "2000-01-01T00:00:00Z", "updated_at": "2000-01-01T00:00:00Z",
	}
	for field, v := range readOnly {
		for _, m := range []string{http.MethodPatch, http.MethodPut} {
			body := map[string]any{"street_address": "12 Analytical Row", "city": "Portland", "postal_code": "97201", field: v}
			a := s.call(t, m, s.customer+"/api/v1/customers/profile/update/", body, c.as())
			wantFieldError(t, m+" profile/update/ setting "+field, a, field, "")
			a = s.call(t, m, s.customer+"/api/v1/customers/"+c.profileID+"/", body, c.as())
			wantFieldError(t, m+" <id>/ setting "+field, a, field, "")
		}
		a := s.call(t, http.MethodPatch, s.bff+"/api/bff/me/", map[string]any{field: v}, c.as())
		wantFieldError(t, "PATCH /api/bff/me/ setting "+field, a, field, "")
	}
	for _, u := range []struct {
		url  string
		body map[string]any
	}{
		{s.auth + "/api/auth/profile/update/", map[string]any{"user_role": "admin"}},
		{s.auth + "/api/auth/profile/update/", map[string]any{"id": s.admin.userID}},
		{s.auth + "/api/auth/profile/update/", map[string]any{"password": "Another-Password-8812"}},
		{s.bff + "/api/bff/me/", map[string]any{"user_role": "admin"}},
		{s.bff + "/api/bff/me/", map[string]any{"date_joined": "2000-01-01T00:00:00Z"}},
	} {
		for field := range u.body {
			a := s.call(t, http.MethodPatch, u.url, u.body, c.as())
			wantFieldError(t, "PATCH "+strings.TrimPrefix(u.url, "http://")+" setting "+field, a, field, "")
		}
	}
	// Registration: a role or a verified profile cannot be asked for.
	for field, v := range map[string]any{"user_role": "admin", "is_verified": true, "total_services": 5} {
		email := s.newEmail("mass-register")
		body := registration(email, "Probe-Quartz-Mass-5521")
		body[field] = v
		a := s.call(t, http.MethodPost, s.bff+"/api/bff/register/", body, from(s.newAddr()))
		wantFieldError(t, "BFF register with "+field, a, field, "")
		if id := s.userByEmail(t, email); id != "" {
			t.Errorf("BFF register with %s refused, yet user %s exists", field, id)
		}
	}
	email := s.newEmail("mass-auth")
	a := s.call(t, http.MethodPost, s.auth+"/api/auth/register/", map[string]any{
		"email": email, "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+15035550142",
		"password1": "Probe-Quartz-Auth-6612", "password2": "Probe-Quartz-Auth-6612", "user_role": "admin",
	}, from(s.newAddr()))
	switch a.Status {
	case http.StatusBadRequest:
		wantFieldError(t, "auth register with user_role", a, "user_role", "")
	case http.StatusCreated:
		if role := a.Map(t)["user_role"]; role != "customer" {
			t.Errorf("auth register asking for admin made a %v", role)
		}
	default:
		t.Errorf("auth register with user_role: %s", a)
	}

	// Nothing changed.
	a = s.call(t, http.MethodGet, s.customer+"/api/v1/customers/profile/", nil, c.as())
	p := a.Map(t)
	if a.Status != http.StatusOK || p["is_verified"] != false || p["total_services"] != float64(0) || p["user_id"] != c.userID || p["id"] != c.profileID {
		t.Errorf("the profile changed: %s", a)
	}
	a = s.call(t, http.MethodGet, s.auth+"/api/auth/profile/", nil, c.as())
	if u := a.Map(t); a.Status != http.StatusOK || u["user_role"] != "customer" || u["id"] != c.userID {
		t.Errorf("the user changed: %s", a)
	}

	// No excessive data: every answer a customer gets holds the contract's
	// members only (no hash, no registration key, no saga or store fields).
	sess := s.loginAt(t, s.auth+"/api/auth/login/", c.email, c.password)
	bffSess := s.loginAt(t, s.bff+"/api/bff/login/", c.email, c.password)
	for _, x := range []struct {
		what   string
		a      testenv.Answer
		expect func(map[string]any) []string
	}{
		{"auth login", s.call(t, http.MethodPost, s.auth+"/api/auth/login/", map[string]any{"email": c.email, "password": c.password}, from(sess.addr)), userWithTokens},
		{"auth profile", s.call(t, http.MethodGet, s.auth+"/api/auth/profile/", nil, c.as()), user},
		{"auth profile update", s.call(t, http.MethodPatch, s.auth+"/api/auth/profile/update/", map[string]any{"first_name": "Ada"}, c.as()), user},
		{"customer profile", s.call(t, http.MethodGet, s.customer+"/api/v1/customers/profile/", nil, c.as()), profile},
		{"customer by id", s.call(t, http.MethodGet, s.customer+"/api/v1/customers/"+c.profileID+"/", nil, c.as()), profile},
		{"customer listing", s.call(t, http.MethodGet, s.customer+"/api/v1/customers/", nil, c.as()), listing(profile)},
		{"BFF me", s.call(t, http.MethodGet, s.bff+"/api/bff/me/", nil, c.as()), view},
		{"BFF login", s.call(t, http.MethodPost, s.bff+"/api/bff/login/", map[string]any{"email": c.email, "password": c.password}, from(bffSess.addr)), view},
		{"BFF register", s.call(t, http.MethodPost, s.bff+"/api/bff/register/", registration(s.newEmail("excess"), "Probe-Quartz-Excess-3310"), from(s.newAddr())), view},
	} {
		if x.a.Status/100 != 2 {
			t.Errorf("%s: %s", x.what, x.a)
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(x.a.Body, &m); err != nil {
			t.Errorf("%s: %q is not a JSON object", x.what, x.a.Body)
			continue
		}
		if extra := x.expect(m); len(extra) > 0 {
			t.Errorf("%s answers members outside the contract %v: %s", x.what, extra, x.a)
		}
		noLeak(t, x.what, x.a)
		if strings.Contains(string(x.a.Body), "registration_key") || strings.Contains(strings.ToLower(string(x.a.Body)), "saga") {
			t.Errorf("%s answers registration internals: %s", x.what, x.a)
		}
	}
}

func user(m map[string]any) []string { return extraKeys(m, userKeys...) }

func profile(m map[string]any) []string { return extraKeys(m, customerKeys...) }

func userWithTokens(m map[string]any) []string {
	extra := extraKeys(m, append([]string{"tokens"}, userKeys...)...)
	if tk, ok := m["tokens"].(map[string]any); ok {
		extra = append(extra, extraKeys(tk, "access", "refresh")...)
	}
	return extra
}

func listing(item func(map[string]any) []string) func(map[string]any) []string {
	return func(m map[string]any) []string {
		extra := extraKeys(m, "count", "next", "previous", "results")
		rs, _ := m["results"].([]any)
		for _, r := range rs {
			if o, ok := r.(map[string]any); ok {
				extra = append(extra, item(o)...)
			}
		}
		return extra
	}
}

// view checks the BFF's answers: user, profile (or null) and tokens.
func view(m map[string]any) []string {
	extra := extraKeys(m, "user", "profile", "tokens")
	if u, ok := m["user"].(map[string]any); ok {
		extra = append(extra, user(u)...)
	}
	if p, ok := m["profile"].(map[string]any); ok {
		extra = append(extra, profile(p)...)
	}
	if tk, ok := m["tokens"].(map[string]any); ok {
		extra = append(extra, extraKeys(tk, "access", "refresh")...)
	}
	return extra
}
