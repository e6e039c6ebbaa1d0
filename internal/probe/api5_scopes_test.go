package probe

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// probeAPI5ServiceClientScopes: each service client gets only what it
// needs (the scopes the stack configures, AUTH_SERVICE_CLIENT_SCOPES).
// The BFF's may delete customers, not staff; the
// migration's reads and creates users and deletes none; the customer
// service's (its erasure cascade's) only reads users.
func probeAPI5ServiceClientScopes(t *testing.T, s *suite) {
	staff := func(role string) string {
		a := s.call(t, http.MethodPost, s.auth+"/api/auth/users/", map[string]any{"email": s.newEmail("scope-" + role), "first_name": "Staff",
			"last_name": "Member", "phone_number": "+15035550111", "user_role": role, "password": "Probe-Quartz-Staff-1180"}, s.admin.as())
		var v struct{ ID string }
		if a.Status != http.StatusCreated || json.Unmarshal(a.Body, &v) != nil {
			t.Fatalf("admin creates a %s: %s", role, a)
		}
		return v.ID
	}
	victim := s.customerAccount(t, "scope-victim")
	employee, admin := staff("employee"), staff("admin")
	bffTok := s.serviceToken(t, systest.BFFClientID, systest.BFFClientSecret)
	migrateTok := s.serviceToken(t, systest.MigrateClientID, systest.MigrateClientSecret)
	customerTok := s.serviceToken(t, systest.CustomerClientID, systest.CustomerClientSecret)
	newUser := map[string]any{"email": s.newEmail("scope-new"), "first_name": "New", "last_name": "User", "phone_number": "+15035550112"}
	for _, x := range []struct {
		client, token, method, url string
		body                       any
	}{
		{"bff", bffTok, http.MethodDelete, s.auth + "/api/auth/users/" + employee + "/", nil},
		{"bff", bffTok, http.MethodDelete, s.auth + "/api/auth/users/" + admin + "/", nil},
		{"migrate", migrateTok, http.MethodDelete, s.auth + "/api/auth/users/" + employee + "/", nil},
		{"migrate", migrateTok, http.MethodDelete, s.auth + "/api/auth/users/" + victim.userID + "/", nil},
		{"customer", customerTok, http.MethodPost, s.auth + "/api/auth/users/", newUser},
		{"customer", customerTok, http.MethodDelete, s.auth + "/api/auth/users/" + victim.userID + "/", nil},
		{"customer", customerTok, http.MethodGet, s.customer + "/api/v1/customers/", nil},
		{"customer", customerTok, http.MethodGet, s.customer + "/api/v1/customers/" + victim.profileID + "/", nil},
		{"customer", customerTok, http.MethodDelete, s.customer + "/api/v1/customers/" + victim.profileID + "/", nil},
	} {
		a := s.call(t, x.method, x.url, x.body, testenv.Bearer(x.token))
		wantError(t, "the "+x.client+" client at "+x.method+" "+x.url, a, http.StatusForbidden, "permission_denied")
	}
	for _, id := range []string{employee, admin, victim.userID} {
		a := s.call(t, http.MethodGet, s.auth+"/api/auth/users/"+id+"/", nil, s.admin.as())
		if a.Status != http.StatusOK {
			t.Errorf("user %s is gone after the refused deletes: %s", id, a)
		}
	}
	if !s.profileExists(t, victim.userID) {
		t.Error("the victim's profile is gone")
	}
	// What each needs still works.
	for _, x := range []struct{ client, token, method, url string }{
		{"bff", bffTok, http.MethodGet, s.auth + "/api/auth/users/?email=" + victim.email},
		{"migrate", migrateTok, http.MethodGet, s.auth + "/api/auth/users/?email=" + victim.email},
		{"customer", customerTok, http.MethodGet, s.auth + "/api/auth/users/" + victim.userID + "/"},
	} {
		if a := s.call(t, x.method, x.url, nil, testenv.Bearer(x.token)); a.Status != http.StatusOK {
			t.Errorf("the %s client at %s %s, which it needs: %s", x.client, x.method, x.url, a)
		}
	}
}
