// Package bffd runs the BFF: its configuration from the environment and
// Run, which wires the clients of the auth and customer services behind
// their circuit breakers, the saga store, the merged-view cache and its
// invalidation subscriber, the reconciler, and the HTTP API.
package bffd

import (
	"context"
	"fmt"
	"time"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/httpapi"
	"github.com/acme/customer-platform/internal/config"
)

// Config is the BFF's configuration.
type Config struct {
	HTTPAddr    string        `json:"http_addr"`
	MetricsAddr string        `json:"metrics_addr"`
	AuthURL     string        `json:"auth_url"`
	CustomerURL string        `json:"customer_url"`
	RedisURL    config.Secret `json:"redis_url"`
	// TrustedProxies are the addresses or CIDRs (a load balancer, an
	// ingress) whose X-Forwarded-For is believed for the client address.
	TrustedProxies []string      `json:"trusted_proxies"`
	MongoURI       config.Secret `json:"mongodb_uri"` // may carry credentials
	DB             string        `json:"bff_db"`
	// SigningKeys are JWT_SIGNING_KEY and, during a key rotation,
	// JWT_PREVIOUS_SIGNING_KEYS, still accepted (docs/security.md).
	SigningKeys         config.SigningKeys `json:"jwt_signing_keys"`
	JWTIssuer           string             `json:"jwt_issuer"`
	JWTAudience         string             `json:"jwt_audience"`
	ServiceClientID     string             `json:"bff_service_client_id"`
	ServiceClientSecret config.Secret      `json:"bff_service_client_secret"`
	// IdempotencySecret keys the stored answers, the saga seals and the
	// email hashes; by default derived from the current signing key
	// (bff.DeriveSecret), and then the previous signing keys' derivations
	// are previous secrets.
	IdempotencySecret config.Secret `json:"bff_idempotency_secret"`
	// PreviousSecrets are the server secrets of a rotation, newest first
	// (BFF_PREVIOUS_SECRETS, comma-separated): what was sealed or checked
	// under one of them is still opened and recognised.
	PreviousSecrets []config.Secret `json:"bff_previous_secrets"`
	CacheTTL        time.Duration   `json:"cache_ttl"`
	AuthTimeout     time.Duration   `json:"auth_timeout"`
	CustomerTimeout time.Duration   `json:"customer_timeout"`
	RedisTimeout    time.Duration   `json:"redis_timeout"`
	// StoreTimeout bounds every call to the BFF's MongoDB (sagas, leases,
	// idempotency keys).
	StoreTimeout time.Duration `json:"store_timeout"`
	// StoreSlots bounds the store calls in flight (STORE_SLOTS);
	// StoreWait bounds a call's wait for a slot (STORE_WAIT), after which
	// it fails unsent (503). StoreTimeout starts once a call holds a slot.
	StoreSlots        int           `json:"store_slots"`
	StoreWait         time.Duration `json:"store_wait"`
	ReconcileInterval time.Duration `json:"reconcile_interval"`
	// SagaLeaseTTL bounds how long a crashed replica's lease blocks its
	// saga; 0: derived from the timeouts (bff.DefaultLeaseTTL).
	SagaLeaseTTL time.Duration `json:"saga_lease_ttl"`
	// SagaRetention is how long finished sagas (completed, compensated,
	// failed) are kept before the reconciler deletes them; 0 keeps them.
	SagaRetention   time.Duration `json:"saga_retention"`
	LogLevel        string        `json:"log_level"`
	ShutdownTimeout time.Duration `json:"shutdown_timeout"`
	Environment     string        `json:"deployment_environment"`
	// BenchFloor serves the benchmark's floor endpoint (cmd/bench):
	// BFF_BENCH_FLOOR, off by default and never on in a deployment.
	BenchFloor bool `json:"bff_bench_floor"`
	// PublishDocs serves /docs with the internal auth and customer API
	// documents: BFF_PUBLISH_DOCS, on by default only in development.
	PublishDocs bool `json:"bff_publish_docs"`
	// CORSAllowedOrigins are the origins (scheme://host[:port]) of
	// separately hosted frontends allowed to call the API from a browser;
	// empty: none (the BFF's own page is same-origin).
	CORSAllowedOrigins []string `json:"cors_allowed_origins"`

	// afterStep is the saga runner's test hook (bff.Options.AfterStep).
	afterStep func(ctx context.Context, step string) error
}

// LoadConfig reads the configuration through lookup (nil: the process
// environment). Every default works for local development except the JWT
// signing key, which must be given.
func LoadConfig(lookup config.Lookup) (Config, error) {
	r := config.New(lookup)
	env := r.String("DEPLOYMENT_ENVIRONMENT", config.Development)
	c := Config{
		HTTPAddr:            r.String("HTTP_ADDR", ":8000"),
		MetricsAddr:         r.String("METRICS_ADDR", ":9100"),
		AuthURL:             r.URL("AUTH_URL", "http://127.0.0.1:8001"),
		CustomerURL:         r.URL("CUSTOMER_URL", "http://127.0.0.1:8002"),
		RedisURL:            r.Secret("REDIS_URL", ""),
		TrustedProxies:      r.List("TRUSTED_PROXIES"),
		MongoURI:            r.Secret("MONGODB_URI", "mongodb://127.0.0.1:27017/"),
		DB:                  r.String("BFF_DB", "bff"),
		SigningKeys:         r.SigningKeys("JWT_SIGNING_KEY", "JWT_PREVIOUS_SIGNING_KEYS", env),
		JWTIssuer:           r.String("JWT_ISSUER", ""),
		JWTAudience:         r.String("JWT_AUDIENCE", ""),
		ServiceClientID:     r.String("BFF_SERVICE_CLIENT_ID", ""),
		ServiceClientSecret: r.Secret("BFF_SERVICE_CLIENT_SECRET", ""),
		IdempotencySecret:   r.Secret("BFF_IDEMPOTENCY_SECRET", ""),
		CacheTTL:            r.Duration("CACHE_TTL", 60*time.Second),
		// The register call hashes a password with Argon2id: give it time.
		AuthTimeout:       r.Duration("AUTH_TIMEOUT", 3*time.Second),
		CustomerTimeout:   r.Duration("CUSTOMER_TIMEOUT", 3*time.Second),
		RedisTimeout:      r.Duration("REDIS_TIMEOUT", 50*time.Millisecond),
		StoreTimeout:      r.Duration("STORE_TIMEOUT", bff.DefaultStoreTimeout),
		StoreSlots:        r.Int("STORE_SLOTS", bff.DefaultStoreSlots),
		StoreWait:         r.Duration("STORE_WAIT", bff.DefaultStoreWait),
		ReconcileInterval: r.Duration("RECONCILE_INTERVAL", 5*time.Second),
		SagaLeaseTTL:      r.Duration("SAGA_LEASE_TTL", 0),
		SagaRetention:     r.Duration("SAGA_RETENTION", 30*24*time.Hour),
		LogLevel:          r.String("LOG_LEVEL", "info"),
		ShutdownTimeout:   r.Duration("SHUTDOWN_TIMEOUT", 15*time.Second),
		Environment:       env,
		BenchFloor:        r.Bool("BFF_BENCH_FLOOR", false),
		PublishDocs:       r.Bool("BFF_PUBLISH_DOCS", env == config.Development),
	}
	for _, p := range r.List("BFF_PREVIOUS_SECRETS") {
		r.Check(len(p) >= 16, "BFF_PREVIOUS_SECRETS", "each must have at least 16 characters")
		c.PreviousSecrets = append(c.PreviousSecrets, config.Secret(p))
	}
	for _, o := range r.List("CORS_ALLOWED_ORIGINS") {
		origin, err := httpapi.ParseOrigin(o)
		r.Check(err == nil, "CORS_ALLOWED_ORIGINS", fmt.Sprint(err))
		if err == nil {
			c.CORSAllowedOrigins = append(c.CORSAllowedOrigins, origin)
		}
	}
	r.Check(c.DB != "", "BFF_DB", "must not be empty")
	r.Check(c.AuthTimeout > 0, "AUTH_TIMEOUT", "must be positive")
	r.Check(c.CustomerTimeout > 0, "CUSTOMER_TIMEOUT", "must be positive")
	r.Check(c.RedisTimeout > 0, "REDIS_TIMEOUT", "must be positive")
	r.Check(c.StoreTimeout > 0, "STORE_TIMEOUT", "must be positive")
	r.Check(c.StoreSlots > 0, "STORE_SLOTS", "must be positive")
	r.Check(c.StoreWait > 0, "STORE_WAIT", "must be positive")
	r.Check(c.SagaLeaseTTL == 0 || c.SagaLeaseTTL >= 2*time.Second, "SAGA_LEASE_TTL", "must be 0 (derived) or at least 2s")
	r.Check(c.ReconcileInterval > 0, "RECONCILE_INTERVAL", "must be positive")
	r.Check(c.SagaRetention >= 0, "SAGA_RETENTION", "must not be negative (0 keeps finished sagas)")
	r.Check(c.CacheTTL > 0, "CACHE_TTL", "must be positive")
	r.Check((c.ServiceClientID == "") == (c.ServiceClientSecret == ""), "BFF_SERVICE_CLIENT_ID",
		"BFF_SERVICE_CLIENT_ID and BFF_SERVICE_CLIENT_SECRET go together")
	r.Check(c.IdempotencySecret == "" || len(c.IdempotencySecret) >= 16, "BFF_IDEMPOTENCY_SECRET", "must have at least 16 characters")
	if err := r.Err(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// hasServiceClient reports whether a service client is configured.
func (c Config) hasServiceClient() bool {
	return c.ServiceClientID != "" && c.ServiceClientSecret != ""
}
