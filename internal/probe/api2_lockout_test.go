package probe

import (
	"net/http"
	"testing"
)

// probeAPI2NoLockoutLever: an attacker's wrong passwords for a victim's
// email, from the attacker's address, throttle the attacker, not the
// victim: the victim logs in from their own address.
func probeAPI2NoLockoutLever(t *testing.T, s *suite) {
	victim := s.customerAccount(t, "lockout-victim")
	attacker := s.newAddr()
	throttled := false
	for i := range 30 {
		a := s.call(t, http.MethodPost, s.auth+"/api/auth/login/", map[string]string{"email": victim.email, "password": "Wrong-Guess-" + randomHex()}, from(attacker))
		if a.Status == http.StatusTooManyRequests {
			throttled = true
			break
		}
		if a.Status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %s", i, a)
		}
	}
	if !throttled {
		t.Fatal("the attacker's guesses were not throttled")
	}
	for _, endpoint := range []string{s.auth + "/api/auth/login/", s.bff + "/api/bff/login/"} {
		a := s.call(t, http.MethodPost, endpoint, map[string]string{"email": victim.email, "password": victim.password}, from(victim.addr))
		if a.Status != http.StatusOK {
			t.Errorf("the victim, from their own address, at %s after an attacker's guesses: %s", endpoint, a)
		}
	}
}
