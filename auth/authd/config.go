// Package authd runs the auth service: its configuration from the
// environment and Run, which wires the store, the hasher, the token issuer,
// the rate limiter and the HTTP API, and serves until its context ends.
package authd

import (
	"time"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/auth/password"
	"github.com/acme/customer-platform/auth/ratelimit"
	"github.com/acme/customer-platform/internal/config"
)

// Config is the auth service's configuration.
type Config struct {
	HTTPAddr string `json:"http_addr"` // HTTP_ADDR, default :8001
	// PublicURL is PUBLIC_URL, the base URL clients reach the service on
	// (e.g. https://auth.example.com): links in answers are absolute on it;
	// unset, they are relative. Links never come from the request's Host.
	PublicURL   string        `json:"public_url"`
	MetricsAddr string        `json:"metrics_addr"` // METRICS_ADDR, default :9101
	MongoURI    config.Secret `json:"mongodb_uri"`  // MONGODB_URI (may hold credentials)
	DB          string        `json:"auth_db"`      // AUTH_DB, default auth
	RedisURL    config.Secret `json:"redis_url"`    // REDIS_URL, optional: rate limits in memory and no change feed without it
	// SigningKeys are JWT_SIGNING_KEY (tokens are signed with it) and
	// JWT_PREVIOUS_SIGNING_KEYS (still accepted during a rotation).
	SigningKeys     config.SigningKeys `json:"jwt_signing_keys"`
	Issuer          string             `json:"jwt_issuer"`
	Audience        string             `json:"jwt_audience"`
	AccessTTL       time.Duration      `json:"access_token_ttl"`
	RefreshTTL      time.Duration      `json:"refresh_token_ttl"`
	ServiceTokenTTL time.Duration      `json:"service_token_ttl"`
	// ServiceClients is AUTH_SERVICE_CLIENTS: "id:secret" pairs, comma-separated.
	ServiceClients config.Secret `json:"auth_service_clients"`
	// ServiceClientScopes is AUTH_SERVICE_CLIENT_SCOPES: each client's
	// scopes, "id=scope scope,id=scope" (auth.ParseClients); a client
	// without scopes gets none, every scope in development.
	ServiceClientScopes string          `json:"auth_service_client_scopes"`
	Argon2              password.Params `json:"argon2"`
	// HashConcurrency bounds concurrent password hashes (0: GOMAXPROCS).
	HashConcurrency int `json:"password_hash_concurrency"`
	// RateLimits is AUTH_RATE_LIMITS (format: ratelimit.ParseRules).
	RateLimits string `json:"auth_rate_limits"`
	// TrustedProxies are the addresses or CIDRs whose X-Forwarded-For is believed.
	TrustedProxies []string `json:"trusted_proxies"`
	// BootstrapAdminEmail is an email: left out of the logged configuration.
	BootstrapAdminEmail    string        `json:"-"`
	BootstrapAdminPassword config.Secret `json:"bootstrap_admin_password"`
	BlacklistSweep         time.Duration `json:"blacklist_sweep_interval"`
	LogLevel               string        `json:"log_level"`
	ShutdownTimeout        time.Duration `json:"shutdown_timeout"`
	Environment            string        `json:"deployment_environment"`
}

// LoadConfig reads the configuration through lookup. JWT_SIGNING_KEY has no
// default, and outside development (DEPLOYMENT_ENVIRONMENT) it must be at
// least 32 bytes; everything else defaults to what local development needs.
func LoadConfig(lookup config.Lookup) (Config, error) {
	r := config.New(lookup)
	p := password.OWASP()
	env := r.String("DEPLOYMENT_ENVIRONMENT", config.Development)
	c := Config{
		HTTPAddr:               r.String("HTTP_ADDR", ":8001"),
		PublicURL:              r.URL("PUBLIC_URL", ""),
		MetricsAddr:            r.String("METRICS_ADDR", ":9101"),
		MongoURI:               r.Secret("MONGODB_URI", "mongodb://127.0.0.1:27017/"),
		DB:                     r.String("AUTH_DB", "auth"),
		RedisURL:               r.Secret("REDIS_URL", ""),
		SigningKeys:            r.SigningKeys("JWT_SIGNING_KEY", "JWT_PREVIOUS_SIGNING_KEYS", env),
		Issuer:                 r.String("JWT_ISSUER", ""),
		Audience:               r.String("JWT_AUDIENCE", ""),
		AccessTTL:              r.Duration("ACCESS_TOKEN_TTL", 5*time.Minute),
		RefreshTTL:             r.Duration("REFRESH_TOKEN_TTL", 24*time.Hour),
		ServiceTokenTTL:        r.Duration("SERVICE_TOKEN_TTL", 5*time.Minute),
		ServiceClients:         r.Secret("AUTH_SERVICE_CLIENTS", ""),
		ServiceClientScopes:    r.String("AUTH_SERVICE_CLIENT_SCOPES", ""),
		HashConcurrency:        r.Int("PASSWORD_HASH_CONCURRENCY", 0),
		RateLimits:             r.String("AUTH_RATE_LIMITS", ""),
		TrustedProxies:         r.List("TRUSTED_PROXIES"),
		BootstrapAdminEmail:    r.String("AUTH_BOOTSTRAP_ADMIN_EMAIL", ""),
		BootstrapAdminPassword: r.Secret("AUTH_BOOTSTRAP_ADMIN_PASSWORD", ""),
		BlacklistSweep:         r.Duration("BLACKLIST_SWEEP_INTERVAL", 10*time.Minute),
		LogLevel:               r.String("LOG_LEVEL", "info"),
		ShutdownTimeout:        r.Duration("SHUTDOWN_TIMEOUT", 15*time.Second),
		Environment:            env,
	}
	mem := r.Int("ARGON2_MEMORY_KIB", int(p.MemoryKiB))
	iter := r.Int("ARGON2_ITERATIONS", int(p.Iterations))
	par := r.Int("ARGON2_PARALLELISM", int(p.Parallelism))
	r.Check(mem > 0 && mem <= 1<<20, "ARGON2_MEMORY_KIB", "want 1..1048576")
	r.Check(iter > 0 && iter <= 64, "ARGON2_ITERATIONS", "want 1..64")
	r.Check(par > 0 && par <= 255, "ARGON2_PARALLELISM", "want 1..255")
	if mem > 0 && mem <= 1<<20 && iter > 0 && iter <= 64 && par > 0 && par <= 255 {
		c.Argon2 = password.Params{MemoryKiB: uint32(mem), Iterations: uint32(iter), Parallelism: uint8(par)}
		if err := c.Argon2.Validate(); err != nil {
			r.Check(false, "ARGON2_MEMORY_KIB", err.Error())
		}
	}
	r.Check(c.HashConcurrency >= 0, "PASSWORD_HASH_CONCURRENCY", "want 0 (GOMAXPROCS) or more")
	r.Check(c.AccessTTL > 0, "ACCESS_TOKEN_TTL", "must be positive")
	r.Check(c.RefreshTTL > 0, "REFRESH_TOKEN_TTL", "must be positive")
	r.Check(c.ServiceTokenTTL > 0, "SERVICE_TOKEN_TTL", "must be positive")
	r.Check(c.BlacklistSweep > 0, "BLACKLIST_SWEEP_INTERVAL", "must be positive")
	if _, err := ratelimit.ParseRules(c.RateLimits); err != nil {
		r.Check(false, "AUTH_RATE_LIMITS", err.Error())
	}
	if _, err := auth.ParseClients(c.ServiceClients.Reveal(), ""); err != nil {
		r.Check(false, "AUTH_SERVICE_CLIENTS", err.Error())
	} else if _, err := auth.ParseClients(c.ServiceClients.Reveal(), c.ServiceClientScopes); err != nil {
		r.Check(false, "AUTH_SERVICE_CLIENT_SCOPES", err.Error())
	}
	r.Check((c.BootstrapAdminEmail == "") == (c.BootstrapAdminPassword == ""), "AUTH_BOOTSTRAP_ADMIN_EMAIL",
		"set both AUTH_BOOTSTRAP_ADMIN_EMAIL and AUTH_BOOTSTRAP_ADMIN_PASSWORD, or neither")
	if err := r.Err(); err != nil {
		return Config{}, err
	}
	return c, nil
}
