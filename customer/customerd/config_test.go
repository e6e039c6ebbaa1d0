package customerd_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/acme/customer-platform/customer/customerd"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/testenv"
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
