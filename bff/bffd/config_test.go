package bffd

import (
	"slices"
	"strings"
	"testing"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/config"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	if _, err := LoadConfig(config.FromMap(nil)); err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY") {
		t.Fatalf("without a signing key: %v", err)
	}
	cfg, err := LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k", "BFF_SERVICE_CLIENT_SECRET": "s3cr3t-value"}))
	if err == nil || !strings.Contains(err.Error(), "BFF_SERVICE_CLIENT_ID") {
		t.Fatalf("secret without id: %v", err)
	}
	cfg, err = LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k"}))
	if err != nil || cfg.HTTPAddr != ":8000" || cfg.MetricsAddr != ":9100" || cfg.DB != "bff" ||
		cfg.AuthURL != "http://127.0.0.1:8001" || cfg.CustomerURL != "http://127.0.0.1:8002" || cfg.CacheTTL.String() != "1m0s" ||
		cfg.RedisTimeout.String() != "50ms" || cfg.ReconcileInterval.String() != "5s" || cfg.hasServiceClient() {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	if _, err := LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k", "CUSTOMER_TIMEOUT": "soon"})); err == nil {
		t.Fatal("a bad duration was accepted")
	}
	weak := map[string]string{"JWT_SIGNING_KEY": "secret", "DEPLOYMENT_ENVIRONMENT": "production"}
	if _, err := LoadConfig(config.FromMap(weak)); err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY: too short") {
		t.Fatalf("a 6-byte signing key in production: %v", err)
	}
	weak["JWT_SIGNING_KEY"] = strings.Repeat("k", config.MinSigningKey)
	if _, err := LoadConfig(config.FromMap(weak)); err != nil {
		t.Fatalf("a 256-bit signing key in production: %v", err)
	}
}

func TestLoadConfigCORSAllowedOrigins(t *testing.T) {
	t.Parallel()
	env := map[string]string{"JWT_SIGNING_KEY": "k"}
	c, err := LoadConfig(config.FromMap(env))
	if err != nil || len(c.CORSAllowedOrigins) != 0 {
		t.Fatalf("default: %v %v, want no origin", c.CORSAllowedOrigins, err)
	}
	env["CORS_ALLOWED_ORIGINS"] = "https://App.example.com/, http://localhost:3000"
	c, err = LoadConfig(config.FromMap(env))
	if err != nil || !slices.Equal(c.CORSAllowedOrigins, []string{"https://app.example.com", "http://localhost:3000"}) {
		t.Fatalf("two origins: %q %v", c.CORSAllowedOrigins, err)
	}
	env["CORS_ALLOWED_ORIGINS"] = "https://app.example.com,*"
	if _, err = LoadConfig(config.FromMap(env)); err == nil || !strings.Contains(err.Error(), "CORS_ALLOWED_ORIGINS") {
		t.Fatalf("a wildcard: err = %v, want one naming CORS_ALLOWED_ORIGINS", err)
	}
}

// TestLoadConfigPublishDocs: /docs (with the internal services' documents)
// is published by default only in development; BFF_PUBLISH_DOCS decides.
func TestLoadConfigPublishDocs(t *testing.T) {
	t.Parallel()
	key := strings.Repeat("k", config.MinSigningKey)
	for _, tc := range []struct {
		env, set string
		want     bool
	}{
		{env: "development", want: true},
		{env: "production", want: false},
		{env: "staging", want: false},
		{env: "production", set: "true", want: true},
		{env: "development", set: "false", want: false},
	} {
		m := map[string]string{"JWT_SIGNING_KEY": key, "DEPLOYMENT_ENVIRONMENT": tc.env}
		if tc.set != "" {
			m["BFF_PUBLISH_DOCS"] = tc.set
		}
		cfg, err := LoadConfig(config.FromMap(m))
		if err != nil || cfg.PublishDocs != tc.want {
			t.Errorf("%s, BFF_PUBLISH_DOCS=%q: %v %v, want %v", tc.env, tc.set, cfg.PublishDocs, err, tc.want)
		}
	}
}

func TestLoadConfigPreviousSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k", "BFF_PREVIOUS_SECRETS": "old-secret-0123456789, older-secret-0123456789"}))
	if err != nil || len(cfg.PreviousSecrets) != 2 || cfg.PreviousSecrets[1].Reveal() != "older-secret-0123456789" {
		t.Fatalf("previous secrets: %v %v", cfg.PreviousSecrets, err)
	}
	if _, err := LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k", "BFF_PREVIOUS_SECRETS": "short"})); err == nil || !strings.Contains(err.Error(), "BFF_PREVIOUS_SECRETS") {
		t.Fatalf("a short previous secret: %v", err)
	}
}

// TestServerSecretsFollowAKeyRotation: without BFF_IDEMPOTENCY_SECRET the
// server secret is derived from the current signing key and the previous
// signing keys' derivations are previous secrets, so a rotation of
// JWT_SIGNING_KEY alone still opens what the old key's secret sealed;
// with it, BFF_PREVIOUS_SECRETS are the previous ones.
func TestServerSecretsFollowAKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := strings.Repeat("o", 32), strings.Repeat("n", 32)
	derive := func(k string) string {
		s, err := bff.DeriveSecret([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		return string(s)
	}
	cfg, err := LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": newKey, "JWT_PREVIOUS_SIGNING_KEYS": oldKey}))
	if err != nil {
		t.Fatal(err)
	}
	secret, previous, err := serverSecrets(cfg)
	if err != nil || string(secret) != derive(newKey) || len(previous) != 1 || string(previous[0]) != derive(oldKey) {
		t.Fatalf("derived: secret %t, previous %d (%v)", string(secret) == derive(newKey), len(previous), err)
	}
	cfg, err = LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": newKey, "JWT_PREVIOUS_SIGNING_KEYS": oldKey,
		"BFF_IDEMPOTENCY_SECRET": "new-server-secret-0123456789", "BFF_PREVIOUS_SECRETS": "old-server-secret-0123456789"}))
	if err != nil {
		t.Fatal(err)
	}
	secret, previous, err = serverSecrets(cfg)
	if err != nil || string(secret) != "new-server-secret-0123456789" || len(previous) != 1 || string(previous[0]) != "old-server-secret-0123456789" {
		t.Fatalf("set: %q %q %v", secret, previous, err)
	}
}
