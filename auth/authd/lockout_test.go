package authd_test

import (
	"net/http"
	"testing"
)

// TestLockoutIsPerAddress: an attacker at address A failing many times for
// an email locks out A only (per (email, address)), while the owner at
// address B logs in; A stays locked even with the right password.
func TestLockoutIsPerAddress(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{"AUTH_RATE_LIMITS": "", "TRUSTED_PROXIES": "127.0.0.1,::1"})
	u := s.register("owner@example.com", "Ow", "Ner")
	from := func(addr, pw string) answer {
		return s.do(req{method: http.MethodPost, path: "/api/auth/login/", body: map[string]any{"email": u.email, "password": pw},
			header: map[string]string{"X-Forwarded-For": addr}})
	}
	const attacker, owner = "203.0.113.7", "198.51.100.20"
	locked := false
	for range 12 {
		a := from(attacker, "Wrong-password-1")
		if a.Status == http.StatusTooManyRequests {
			locked = true
			continue
		}
		wantDetail(t, a, http.StatusUnauthorized, "no_active_account", "")
	}
	if !locked {
		t.Fatal("12 failures from one address never throttled it")
	}
	wantThrottled(t, from(attacker, goodPassword))
	if a := from(owner, goodPassword); a.Status != http.StatusOK {
		t.Fatalf("the owner at another address: %d %s", a.Status, a.Body)
	}
}
