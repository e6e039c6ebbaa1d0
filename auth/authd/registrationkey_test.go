package authd_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/acme/customer-platform/internal/testenv"
)

const msgBadKey = "Idempotency-Key must be 1 to 255 visible ASCII characters."

// TestRegistrationKey: the Idempotency-Key of a registration is stored with
// the user; the user lookups of staff and services return it as
// registration_key (null without one), the user's own answers never carry
// it, a malformed key is refused with nothing stored, and a second
// registration with the same key is the usual "email exists" error.
func TestRegistrationKey(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{"AUTH_BOOTSTRAP_ADMIN_EMAIL": adminEmail, "AUTH_BOOTSTRAP_ADMIN_PASSWORD": adminPassword})
	const key = "saga-7d0c1f9a-3b2e-4f61-9a8e-2c4b5d6e7f80"
	register := func(email, key string) answer {
		return s.do(req{method: http.MethodPost, path: "/api/auth/register/", body: regBody(email, "Kim", "Key", goodPassword),
			header: map[string]string{"Idempotency-Key": key}})
	}
	a := register("kim@example.com", key)
	if a.Status != http.StatusCreated {
		t.Fatalf("register with a key: %d %s", a.Status, a.Body)
	}
	u := toSession(t, a)
	plain := s.register("pat@example.com", "Pat", "Plain")

	// The user never sees the key.
	for what, body := range map[string]map[string]any{
		"register": u.body,
		"login":    toSession(t, s.login("kim@example.com", goodPassword)).body,
		"profile":  s.get("/api/auth/profile/", u.access).Map(t),
		"update": s.do(req{method: http.MethodPatch, path: "/api/auth/profile/update/", token: u.access,
			body: map[string]any{"first_name": "Kimberly"}}).Map(t),
	} {
		if _, ok := body["registration_key"]; ok || strings.Contains(stringOf(body), key) {
			t.Errorf("%s answer shows the key: %v", what, body)
		}
	}

	// Staff and services read it back; null for a user without one.
	admin := toSession(t, s.login(adminEmail, adminPassword))
	for who, tok := range map[string]string{"service": s.serviceToken(), "admin": admin.access} {
		byID := s.get("/api/auth/users/"+u.id+"/", tok)
		if m := byID.Map(t); byID.Status != http.StatusOK || m["registration_key"] != key {
			t.Errorf("%s: GET users/<id>/: %d %s", who, byID.Status, byID.Body)
		}
		found := s.get("/api/auth/users/?email=KIM%40example.com", tok)
		if r := results(t, found); len(r) != 1 || r[0]["id"] != u.id || r[0]["registration_key"] != key {
			t.Errorf("%s: GET users/?email=: %s", who, found.Body)
		}
		m := s.get("/api/auth/users/"+plain.id+"/", tok).Map(t)
		if v, ok := m["registration_key"]; !ok || v != nil {
			t.Errorf("%s: a user registered without a key: %v", who, m)
		}
		if r := results(t, s.get("/api/auth/users/?email=pat%40example.com", tok)); len(r) != 1 || r[0]["registration_key"] != nil {
			t.Errorf("%s: lookup of a user registered without a key: %v", who, r)
		}
	}
	// A user created by staff has none.
	created := s.post("/api/auth/users/", admin.access, map[string]any{"email": "made@example.com", "first_name": "M", "last_name": "S", "phone_number": ""})
	if created.Status != http.StatusCreated {
		t.Fatalf("staff creation: %d %s", created.Status, created.Body)
	}
	if m := s.get("/api/auth/users/"+created.Map(t)["id"].(string)+"/", admin.access).Map(t); m["registration_key"] != nil {
		t.Errorf("a user created by staff has key %v", m["registration_key"])
	}

	// A second registration of the email, with the same key or another:
	// "email exists", and the stored key stays the first one.
	for _, k := range []string{key, "another-key"} {
		f := register("KIM@example.com", k).fields(t)
		if len(f) != 1 || len(f["email"]) != 1 || f["email"][0] != "user with this email already exists." {
			t.Errorf("second registration with key %q: %v", k, f)
		}
	}
	if r := results(t, s.get("/api/auth/users/?email=kim%40example.com", s.serviceToken())); len(r) != 1 || r[0]["id"] != u.id || r[0]["registration_key"] != key {
		t.Errorf("after the second registrations: %v", r)
	}

	// A malformed key: 400 naming the header, with the body's other
	// problems, and nothing stored.
	for _, k := range []string{"", "two words", strings.Repeat("k", 256), "caf\u00e9"} {
		a := register("bad-key@example.com", k)
		if f := a.fields(t); len(f) != 1 || len(f["Idempotency-Key"]) != 1 || f["Idempotency-Key"][0] != msgBadKey {
			t.Errorf("key %q: %v", k, f)
		}
	}
	raw, _ := json.Marshal(regBody("bad-key@example.com", "Kim", "Key", goodPassword))
	r, err := http.NewRequest(http.MethodPost, s.base+"/api/auth/register/", bytes.NewReader(raw))
	testenv.Must(t, err, "request")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Add("Idempotency-Key", "a")
	r.Header.Add("Idempotency-Key", "b")
	resp, err := apiDocs.Client(t, nil).Do(r)
	testenv.Must(t, err, "two Idempotency-Key header lines")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), msgBadKey) {
		t.Errorf("two Idempotency-Key header lines: %d %s", resp.StatusCode, body)
	}
	b := regBody("bad-key@example.com", "Kim", "Key", goodPassword)
	b["first_name"] = 7
	f := s.do(req{method: http.MethodPost, path: "/api/auth/register/", body: b, header: map[string]string{"Idempotency-Key": "bad key"}}).fields(t)
	if len(f) != 2 || f["Idempotency-Key"][0] != msgBadKey || f["first_name"][0] != "Not a valid string." {
		t.Errorf("a bad key with a bad body: %v", f)
	}
	if n := s.countByEmail("bad-key@example.com"); n != 0 {
		t.Errorf("%d users stored after refused registrations", n)
	}
}

// results are the users of a lookup by email.
func results(t *testing.T, a answer) []map[string]any {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("lookup: %d %s", a.Status, a.Body)
	}
	var out []map[string]any
	for _, r := range a.Map(t)["results"].([]any) {
		out = append(out, r.(map[string]any))
	}
	return out
}

func stringOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
