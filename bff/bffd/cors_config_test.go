package bffd

import (
	"slices"
	"strings"
	"testing"

	"github.com/acme/customer-platform/internal/config"
)

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
