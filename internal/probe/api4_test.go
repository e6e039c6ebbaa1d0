package probe

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// probeAPI4ResourceConsumption: bodies over 1 MiB, deeply nested JSON,
// pages larger than the cap, and floods of logins and registrations.
func probeAPI4ResourceConsumption(t *testing.T, s *suite) {
	c := s.customerAccount(t, "consume")
	huge := `{"email": "` + strings.Repeat("a", 2<<20) + `@probe-example.com", "first_name": "x"}`
	nested := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	for _, x := range []struct {
		method, url string
		header      map[string]string
	}{
		{http.MethodPost, s.auth + "/api/auth/register/", from(s.newAddr())},
		{http.MethodPost, s.auth + "/api/auth/login/", from(s.newAddr())},
		{http.MethodPatch, s.auth + "/api/auth/profile/update/", c.as()},
		{http.MethodPatch, s.customer + "/api/v1/customers/profile/update/", c.as()},
		{http.MethodPost, s.bff + "/api/bff/register/", from(s.newAddr())},
		{http.MethodPost, s.bff + "/api/bff/login/", from(s.newAddr())},
		{http.MethodPatch, s.bff + "/api/bff/me/", c.as()},
	} {
		what := x.method + " " + x.url[strings.Index(x.url, "/api"):]
		a := s.call(t, x.method, x.url, huge, x.header)
		wantError(t, what+" with a 2 MiB body", a, http.StatusRequestEntityTooLarge)
		a = s.call(t, x.method, x.url, `{"first_name": `+nested+`}`, x.header)
		if a.Status != http.StatusBadRequest {
			t.Errorf("%s with 100000 nested arrays: %s, want 400", what, a)
		}
		noLeak(t, what+" with nested arrays", a)
	}

	// page_size is capped at 100: a customer with 101 service records.
	for i := range 101 {
		a := s.call(t, http.MethodPost, s.customer+"/api/v1/customers/"+c.profileID+"/increment_service/",
			map[string]any{"service_type": fmt.Sprintf("visit-%d", i)}, s.employee.as())
		if a.Status != http.StatusOK {
			t.Fatalf("increment_service %d: %s", i, a)
		}
	}
	for _, q := range []string{"?page_size=1000", "?page_size=100000000", "?page_size=101"} {
		a := s.call(t, http.MethodGet, s.customer+"/api/v1/customers/"+c.profileID+"/services/"+q, nil, c.as())
		var v struct {
			Count   int   `json:"count"`
			Next    any   `json:"next"`
			Results []any `json:"results"`
		}
		a.JSON(t, &v)
		if a.Status != http.StatusOK || len(v.Results) != 100 || v.Count != 101 || v.Next == nil {
			t.Errorf("services%s: %d answered %d of %d records (next %v), want the cap of 100 and a next page", q, a.Status, len(v.Results), v.Count, v.Next)
		}
	}
	for _, q := range []string{"?page_size=-1", "?page_size=abc", "?page=-5", "?page=99999999999999999999", "?page_size=1e9"} {
		a := s.call(t, http.MethodGet, s.customer+"/api/v1/customers/"+q, nil, s.admin.as())
		if a.Status >= 500 {
			t.Errorf("listing %s: %s", q, a)
		}
		noLeak(t, "listing "+q, a)
	}

	// Floods from one address are throttled at auth and through the BFF.
	const flood = 60
	for _, x := range []struct {
		what string
		url  string
		body func(i int) map[string]any
	}{
		{"auth login", s.auth + "/api/auth/login/", loginOfNobody},
		{"auth register", s.auth + "/api/auth/register/", badRegistration},
		{"BFF login", s.bff + "/api/bff/login/", loginOfNobody},
		// The BFF refuses an invalid registration itself, before any call:
		// its flood is of valid ones, which reach the auth service's limit.
		{"BFF register", s.bff + "/api/bff/register/", goodRegistration},
	} {
		addr := s.newAddr()
		throttled := false
		for i := range flood {
			a := s.call(t, http.MethodPost, x.url, x.body(i), from(addr))
			if a.Status == http.StatusTooManyRequests {
				wantThrottled(t, x.what+" flood", a)
				throttled = true
				break
			}
			if a.Status != http.StatusBadRequest && a.Status != http.StatusUnauthorized && a.Status != http.StatusCreated {
				t.Fatalf("%s flood, request %d: %s", x.what, i, a)
			}
		}
		if !throttled {
			t.Errorf("%d %s requests from one address were not throttled", flood, x.what)
		}
	}
}

// loginOfNobody is a login of an email that has no account (each request
// another email: only the per-address limit applies).
func loginOfNobody(i int) map[string]any {
	return map[string]any{"email": fmt.Sprintf("nobody.%d.%d@probe-example.com", i, i*7919), "password": "Wrong-Password-1234"}
}

// badRegistration is a registration refused by validation (the passwords
// differ), each with another email.
func badRegistration(i int) map[string]any {
	b := registration(fmt.Sprintf("flood.%d.%d@probe-example.com", i, i*7919), "Probe-Quartz-Flood-7741")
	b["password2"] = "Probe-Quartz-Other-7741"
	return b
}

// goodRegistration is a valid registration, each with another email.
func goodRegistration(i int) map[string]any {
	return registration(fmt.Sprintf("flood-ok.%d.%d@probe-example.com", i, time.Now().UnixNano()%1e9), "Probe-Quartz-Flood-7741")
}
