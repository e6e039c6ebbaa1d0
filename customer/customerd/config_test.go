package customerd_test

import (
	"strings"
	"testing"

	"github.com/acme/customer-platform/customer/customerd"
	"github.com/acme/customer-platform/internal/config"
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
