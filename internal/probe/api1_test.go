package probe

import (
	"net/http"
	"strings"
	"testing"

	"github.com/acme/customer-platform/internal/testenv"
)

// probeAPI1BOLA: a customer who knows another customer's ids asks for,
// changes and deletes their objects, at the customer service and through
// the BFF. Every answer is 404 (or 403 where the contract says so), none
// carries the victim's data, and the victim's profile is as it was.
func probeAPI1BOLA(t *testing.T, s *suite) {
	victim := s.customerAccount(t, "bola-victim")
	attacker := s.customerAccount(t, "bola-attacker")
	secrets := []string{victim.email, victim.userID, victim.profileID, "TAX-1815-victim"}
	// Mark the victim's profile so that a leak is recognisable.
	if a := s.call(t, http.MethodPatch, s.customer+"/api/v1/customers/profile/update/", map[string]any{"tax_id": "TAX-1815-victim"}, victim.as()); a.Status != http.StatusOK {
		t.Fatalf("victim updates their profile: %s", a)
	}
	noVictimData := func(what string, a testenv.Answer) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(string(a.Body), sec) {
				t.Errorf("%s: the answer carries the victim's %q: %s", what, sec, a)
			}
		}
	}
	byID := s.customer + "/api/v1/customers/" + victim.profileID + "/"
	for _, c := range []struct {
		method, url string
		body        any
	}{
		{http.MethodGet, byID, nil},
		{http.MethodPatch, byID, map[string]any{"city": "Stolen"}},
		{http.MethodPut, byID, map[string]any{"street_address": "1 Thief St", "city": "Stolen", "postal_code": "97201"}},
		{http.MethodDelete, byID, nil},
		{http.MethodGet, byID + "services/", nil},
	} {
		what := c.method + " another customer's " + strings.TrimPrefix(c.url, s.customer)
		a := s.call(t, c.method, c.url, c.body, attacker.as())
		wantError(t, what, a, http.StatusNotFound, "not_found")
		noVictimData(what, a)
	}

	// The staff-only parameters of a customer's own endpoints.
	a := s.call(t, http.MethodPost, s.customer+"/api/v1/customers/check_profile_exists/", map[string]any{"user_id": victim.userID}, attacker.as())
	if a.Status == http.StatusOK {
		t.Errorf("check_profile_exists of another user's id answered a customer: %s", a)
	}
	noVictimData("check_profile_exists of another user's id", a)
	for _, q := range []string{"?search=" + victim.email, "?search=bola-victim", "?city=Portland&page_size=100", "?user_id=" + victim.userID} {
		a := s.call(t, http.MethodGet, s.customer+"/api/v1/customers/"+q, nil, attacker.as())
		if a.Status != http.StatusOK {
			t.Errorf("a customer's listing %s: %s", q, a)
		}
		noVictimData("a customer's listing "+q, a)
	}
	a = s.call(t, http.MethodGet, s.customer+"/api/v1/customers/stats/", nil, attacker.as())
	if m := a.Map(t); a.Status != http.StatusOK || m["scope"] != "self" || m["total_customers"] != nil {
		t.Errorf("a customer's stats are not their own: %s", a)
	}

	// The BFF serves only the caller's own view, whatever the request names.
	a = s.call(t, http.MethodGet, s.bff+"/api/bff/me/?user_id="+victim.userID+"&id="+victim.profileID, nil, attacker.as())
	if a.Status != http.StatusOK {
		t.Fatalf("the attacker's own view: %s", a)
	}
	noVictimData("GET /api/bff/me/ naming the victim", a)
	a = s.call(t, http.MethodPatch, s.bff+"/api/bff/me/", map[string]any{"user_id": victim.userID, "city": "Stolen"}, attacker.as())
	if a.Status != http.StatusBadRequest {
		t.Errorf("PATCH /api/bff/me/ naming the victim's user_id: %s, want 400", a)
	}
	noVictimData("PATCH /api/bff/me/ naming the victim", a)

	// The auth service's user endpoints are staff's.
	a = s.call(t, http.MethodGet, s.auth+"/api/auth/users/"+victim.userID+"/", nil, attacker.as())
	wantError(t, "GET another user at auth", a, http.StatusForbidden, "permission_denied")
	noVictimData("GET another user at auth", a)

	// Nothing of the victim changed.
	a = s.call(t, http.MethodGet, s.customer+"/api/v1/customers/profile/", nil, victim.as())
	if m := a.Map(t); a.Status != http.StatusOK || m["city"] != "Portland" || m["street_address"] != "12 Analytical Row" {
		t.Errorf("the victim's profile changed: %s", a)
	}
}
