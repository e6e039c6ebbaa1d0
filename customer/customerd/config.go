// Package customerd runs the customer service: its configuration, and Run,
// which wires the store, the auth client, the change publisher and the HTTP
// API together and serves until its context is cancelled.
package customerd

import (
	"fmt"
	"strings"
	"time"

	"github.com/acme/customer-platform/internal/config"
)

// Config is the customer service's configuration.
type Config struct {
	HTTPAddr    string        `json:"http_addr"`    // HTTP_ADDR, the API listener
	MetricsAddr string        `json:"metrics_addr"` // METRICS_ADDR, the Prometheus /metrics listener
	MongoURI    config.Secret `json:"mongodb_uri"`  // MONGODB_URI (may carry credentials)
	Database    string        `json:"customer_db"`  // CUSTOMER_DB
	// SigningKeys are JWT_SIGNING_KEY (required) and, during a key
	// rotation, JWT_PREVIOUS_SIGNING_KEYS, still accepted (docs/security.md).
	SigningKeys config.SigningKeys `json:"jwt_signing_keys"`
	JWTIssuer   string             `json:"jwt_issuer"`   // JWT_ISSUER, checked when set
	JWTAudience string             `json:"jwt_audience"` // JWT_AUDIENCE, checked when set
	AuthURL     string             `json:"auth_url"`     // AUTH_URL, the auth service
	AuthTimeout time.Duration      `json:"auth_timeout"` // AUTH_TIMEOUT, bounds each call to the auth service
	RedisURL    config.Secret      `json:"redis_url"`    // REDIS_URL, optional: change notifications
	// ServiceClientID and ServiceClientSecret are CUSTOMER_SERVICE_CLIENT_ID
	// and CUSTOMER_SERVICE_CLIENT_SECRET, the customer service's account at
	// the auth service (AUTH_SERVICE_CLIENTS): the erasure cascade asks with
	// it whether a deleted user is really gone. Without it (or without
	// Redis) the cascade does not run.
	ServiceClientID     string        `json:"service_client_id"`
	ServiceClientSecret config.Secret `json:"service_client_secret"`
	// PublicURL (PUBLIC_URL) is the service's public base URL, such as
	// https://customers.example.com: the pagination links (next, previous)
	// are absolute under it when set and relative (path and query) when
	// not; they are never built from a request's Host.
	PublicURL string `json:"public_url"`
	// ServiceTokensWithoutScope (SERVICE_TOKENS_WITHOUT_SCOPE) is what a
	// service token without a scope claim may do: "deny" (nothing a scope
	// guards) or "allow" (every customer scope, as before scopes existed;
	// the company's Django auth service issues no scopes). Default: allow
	// in development, deny elsewhere.
	ServiceTokensWithoutScope string        `json:"service_tokens_without_scope"`
	LogLevel                  string        `json:"log_level"`              // LOG_LEVEL
	ShutdownTimeout           time.Duration `json:"shutdown_timeout"`       // SHUTDOWN_TIMEOUT, how long in-flight requests may drain
	Environment               string        `json:"deployment_environment"` // DEPLOYMENT_ENVIRONMENT
}

// LoadConfig reads the configuration through lookup (nil: the process
// environment). Every default works for local development except the JWT
// signing key, which must be given: outside development (any
// DEPLOYMENT_ENVIRONMENT but "development") a key shorter than 32 bytes is
// refused (config.SigningKey).
func LoadConfig(lookup config.Lookup) (Config, error) {
	r := config.New(lookup)
	env := r.String("DEPLOYMENT_ENVIRONMENT", config.Development)
	cfg := Config{
		HTTPAddr:                  r.String("HTTP_ADDR", ":8002"),
		MetricsAddr:               r.String("METRICS_ADDR", ":9102"),
		MongoURI:                  r.Secret("MONGODB_URI", "mongodb://127.0.0.1:27017/"),
		Database:                  r.String("CUSTOMER_DB", "customers"),
		SigningKeys:               r.SigningKeys("JWT_SIGNING_KEY", "JWT_PREVIOUS_SIGNING_KEYS", env),
		JWTIssuer:                 r.String("JWT_ISSUER", ""),
		JWTAudience:               r.String("JWT_AUDIENCE", ""),
		AuthURL:                   r.URL("AUTH_URL", "http://127.0.0.1:8001"),
		AuthTimeout:               r.Duration("AUTH_TIMEOUT", time.Second),
		RedisURL:                  r.Secret("REDIS_URL", ""),
		ServiceClientID:           r.String("CUSTOMER_SERVICE_CLIENT_ID", ""),
		ServiceClientSecret:       r.Secret("CUSTOMER_SERVICE_CLIENT_SECRET", ""),
		PublicURL:                 r.URL("PUBLIC_URL", ""),
		ServiceTokensWithoutScope: r.String("SERVICE_TOKENS_WITHOUT_SCOPE", unscopedDefault(env)),
		LogLevel:                  r.String("LOG_LEVEL", "info"),
		ShutdownTimeout:           r.Duration("SHUTDOWN_TIMEOUT", 15*time.Second),
		Environment:               env,
	}
	r.Check(cfg.ServiceTokensWithoutScope == UnscopedDeny || cfg.ServiceTokensWithoutScope == UnscopedAllow, "SERVICE_TOKENS_WITHOUT_SCOPE",
		fmt.Sprintf("want %s or %s, not %q", UnscopedDeny, UnscopedAllow, cfg.ServiceTokensWithoutScope))
	r.Check(cfg.AuthTimeout > 0, "AUTH_TIMEOUT", "must be positive")
	r.Check(cfg.Database != "" && !strings.ContainsAny(cfg.Database, `/\. "$`), "CUSTOMER_DB", "must be a plain database name")
	r.Check((cfg.ServiceClientID == "") == (cfg.ServiceClientSecret == ""), "CUSTOMER_SERVICE_CLIENT_ID",
		"CUSTOMER_SERVICE_CLIENT_ID and CUSTOMER_SERVICE_CLIENT_SECRET go together")
	if err := r.Err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// The values of SERVICE_TOKENS_WITHOUT_SCOPE.
const (
	UnscopedDeny  = "deny"
	UnscopedAllow = "allow"
)

// unscopedDefault is SERVICE_TOKENS_WITHOUT_SCOPE's default: allow in
// development (a development auth service may predate scopes), deny
// everywhere else (least privilege: a token that names no scope gets none).
func unscopedDefault(environment string) string {
	if environment == config.Development {
		return UnscopedAllow
	}
	return UnscopedDeny
}
