package authd_test

import (
	"net/http"
	"testing"
)

const msgNUL = "Null characters are not allowed."

// TestNullCharactersRefused: a NUL in a text member is refused field by
// field with Django's message wherever Django's CharField refuses it, and
// nothing is stored (so nothing reaches a signed token).
func TestNullCharactersRefused(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{"AUTH_BOOTSTRAP_ADMIN_EMAIL": adminEmail, "AUTH_BOOTSTRAP_ADMIN_PASSWORD": adminPassword})
	wantNUL := func(t *testing.T, a answer, fields ...string) {
		t.Helper()
		f := a.fields(t)
		if len(f) != len(fields) {
			t.Errorf("fields %v, want exactly %q", f, fields)
		}
		for _, k := range fields {
			if len(f[k]) != 1 || f[k][0] != msgNUL {
				t.Errorf("%s: %q, want [%q]", k, f[k], msgNUL)
			}
		}
	}

	t.Run("register", func(t *testing.T) {
		for _, field := range []string{"email", "first_name", "last_name", "phone_number", "password1"} {
			b := regBody("nul-"+field+"@example.com", "Nora", "Null", goodPassword)
			b[field] = b[field].(string) + "\x00"
			wantNUL(t, s.post("/api/auth/register/", "", b), field)
			if n := s.countByEmail("nul-" + field + "@example.com"); n != 0 {
				t.Errorf("%s: %d users stored after a refused registration", field, n)
			}
		}
		b := regBody("nul-all@example.com", "No\x00ra", "Nu\x00ll", goodPassword+"\x00")
		wantNUL(t, s.post("/api/auth/register/", "", b), "first_name", "last_name", "password1", "password2")
		if n := s.countByEmail("nul-all@example.com"); n != 0 {
			t.Errorf("%d users stored after a refused registration", n)
		}
	})

	t.Run("profile update", func(t *testing.T) {
		u := s.register("nora@example.com", "Nora", "Null")
		for _, field := range []string{"email", "first_name", "last_name", "phone_number"} {
			a := s.do(req{method: http.MethodPatch, path: "/api/auth/profile/update/", token: u.access,
				body: map[string]any{field: "x\x00y"}})
			wantNUL(t, a, field)
		}
		a := s.do(req{method: http.MethodPatch, path: "/api/auth/profile/update/", token: u.access,
			body: map[string]any{"first_name": "\x00", "last_name": "Ok"}})
		wantNUL(t, a, "first_name")
		m := s.get("/api/auth/profile/", u.access).Map(t)
		if m["email"] != "nora@example.com" || m["first_name"] != "Nora" || m["last_name"] != "Null" || m["phone_number"] != "+1 555-0100" {
			t.Fatalf("a refused update changed the user: %v", m)
		}
		// The tokens issued from then on carry the stored names.
		c, err := s.verifier.Verify(toSession(t, s.login("nora@example.com", goodPassword)).access)
		if err != nil || c.FirstName != "Nora" || c.LastName != "Null" {
			t.Fatalf("claims %+v, %v", c, err)
		}
	})

	t.Run("login", func(t *testing.T) {
		wantNUL(t, s.login("nora@example.com\x00", goodPassword+"\x00"), "email", "password")
	})

	t.Run("staff creation", func(t *testing.T) {
		admin := toSession(t, s.login(adminEmail, adminPassword))
		a := s.post("/api/auth/users/", admin.access, map[string]any{
			"email": "nul-staff@example.com", "first_name": "Ivy\x00", "last_name": "Lane", "phone_number": "555\x00",
			"password": goodPassword,
		})
		wantNUL(t, a, "first_name", "phone_number")
		if n := s.countByEmail("nul-staff@example.com"); n != 0 {
			t.Errorf("%d users stored after a refused creation", n)
		}
	})
}
