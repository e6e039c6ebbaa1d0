package bffd_test

import (
	"net/http"
	"testing"

	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestMeProfileUserFieldsFromTheUser: the merged view's profile carries
// email, first_name, last_name and phone_number, and they are its user
// part's, the auth service's answer: the BFF reads the profile without the
// user data (include_user=false), so the customer service makes no call to
// the auth service for a view (counted at a proxy between the two), and
// after the user's name and phone changed at the auth service the view
// shows the new values in both parts while the token the BFF forwards
// still carries the old name (the customer service's merged read, which
// takes the names from the token, still answers it).
func TestMeProfileUserFieldsFromTheUser(t *testing.T) {
	t.Parallel()
	sys := systest.Start(t, systest.Options{
		Services: []string{"auth", "customer", "bff"},
		Proxies:  []systest.Link{{From: "customer", To: "auth", Record: true}},
	})
	toAuth := sys.Proxy("customer", "auth")
	bffURL, authURL, customerURL := sys.URL("bff"), sys.URL("auth"), sys.URL("customer")
	reg := call(t, http.MethodPost, bffURL+"/api/bff/register/", registration("view-fields@example.com"), nil)
	userID, access := registered(t, reg, "view-fields@example.com")

	view := func(what string) (user, profile map[string]any) {
		t.Helper()
		before := toAuth.Stats().Requests
		a := call(t, http.MethodGet, bffURL+"/api/bff/me/", nil, testenv.Bearer(access))
		if n := toAuth.Stats().Requests - before; n != 0 {
			t.Fatalf("%s: the customer service called the auth service %d times for a view", what, n)
		}
		if a.Status != http.StatusOK || a.Header.Get("X-Cache") != "BYPASS" {
			t.Fatalf("%s: %s %v", what, a, a.Header)
		}
		user, profile = part(t, a, "user"), part(t, a, "profile")
		if user["id"] != userID || profile["user_id"] != userID {
			t.Fatalf("%s: %s", what, a)
		}
		for _, k := range []string{"email", "first_name", "last_name", "phone_number"} {
			if v, ok := profile[k]; !ok || v == nil || v != user[k] {
				t.Fatalf("%s: the profile's %s is %v, the user's %v: %s", what, k, profile[k], user[k], a)
			}
		}
		return user, profile
	}
	if user, _ := view("after registration"); user["first_name"] != "Ada" || user["phone_number"] != "+15035550100" {
		t.Fatalf("after registration: user %v", user)
	}

	up := call(t, http.MethodPatch, authURL+"/api/auth/profile/update/", map[string]any{"first_name": "Augusta", "phone_number": "+15035550199"}, testenv.Bearer(access))
	if up.Status != http.StatusOK {
		t.Fatalf("update at the auth service: %s", up)
	}
	if _, profile := view("after the update"); profile["first_name"] != "Augusta" || profile["last_name"] != "Lovelace" || profile["phone_number"] != "+15035550199" {
		t.Fatalf("after the update: profile %v", profile)
	}

	// The customer service's own merged read: the names from the token
	// (still "Ada"), the phone from the auth service, which it asks.
	before := toAuth.Stats().Requests
	merged := call(t, http.MethodGet, customerURL+"/api/v1/customers/profile/", nil, testenv.Bearer(access))
	if m := merged.Map(t); merged.Status != http.StatusOK || m["first_name"] != "Ada" || m["phone_number"] != "+15035550199" {
		t.Fatalf("the customer service's merged read: %s", merged)
	}
	if n := toAuth.Stats().Requests - before; n != 1 {
		t.Fatalf("the customer service's merged read called the auth service %d times, want 1", n)
	}
}
