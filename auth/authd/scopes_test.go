package authd_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestServiceClientScopes: each service client gets only the scopes
// configured with it in AUTH_SERVICE_CLIENTS, its token carries them (the
// scope claim; AUTH_SERVICE_CLIENT_SCOPES), and the auth service refuses it the rest with 403
// permission_denied: users:read reads users, users:create creates them,
// users:delete:customers deletes customer-role users only, users:delete
// any user. Outside development a client configured without scopes gets
// none.
func TestServiceClientScopes(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{
		"DEPLOYMENT_ENVIRONMENT": "production",
		"AUTH_SERVICE_CLIENTS":   "bff:bff-secret,customer:customer-secret,migrate:migrate-secret,ops:ops-secret,bare:bare-secret",
		"AUTH_SERVICE_CLIENT_SCOPES": "bff=users:read users:delete:customers customers:read customers:write customers:delete," +
			"customer=users:read, migrate=users:read users:create customers:delete, ops=users:read users:delete",
		"AUTH_BOOTSTRAP_ADMIN_EMAIL": adminEmail, "AUTH_BOOTSTRAP_ADMIN_PASSWORD": adminPassword,
	})
	token := func(id string) string {
		t.Helper()
		a := s.post("/api/auth/token/service/", "", map[string]any{"client_id": id, "client_secret": id + "-secret"})
		if a.Status != http.StatusOK {
			t.Fatalf("service token of %s: %d %s", id, a.Status, a.Body)
		}
		tok, _ := a.Map(t)["access"].(string)
		return tok
	}
	wantScopes := map[string][]string{
		"bff":      {"users:read", "users:delete:customers", "customers:read", "customers:write", "customers:delete"},
		"customer": {"users:read"},
		"migrate":  {"users:read", "users:create", "customers:delete"},
		"ops":      {"users:read", "users:delete"},
		"bare":     {},
	}
	tokens := map[string]string{}
	for id, want := range wantScopes {
		tokens[id] = token(id)
		c, err := s.verifier.Verify(tokens[id])
		if err != nil {
			t.Fatalf("%s's token: %v", id, err)
		}
		if !c.ScopeClaim || !slices.Equal(c.Scopes, want) {
			t.Fatalf("%s's token: scopes %q (claim %v); want %q", id, c.Scopes, c.ScopeClaim, want)
		}
	}
	admin := toSession(t, s.login(adminEmail, adminPassword))
	denied := func(who string, a answer) {
		t.Helper()
		if a.Status != http.StatusForbidden || a.Map(t)["code"] != "permission_denied" {
			t.Errorf("%s: %d %s, want 403 permission_denied", who, a.Status, a.Body)
		}
	}
	allowed := func(who string, a answer, status int) {
		t.Helper()
		if a.Status != status {
			t.Errorf("%s: %d %s, want %d", who, a.Status, a.Body, status)
		}
	}
	newUser := func(email string) map[string]any {
		return map[string]any{"email": email, "first_name": "N", "last_name": "U", "phone_number": "555 0100"}
	}
	del := func(id, tok string) answer {
		return s.do(req{method: http.MethodDelete, path: "/api/auth/users/" + id + "/", token: tok})
	}
	victim := s.register("victim@example.com", "V", "Ictim")

	for id := range wantScopes {
		read := slices.Contains(wantScopes[id], "users:read")
		for _, path := range []string{"/api/auth/users/" + victim.id + "/", "/api/auth/users/?email=victim%40example.com", "/api/auth/users/?page_size=1"} {
			if a := s.get(path, tokens[id]); read {
				allowed(id+" GET "+path, a, http.StatusOK)
			} else {
				denied(id+" GET "+path, a)
			}
		}
		a := s.post("/api/auth/users/", tokens[id], newUser(id+".new@example.com"))
		if slices.Contains(wantScopes[id], "users:create") {
			allowed(id+" POST users/", a, http.StatusCreated)
		} else {
			denied(id+" POST users/", a)
		}
		// No client but ops (users:delete) deletes an admin.
		if id != "ops" {
			denied(id+" DELETE admin", del(admin.id, tokens[id]))
		}
	}
	// A body a client may not send is refused before it is read.
	denied("bff POST users/ with a bad body", s.post("/api/auth/users/", tokens["bff"], map[string]any{"email": "x"}))
	for _, id := range []string{"customer", "migrate", "bare"} {
		denied(id+" DELETE customer", del(victim.id, tokens[id]))
	}
	if s.get("/api/auth/users/"+admin.id+"/", tokens["ops"]).Status != http.StatusOK {
		t.Fatal("the admin is gone after refused deletes")
	}
	allowed("bff DELETE customer", del(victim.id, tokens["bff"]), http.StatusNoContent)
	allowed("ops DELETE admin", del(admin.id, tokens["ops"]), http.StatusNoContent)
	if !strings.Contains(s.logs.String(), `"bare"`) {
		t.Errorf("no warning names the client configured without scopes:\n%s", s.logs.String())
	}
}
