package authclient_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestRegisterSendsTheKeyAsAHeader: RegistrationKey travels as the
// Idempotency-Key header, never in the body; without one no header is sent.
func TestRegisterSendsTheKeyAsAHeader(t *testing.T) {
	t.Parallel()
	type seen struct {
		keys []string
		body map[string]any
	}
	got := make(chan seen, 1)
	cl, _ := django(t, func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var b map[string]any
		_ = json.Unmarshal(raw, &b)
		got <- seen{keys: r.Header.Values("Idempotency-Key"), body: b}
		answer(201, "application/json", `{"id":"u1","email":"a@example.com","user_role":"customer","tokens":{"access":"a","refresh":"r"}}`)(w, r)
	})
	ctx := context.Background()
	req := authclient.RegisterRequest{Email: "a@example.com", FirstName: "A", LastName: "B", Password1: "pw", Password2: "pw", RegistrationKey: "saga-42"}
	s, err := cl.Register(ctx, req)
	if err != nil || s.User.ID != "u1" || s.User.RegistrationKey != "" {
		t.Fatalf("register: %+v, %v", s, err)
	}
	sent := <-got
	if len(sent.keys) != 1 || sent.keys[0] != "saga-42" {
		t.Fatalf("Idempotency-Key header %q, want [saga-42]", sent.keys)
	}
	for k, v := range sent.body {
		if v == "saga-42" || k == "registration_key" || k == "RegistrationKey" {
			t.Fatalf("the key is in the body: %v", sent.body)
		}
	}
	if len(sent.body) != 6 {
		t.Fatalf("body %v, want the six register members", sent.body)
	}

	req.RegistrationKey = ""
	if _, err := cl.Register(ctx, req); err != nil {
		t.Fatal(err)
	}
	if sent := <-got; sent.keys != nil {
		t.Fatalf("a register without a key sent Idempotency-Key %q", sent.keys)
	}
}

// TestUserRegistrationKey: the lookups' registration_key is read; null,
// absent (the Django auth service) and a user's own answers give "".
func TestUserRegistrationKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name, user, want string
	}{
		{"a key", `{"id":"u1","email":"a@example.com","registration_key":"saga-42"}`, "saga-42"},
		{"null", `{"id":"u1","email":"a@example.com","registration_key":null}`, ""},
		{"absent (Django), with an integer id", `{"id":7,"email":"a@example.com"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cl, _ := django(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/api/auth/users/" {
					answer(200, "application/json", `{"count":1,"results":[`+tc.user+`]}`)(w, r)
					return
				}
				answer(200, "application/json", tc.user)(w, r)
			})
			u, err := cl.GetUser(ctx, "st", "u1")
			if err != nil || u.RegistrationKey != tc.want || u.Email != "a@example.com" {
				t.Fatalf("GetUser: %+v, %v", u, err)
			}
			u, err = cl.FindUserByEmail(ctx, "st", "a@example.com")
			if err != nil || u.RegistrationKey != tc.want {
				t.Fatalf("FindUserByEmail: %+v, %v", u, err)
			}
		})
	}
}

// TestRegistrationKeyAgainstTheAuthService: the key sent with Register is
// what the lookups return, the user's own answers never carry it, and a
// second Register with the same key is the usual "email exists".
func TestRegistrationKeyAgainstTheAuthService(t *testing.T) {
	t.Parallel()
	base := startAuth(t, nil)
	cl := authclient.New(authclient.Options{BaseURL: base, Timeout: 5 * time.Second, Transport: apiDocs.Transport(t, nil)})
	ctx := context.Background()
	svc := of(authclient.NewServiceTokens(cl, systest.BFFClientID, systest.BFFClientSecret).Token(ctx)).must(t)
	const key = "saga-0f6a2c1e-9b7d-4e3a-8c5f-1d2e3f4a5b6c"

	req := authclient.RegisterRequest{Email: "Kai@Example.com", FirstName: "Kai", LastName: "Key", Password1: userPass, Password2: userPass, RegistrationKey: key}
	reg := of(cl.Register(ctx, req)).must(t)
	if reg.User.RegistrationKey != "" {
		t.Fatalf("the register answer shows the key: %+v", reg.User)
	}
	if p := of(cl.Profile(ctx, reg.Tokens.Access)).must(t); p.RegistrationKey != "" {
		t.Fatalf("the profile shows the key: %+v", p)
	}
	if u := of(cl.GetUser(ctx, svc, reg.User.ID)).must(t); u.RegistrationKey != key {
		t.Fatalf("GetUser: %+v", u)
	}
	if u := of(cl.FindUserByEmail(ctx, svc, "kai@example.com")).must(t); u.ID != reg.User.ID || u.RegistrationKey != key {
		t.Fatalf("FindUserByEmail: %+v", u)
	}

	e := asError(t, firstErr(cl.Register(ctx, req)), authclient.ErrValidation)
	if len(e.Fields) != 1 || e.Fields["email"][0] != "user with this email already exists." {
		t.Fatalf("a second register with the same key: %v", e.Fields)
	}

	plain := of(cl.Register(ctx, authclient.RegisterRequest{Email: "noa@example.com", FirstName: "Noa", LastName: "Plain", Password1: userPass, Password2: userPass})).must(t)
	if u := of(cl.FindUserByEmail(ctx, svc, "noa@example.com")).must(t); u.ID != plain.User.ID || u.RegistrationKey != "" {
		t.Fatalf("a user registered without a key: %+v", u)
	}

	bad := req
	bad.Email, bad.RegistrationKey = "bad@example.com", "not a key"
	e = asError(t, firstErr(cl.Register(ctx, bad)), authclient.ErrValidation)
	if e.Fields["Idempotency-Key"][0] != "Idempotency-Key must be 1 to 255 visible ASCII characters." {
		t.Fatalf("a malformed key: %v", e.Fields)
	}
	asError(t, firstErr(cl.FindUserByEmail(ctx, svc, "bad@example.com")), authclient.ErrNotFound)
}

// TestUserEncodesAsTheContractsUserJSON: a user without a key (every
// answer a user sees of themselves) encodes without registration_key, as
// the BFF passes it on; a key encodes as the lookups carry it.
func TestUserEncodesAsTheContractsUserJSON(t *testing.T) {
	t.Parallel()
	raw, err := json.Marshal(authclient.User{ID: "u1", Email: "a@example.com"})
	if err != nil || strings.Contains(string(raw), "registration_key") {
		t.Fatalf("a user without a key encodes as %s, %v", raw, err)
	}
	raw, _ = json.Marshal(authclient.User{ID: "u1", RegistrationKey: "saga-42"})
	var back authclient.User
	if err := json.Unmarshal(raw, &back); err != nil || back.RegistrationKey != "saga-42" {
		t.Fatalf("round trip of %s: %+v, %v", raw, back, err)
	}
}
