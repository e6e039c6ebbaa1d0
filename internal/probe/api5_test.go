package probe

import (
	"net/http"
	"strings"
	"testing"
)

// probeAPI5FunctionLevelAuthorization: customers call the staff and
// admin endpoints, employees the admin-only ones: 403, and nothing
// happened.
func probeAPI5FunctionLevelAuthorization(t *testing.T, s *suite) {
	victim := s.customerAccount(t, "bfla-victim")
	c := s.customerAccount(t, "bfla-customer")
	newUser := func() map[string]any {
		return map[string]any{"email": s.newEmail("bfla-new"), "first_name": "New", "last_name": "User", "phone_number": "+15035550199",
			"password": "Probe-Quartz-New-4471", "user_role": "admin"}
	}
	custNew, empNew := newUser(), newUser()
	profileFor := map[string]any{"user_id": victim.userID, "street_address": "1 A St", "city": "Portland", "postal_code": "97201"}
	cases := []struct {
		who         *account
		method, url string
		body        any
	}{
		{c, http.MethodGet, s.auth + "/api/auth/users/?email=" + victim.email, nil},
		{c, http.MethodGet, s.auth + "/api/auth/users/", nil},
		{c, http.MethodGet, s.auth + "/api/auth/users/" + victim.userID + "/", nil},
		{c, http.MethodPost, s.auth + "/api/auth/users/", custNew},
		{c, http.MethodDelete, s.auth + "/api/auth/users/" + victim.userID + "/", nil},
		{c, http.MethodPost, s.customer + "/api/v1/customers/", profileFor},
		{c, http.MethodPost, s.customer + "/api/v1/customers/" + c.profileID + "/verify/", nil},
		{c, http.MethodPost, s.customer + "/api/v1/customers/" + c.profileID + "/increment_service/", map[string]any{"service_type": "free"}},
		{c, http.MethodPost, s.customer + "/api/v1/customers/" + victim.profileID + "/verify/", nil},
		{s.employee, http.MethodDelete, s.auth + "/api/auth/users/" + victim.userID + "/", nil},
		{s.employee, http.MethodPost, s.auth + "/api/auth/users/", empNew},
		{s.employee, http.MethodDelete, s.customer + "/api/v1/customers/" + victim.profileID + "/", nil},
	}
	for _, x := range cases {
		role := "a customer"
		if x.who == s.employee {
			role = "an employee"
		}
		what := role + " at " + x.method + " " + x.url[strings.Index(x.url, "/api"):]
		a := s.call(t, x.method, x.url, x.body, x.who.as())
		wantError(t, what, a, http.StatusForbidden, "permission_denied")
	}
	for _, b := range []map[string]any{custNew, empNew} {
		if id := s.userByEmail(t, b["email"].(string)); id != "" {
			t.Errorf("a refused create made the user %s (%s)", b["email"], id)
		}
	}

	// Nothing happened to the victim or the customer.
	if s.userByEmail(t, victim.email) != victim.userID || !s.profileExists(t, victim.userID) {
		t.Fatalf("the victim's user or profile is gone")
	}
	for _, acct := range []*account{victim, c} {
		a := s.call(t, http.MethodGet, s.customer+"/api/v1/customers/profile/", nil, acct.as())
		if p := a.Map(t); a.Status != http.StatusOK || p["is_verified"] != false || p["total_services"] != float64(0) {
			t.Errorf("%s's profile changed: %s", acct.email, a)
		}
	}
	// A customer's statistics are their own.
	a := s.call(t, http.MethodGet, s.customer+"/api/v1/customers/stats/", nil, c.as())
	if m := a.Map(t); a.Status != http.StatusOK || m["scope"] != "self" || m["total_customers"] != nil || m["customers_by_country"] != nil {
		t.Errorf("a customer's stats: %s, want scope self", a)
	}
}
