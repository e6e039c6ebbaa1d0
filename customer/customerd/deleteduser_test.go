package customerd_test

import (
	"net/http"
	"testing"

	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestNoProfileForADeletedUser runs the real auth and customer services: a
// user deleted at the auth service (by themselves, or by an admin) keeps a
// valid access token for minutes, and that token creates no profile: 401
// user_not_found, the auth service's own answer to it. Staff creating a
// profile for the deleted user get a 400 naming user_id. With the auth
// service stopped no profile is created (503). In every case nothing is
// stored.
func TestNoProfileForADeletedUser(t *testing.T) {
	t.Parallel()
	sys := systest.Start(t, systest.Options{Services: []string{"auth", "customer"}})
	authURL, base := sys.URL("auth"), sys.URL("customer")+"/api/v1/customers/"
	address := map[string]any{"street_address": "1 Main St", "city": "Springfield", "postal_code": "62701"}
	register := func(email string) (id, access string) {
		t.Helper()
		a := testenv.Call(t, nil, http.MethodPost, authURL+"/api/auth/register/", map[string]any{
			"email": email, "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+1 555-0100",
			"password1": "Tr1cky-Wombat-Lantern", "password2": "Tr1cky-Wombat-Lantern",
		}, nil)
		if a.Status != http.StatusCreated {
			t.Fatalf("register %s: %s", email, a)
		}
		var b struct {
			ID     string
			Tokens struct{ Access string }
		}
		a.JSON(t, &b)
		return b.ID, b.Tokens.Access
	}
	employee := token(t, contract.NewID(), "employee")
	admin := token(t, contract.NewID(), "admin")
	hasProfile := func(userID string) bool {
		t.Helper()
		code, body, _ := call(t, "POST", base+"check_profile_exists/", employee, map[string]any{"user_id": userID})
		if code != http.StatusOK {
			t.Fatalf("check_profile_exists: %d %v", code, body)
		}
		return body["exists"] == true
	}

	// Deleted by themselves (DELETE /me), then by an admin.
	selfID, selfToken := register("self-deleted@example.com")
	if a := testenv.Call(t, nil, http.MethodDelete, authURL+"/api/auth/profile/delete/", nil, testenv.Bearer(selfToken)); a.Status != http.StatusNoContent {
		t.Fatalf("self delete: %s", a)
	}
	adminID, adminToken := register("admin-deleted@example.com")
	if a := testenv.Call(t, nil, http.MethodDelete, authURL+"/api/auth/users/"+adminID+"/", nil, testenv.Bearer(admin)); a.Status != http.StatusNoContent {
		t.Fatalf("admin delete: %s", a)
	}
	for _, u := range []struct{ what, id, token string }{{"self-deleted", selfID, selfToken}, {"admin-deleted", adminID, adminToken}} {
		code, body, hdr := call(t, "POST", base+"profile/create/", u.token, address)
		if code != http.StatusUnauthorized || body["code"] != "user_not_found" || hdr.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s user's own create: %d %v", u.what, code, body)
		}
		staff := map[string]any{"user_id": u.id}
		for k, v := range address {
			staff[k] = v
		}
		code, body, _ = call(t, "POST", base, employee, staff)
		if code != http.StatusBadRequest || len(body) != 1 || body["user_id"] == nil {
			t.Fatalf("staff create for the %s user: %d %v", u.what, code, body)
		}
		if hasProfile(u.id) {
			t.Fatalf("the %s user has a profile", u.what)
		}
	}

	// A living user: the auth service down refuses the create, back up it
	// succeeds.
	liveID, liveToken := register("alive@example.com")
	auth := sys.Service("auth")
	testenv.Must(t, auth.Stop(), "stop auth")
	code, body, _ := call(t, "POST", base+"profile/create/", liveToken, address)
	if code != http.StatusServiceUnavailable || body["code"] != "upstream_unavailable" {
		t.Fatalf("create with the auth service down: %d %v", code, body)
	}
	if hasProfile(liveID) {
		t.Fatal("a profile was created without the auth service's confirmation")
	}
	auth.Start()
	code, body, _ = call(t, "POST", base+"profile/create/", liveToken, address)
	if code != http.StatusCreated || body["user_id"] != liveID || body["phone_number"] != "+1 555-0100" {
		t.Fatalf("create for a living user: %d %v", code, body)
	}
}
