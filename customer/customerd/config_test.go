package customerd_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/customer-platform/customer/customerd"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestPublicURL: PUBLIC_URL is the base of the pagination links, unset by
// default (relative links), and must be an absolute URL.
func TestPublicURL(t *testing.T) {
	t.Parallel()
	key := strings.Repeat("k", 32)
	cfg, err := customerd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": key}))
	testenv.Must(t, err, "defaults")
	if cfg.PublicURL != "" {
		t.Fatalf("PUBLIC_URL defaults to %q, want empty (relative links)", cfg.PublicURL)
	}
	cfg, err = customerd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": key, "PUBLIC_URL": "https://customers.example.com/"}))
	testenv.Must(t, err, "set")
	if cfg.PublicURL != "https://customers.example.com" {
		t.Fatalf("PUBLIC_URL read as %q", cfg.PublicURL)
	}
	if _, err := customerd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": key, "PUBLIC_URL": "customers.example.com"})); err == nil || !strings.Contains(err.Error(), "PUBLIC_URL") {
		t.Fatalf("a PUBLIC_URL without a scheme: %v", err)
	}
}

// TestWeakSigningKeyRefused: outside development the service does not start
// with an HS256 key under 256 bits (RFC 7518 §3.2), and says which variable
// is wrong; in development a short key still works (make run, the tests).
func TestWeakSigningKeyRefused(t *testing.T) {
	t.Parallel()
	weak := map[string]string{"JWT_SIGNING_KEY": "secret", "DEPLOYMENT_ENVIRONMENT": "production"}
	if _, err := customerd.LoadConfig(config.FromMap(weak)); err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY: too short") {
		t.Fatalf("a 6-byte signing key in production: %v", err)
	}
	// As the binary runs it: the configuration is refused before anything starts.
	run := daemon.Runner(customerd.LoadConfig, customerd.Run)
	if err := run(t.Context(), config.FromMap(weak), daemon.Options{Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY") {
		t.Fatalf("customerd ran with a 6-byte signing key in production: %v", err)
	}
	weak["JWT_SIGNING_KEY"] = strings.Repeat("k", config.MinSigningKey)
	if _, err := customerd.LoadConfig(config.FromMap(weak)); err != nil {
		t.Fatalf("a 256-bit signing key in production: %v", err)
	}
	if _, err := customerd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "secret"})); err != nil {
		t.Fatalf("a short key in development: %v", err)
	}
}

// TestKeyRotation: during a key rotation the service accepts tokens signed
// with JWT_SIGNING_KEY and with any of JWT_PREVIOUS_SIGNING_KEYS, and no
// other; a previous key is held to the same 32-byte rule.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	newKey := strings.Repeat("n", config.MinSigningKey)
	_, svc := start(t, systest.Options{Env: map[string]string{"JWT_SIGNING_KEY": newKey, "JWT_PREVIOUS_SIGNING_KEYS": signingKey}})
	url := svc.URL + "/api/v1/customers/profile/"
	// token signs with the old key (now a previous one): still accepted.
	if code, body, _ := call(t, "GET", url, token(t, contract.NewID(), "customer"), nil); code != 404 {
		t.Fatalf("a token of the previous key: %d %v, want 404 (accepted, no profile)", code, body)
	}
	signed := func(key string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"token_type": "access", "exp": time.Now().Add(time.Minute).Unix(), "jti": contract.NewID(),
			"user_id": contract.NewID(), "user_role": "customer",
		}).SignedString([]byte(key))
		testenv.Must(t, err, "sign")
		return s
	}
	if code, body, _ := call(t, "GET", url, signed(newKey), nil); code != 404 {
		t.Fatalf("a token of the current key: %d %v, want 404", code, body)
	}
	if code, _, _ := call(t, "GET", url, signed(strings.Repeat("x", config.MinSigningKey)), nil); code != 401 {
		t.Fatalf("a token of a key not in the list: %d, want 401", code)
	}
	weak := map[string]string{"JWT_SIGNING_KEY": newKey, "JWT_PREVIOUS_SIGNING_KEYS": "short", "DEPLOYMENT_ENVIRONMENT": "production"}
	if _, err := customerd.LoadConfig(config.FromMap(weak)); err == nil || !strings.Contains(err.Error(), "JWT_PREVIOUS_SIGNING_KEYS") {
		t.Fatalf("a 5-byte previous key in production: %v", err)
	}
}
