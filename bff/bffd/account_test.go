package bffd_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/faultproxy"
	"github.com/acme/customer-platform/internal/testenv"
)

func me(t *testing.T, b *bffServer, access string) testenv.Answer {
	t.Helper()
	return call(t, http.MethodGet, b.url+"/api/bff/me/", nil, testenv.Bearer(access))
}

func part(t *testing.T, a testenv.Answer, name string) map[string]any {
	t.Helper()
	p, _ := a.Map(t)[name].(map[string]any)
	return p
}

func TestLoginAndMe(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(nil, nil)
	userID, _ := registered(t, b.register(registration("login@example.com"), nil), "login@example.com")

	a := call(t, http.MethodPost, b.url+"/api/bff/login/", map[string]string{"email": "LOGIN@example.com", "password": testPassword}, nil)
	body := a.Map(t)
	tokens, _ := body["tokens"].(map[string]any)
	if a.Status != 200 || tokens["access"] == nil || tokens["refresh"] == nil ||
		part(t, a, "user")["id"] != userID || part(t, a, "profile")["user_id"] != userID {
		t.Fatalf("login: %s", a)
	}
	if m := me(t, b, tokens["access"].(string)); m.Status != 200 || part(t, m, "user")["id"] != userID {
		t.Fatalf("GET /me with the login's token: %s", m)
	}

	bad := call(t, http.MethodPost, b.url+"/api/bff/login/", map[string]string{"email": "login@example.com", "password": "wrong-password"}, nil)
	if bad.Status != http.StatusUnauthorized || bad.Map(t)["detail"] == nil {
		t.Fatalf("bad credentials: %s", bad)
	}
	if a := call(t, http.MethodPost, b.url+"/api/bff/login/", map[string]string{"email": "login@example.com"}, nil); a.Status != 400 || a.Map(t)["password"] == nil {
		t.Fatalf("missing password: %s", a)
	}

	// /me needs a valid user token.
	if a := call(t, http.MethodGet, b.url+"/api/bff/me/", nil, nil); a.Status != 401 || a.Map(t)["code"] != "not_authenticated" {
		t.Fatalf("no token: %s", a)
	}
	if a := me(t, b, "not.a.token"); a.Status != 401 || a.Map(t)["code"] != "token_not_valid" {
		t.Fatalf("bad token: %s", a)
	}

	// Login still works with the customer service down: the profile is
	// then null and flagged unavailable.
	s.custProxy.Refuse()
	a = call(t, http.MethodPost, b.url+"/api/bff/login/", map[string]string{"email": "login@example.com", "password": testPassword}, nil)
	_ = s.custProxy.Pass()
	if a.Status != 200 || a.Map(t)["profile"] != nil || a.Map(t)["profile_unavailable"] != true || part(t, a, "user")["id"] != userID {
		t.Fatalf("login with the customer service down: %s", a)
	}
}

func TestPatchMe(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(nil, nil)
	userID, access := registered(t, b.register(registration("patch@example.com"), nil), "patch@example.com")
	patch := func(body any) testenv.Answer {
		return call(t, http.MethodPatch, b.url+"/api/bff/me/", body, testenv.Bearer(access))
	}

	a := patch(map[string]any{"first_name": "Augusta", "city": "Salem", "company_name": "Engines Ltd"})
	if a.Status != 200 || part(t, a, "user")["first_name"] != "Augusta" || part(t, a, "profile")["city"] != "Salem" ||
		part(t, a, "profile")["company_name"] != "Engines Ltd" {
		t.Fatalf("patch both: %s", a)
	}
	if m := me(t, b, access); part(t, m, "profile")["city"] != "Salem" || part(t, m, "user")["first_name"] != "Augusta" {
		t.Fatalf("GET after PATCH: %s", m)
	}
	if p := s.profiles(t, userID); len(p) != 1 || p[0]["city"] != "Salem" {
		t.Fatalf("stored profile: %v", p)
	}

	// Bad input of either side: 400 naming every field, nothing written.
	a = patch(map[string]any{"email": "nope", "business_type": "empire", "is_verified": true, "shoe_size": 9})
	if a.Status != 400 {
		t.Fatalf("bad patch: %s", a)
	}
	for _, f := range []string{"email", "business_type", "is_verified", "shoe_size"} {
		if a.Map(t)[f] == nil {
			t.Errorf("no error for %s: %s", f, a.Body)
		}
	}
	if p := s.profiles(t, userID); p[0]["business_type"] == "empire" {
		t.Fatal("bad patch written")
	}

	// One side fails after the other succeeded: the answer says which part
	// was applied.
	s.custProxy.Refuse()
	a = patch(map[string]any{"last_name": "King", "city": "Eugene"})
	_ = s.custProxy.Pass()
	body := a.Map(t)
	if a.Status != http.StatusServiceUnavailable || body["code"] != bff.CodePartialUpdate {
		t.Fatalf("partial: %s", a)
	}
	if applied, _ := body["applied"].([]any); len(applied) != 1 || applied[0] != "user" {
		t.Fatalf("partial applied: %s", a)
	}
	if m := me(t, b, access); part(t, m, "user")["last_name"] != "King" || part(t, m, "profile")["city"] != "Salem" {
		t.Fatalf("after the partial update: %s", m)
	}

	// A rule only the customer service knows (a US postal code with the
	// stored country) comes back from it verbatim.
	a = patch(map[string]any{"postal_code": "ABC"})
	if a.Status != 400 || a.Map(t)["postal_code"] == nil {
		t.Fatalf("postal code: %s", a)
	}
}

func TestDeleteMe(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(nil, nil)

	userID, access := registered(t, b.register(registration("bye@example.com"), nil), "bye@example.com")
	if a := call(t, http.MethodDelete, b.url+"/api/bff/me/", nil, testenv.Bearer(access)); a.Status != http.StatusNoContent {
		t.Fatalf("delete: %s", a)
	}
	s.noAccount(t, "bye@example.com", userID)
	if m := me(t, b, access); m.Status != http.StatusUnauthorized && m.Status != http.StatusNotFound {
		t.Fatalf("GET after delete: %s", m)
	}

	// The account deletion fails after the profile is gone: accepted, and
	// the reconciler finishes it once the auth service is back.
	userID, access = registered(t, b.register(registration("later@example.com"), nil), "later@example.com")
	s.authProxy.SetRules(faultproxy.Rule{Method: "DELETE", Action: faultproxy.Fail, Status: 503})
	s.authProxy.CutOpen()
	a := call(t, http.MethodDelete, b.url+"/api/bff/me/", nil, testenv.Bearer(access))
	if a.Status != http.StatusAccepted || a.Map(t)["code"] != bff.CodeDeletionPending || a.Map(t)["profile_deleted"] != true {
		t.Fatalf("delete with the auth service failing: %s", a)
	}
	if len(s.profiles(t, userID)) != 0 || len(s.users(t, "later@example.com")) != 1 {
		t.Fatal("want the profile gone and the account still there")
	}
	_ = s.authProxy.Pass()
	testenv.Eventually(t, 20*time.Second, testenv.Holds("the reconciler finishes the deletion", func() bool {
		return len(s.users(t, "later@example.com")) == 0 && s.settled(t)
	}))
}
