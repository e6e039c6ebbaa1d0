package bffd_test

import (
	"net/http"
	"testing"
)

// The auth service limits registrations per client address. Behind the BFF
// every user must keep their own budget: the BFF forwards the end user's
// address, and the auth service believes it because the BFF is one of its
// trusted proxies. A client cannot pick its address by sending the header
// itself unless the BFF trusts the client's peer.
func TestRegistrationRateLimitIsPerEndUser(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{authEnv: map[string]string{
		"AUTH_RATE_LIMITS": "register=1/1m",
		"TRUSTED_PROXIES":  "127.0.0.1/32",
	}})
	// This BFF believes X-Forwarded-For from the test client (as it would
	// from its load balancer), so the test can play several end users.
	b := s.startBFF(map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}, nil)

	from := func(addr string) map[string]string { return map[string]string{"X-Forwarded-For": addr} }
	registered(t, b.register(registration("first@example.com"), from("198.51.100.1")), "first@example.com")
	registered(t, b.register(registration("second@example.com"), from("198.51.100.2")), "second@example.com")

	a := b.register(registration("third@example.com"), from("198.51.100.1"))
	if a.Status != http.StatusTooManyRequests || a.Header.Get("Retry-After") == "" {
		t.Fatalf("second registration from one address: %s (Retry-After %q), want 429 with Retry-After", a, a.Header.Get("Retry-After"))
	}
	if n := len(s.users(t, "third@example.com")); n != 0 {
		t.Fatalf("a throttled registration created %d users", n)
	}

	// A BFF that trusts no proxy ignores a client's own X-Forwarded-For: all
	// its clients here share the loopback address, so the budget is spent.
	plain := s.startBFF(nil, nil)
	registered(t, plain.register(registration("fourth@example.com"), from("198.51.100.3")), "fourth@example.com")
	if a := plain.register(registration("fifth@example.com"), from("198.51.100.4")); a.Status != http.StatusTooManyRequests {
		t.Fatalf("a spoofed X-Forwarded-For was believed: %s", a)
	}
}
