package authd_test

import (
	"testing"

	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestTokenAnswersAreNotStored: every answer that carries tokens (register,
// login, token/refresh, token/service) says Cache-Control: no-store and
// Pragma: no-cache (RFC 6749 §5.1), errors included; an answer without
// tokens does not need to.
func TestTokenAnswersAreNotStored(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	reg := s.post("/api/auth/register/", "", regBody("nostore@example.com", "No", "Store", goodPassword))
	u := toSession(t, reg)
	answers := map[string]answer{
		"register":         reg,
		"login":            s.login(u.email, goodPassword),
		"login refused":    s.login(u.email, "wrong-password-1"),
		"refresh":          s.refresh(u.refresh),
		"service":          s.post("/api/auth/token/service/", "", map[string]any{"client_id": systest.BFFClientID, "client_secret": systest.BFFClientSecret}),
		"register invalid": s.post("/api/auth/register/", "", map[string]any{"email": "x"}),
	}
	for name, a := range answers {
		if a.Status >= 500 {
			t.Fatalf("%s: %d %s", name, a.Status, a.Body)
		}
		if got := a.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s (%d): Cache-Control %q, want no-store", name, a.Status, got)
		}
		if got := a.Header.Get("Pragma"); got != "no-cache" {
			t.Errorf("%s (%d): Pragma %q, want no-cache", name, a.Status, got)
		}
	}
}
