package probe

import (
	"net/http"
	"testing"
)

// probeAPI2RefreshTokenReuse: a rotated refresh token replayed (the thief
// and the owner both hold it) revokes its whole family: the token the
// first refresh issued stops working too (RFC 9700 §4.14).
func probeAPI2RefreshTokenReuse(t *testing.T, s *suite) {
	c := s.customerAccount(t, "family")
	sess := s.loginAt(t, s.auth+"/api/auth/login/", c.email, c.password)
	first := s.call(t, http.MethodPost, s.auth+"/api/auth/token/refresh/", map[string]string{"refresh": sess.refresh}, from(sess.addr))
	if first.Status != http.StatusOK {
		t.Fatalf("refresh: %s", first)
	}
	var v struct{ Refresh string }
	first.JSON(t, &v)
	if v.Refresh == "" {
		t.Fatalf("the refresh rotated no token: %s", first)
	}
	a := s.call(t, http.MethodPost, s.auth+"/api/auth/token/refresh/", map[string]string{"refresh": sess.refresh}, from(sess.addr))
	wantError(t, "the rotated refresh token replayed", a, http.StatusUnauthorized, "token_not_valid")
	a = s.call(t, http.MethodPost, s.auth+"/api/auth/token/refresh/", map[string]string{"refresh": v.Refresh}, from(sess.addr))
	wantError(t, "the family's newest refresh token after a replay", a, http.StatusUnauthorized, "token_not_valid")
	// Another session of the same user is another family: untouched.
	other := s.loginAt(t, s.auth+"/api/auth/login/", c.email, c.password)
	if a := s.call(t, http.MethodPost, s.auth+"/api/auth/token/refresh/", map[string]string{"refresh": other.refresh}, from(other.addr)); a.Status != http.StatusOK {
		t.Errorf("another session's refresh after the family's revocation: %s", a)
	}
}
