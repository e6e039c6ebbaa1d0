package authd_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestRefreshReuseRevokesTheFamily (RFC 9700 §4.14): the owner refreshes
// R1 and gets R2; a thief replaying R1 is refused, and the replay revokes
// the whole family: R2 is refused too, while another session of the same
// user (another family) keeps working. A token without a family claim
// (simplejwt's shape) is rotated as before.
func TestRefreshReuseRevokesTheFamily(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	u, other, r2 := rotatedSession(t, s, "reuse@example.com")
	wantDetail(t, s.refresh(u.refresh), http.StatusUnauthorized, "token_not_valid", "")
	familyRevoked(t, s, r2, other)

	// simplejwt's shape, no family: rotated once, a replay refused, and
	// the token it was rotated to (which starts a family) works.
	now := time.Now()
	plain, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"token_type": "refresh", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "jti": "0123456789abcdef0123456789abcdef", "user_id": u.id,
	}).SignedString([]byte(systest.SigningKey))
	if err != nil {
		t.Fatal(err)
	}
	a := s.refresh(plain)
	if a.Status != http.StatusOK {
		t.Fatalf("simplejwt-shaped refresh: %d %s", a.Status, a.Body)
	}
	next, _ := a.Map(t)["refresh"].(string)
	wantDetail(t, s.refresh(plain), http.StatusUnauthorized, "token_not_valid", "Token is blacklisted")
	if a := s.refresh(next); a.Status != http.StatusOK || family(t, next) == "" {
		t.Fatalf("the token rotated from a simplejwt-shaped one: %d %s", a.Status, a.Body)
	}
}

// TestLogoutRevokesTheFamily: logging out ends the session, not only the
// token presented: the owner refreshes R1 to R2 and logs out with R1 (the
// token their client kept), and R2 is refused; another session of the same
// user (another family) keeps working.
func TestLogoutRevokesTheFamily(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	u, other, r2 := rotatedSession(t, s, "logout-family@example.com")
	if a := s.post("/api/auth/logout/", u.access, map[string]any{"refresh": u.refresh}); a.Status != http.StatusResetContent {
		t.Fatalf("logout with R1: %d %s", a.Status, a.Body)
	}
	familyRevoked(t, s, r2, other)
}

// rotatedSession registers a user (session u, whose refresh token is R1),
// opens another session of theirs, and refreshes R1 to R2: R1 and R2 are
// one family, the other session another.
func rotatedSession(t *testing.T, s *server, email string) (u, other session, r2 string) {
	t.Helper()
	u = s.register(email, "Ro", "Tated")
	other = toSession(t, s.login(u.email, goodPassword))
	a := s.refresh(u.refresh)
	if a.Status != http.StatusOK {
		t.Fatalf("refresh R1: %d %s", a.Status, a.Body)
	}
	r2, _ = a.Map(t)["refresh"].(string)
	if r2 == "" || family(t, r2) == "" || family(t, r2) != family(t, u.refresh) || family(t, other.refresh) == family(t, u.refresh) {
		t.Fatalf("families: R1 %q R2 %q other %q", family(t, u.refresh), family(t, r2), family(t, other.refresh))
	}
	return u, other, r2
}

// familyRevoked checks that R2 of a revoked family is refused while the
// user's other session still refreshes.
func familyRevoked(t *testing.T, s *server, r2 string, other session) {
	t.Helper()
	wantDetail(t, s.refresh(r2), http.StatusUnauthorized, "token_not_valid", "")
	if a := s.refresh(other.refresh); a.Status != http.StatusOK {
		t.Fatalf("another session of the user: %d %s", a.Status, a.Body)
	}
}

// family is a refresh token's family claim ("" without one).
func family(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Family string `json:"fam"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.Family
}
