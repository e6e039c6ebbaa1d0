package bffd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/breaker"
	"github.com/acme/customer-platform/bff/httpapi"
	bffmongo "github.com/acme/customer-platform/bff/mongodb"
	"github.com/acme/customer-platform/bff/rediscache"
	"github.com/acme/customer-platform/customerclient"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/mongodb"
	"github.com/acme/customer-platform/internal/redisconn"
	"github.com/acme/customer-platform/internal/web"
)

// ServiceName names the service in logs, traces and metrics.
const ServiceName = "bff"

// maxClockSkew is the disagreement with the database's clock past which a
// replica warns: half what the sagas allow between the BFF replicas and
// the auth service (a lease's margin, a registration's deadline), so two
// replicas each within it agree. The idempotency store allows more.
const maxClockSkew = bff.MaxClockSkew / 2

// Upstream breakers: five unavailable answers in a row open one; it probes
// again after five seconds.
var upstreamBreaker = breaker.Settings{
	FailuresToOpen: 5,
	OpenTimeout:    5 * time.Second,
	HalfOpenMax:    1,
	IsSuccessful:   upstreamIsHealthy,
}

// Run runs the BFF until ctx is cancelled, then drains in-flight requests
// and stops the reconciler and the change stream consumer.
func Run(ctx context.Context, cfg Config, o daemon.Options) error {
	log := o.Log()
	tel, err := o.Start(ctx, ServiceName, cfg.Environment, cfg)
	if err != nil {
		return err
	}
	defer tel.Close(ctx, log)

	mc, err := mongodb.Connect(ctx, cfg.MongoURI.Reveal(), ServiceName, tel.Tracer)
	if err != nil {
		return err
	}
	defer mongodb.Disconnect(ctx, mc)
	store, err := bffmongo.New(ctx, mc.Database(cfg.DB))
	if err != nil {
		return err
	}
	// Leases, a saga's next attempt and the idempotency records' days are
	// written with this replica's clock and read with others': say so when
	// it disagrees with the database's (and so, likely, with theirs).
	clock, err := mongodb.WatchClock(ctx, mc.Database(cfg.DB), log, tel.Meter, maxClockSkew)
	if err != nil {
		return err
	}

	breakers, err := breaker.NewRegistry(log, tel.Meter)
	if err != nil {
		return err
	}
	authBr, err := breakers.New("auth", upstreamBreaker)
	if err != nil {
		return err
	}
	customerBr, err := breakers.New("customer", upstreamBreaker)
	if err != nil {
		return err
	}
	// The clients never replay a call that is not safe to repeat
	// (internal/upstream): a replayed register would be answered "email
	// exists".
	ac := authclient.New(authclient.Options{BaseURL: cfg.AuthURL, Timeout: cfg.AuthTimeout, TracerProvider: tel.Tracer, MeterProvider: tel.Meter, Propagator: tel.Propagator})
	cc := customerclient.New(customerclient.Options{BaseURL: cfg.CustomerURL, Timeout: cfg.CustomerTimeout, TracerProvider: tel.Tracer, MeterProvider: tel.Meter, Propagator: tel.Propagator})
	authSvc := &authService{c: ac, br: authBr}
	custSvc := &customers{c: cc, br: customerBr}
	opts := bff.Options{
		Auth: authSvc, Customers: custSvc,
		Sagas: store, Leases: store, Keys: store,
		Logger:      log,
		AuthTimeout: cfg.AuthTimeout, CustomerTimeout: cfg.CustomerTimeout, StoreTimeout: cfg.StoreTimeout, LeaseTTL: cfg.SagaLeaseTTL,
		StoreSlots: cfg.StoreSlots, StoreWait: cfg.StoreWait,
		RetryBase: min(cfg.ReconcileInterval, 5*time.Second),
		AfterStep: cfg.afterStep,
	}
	if cfg.hasServiceClient() {
		admin := &authAdmin{c: ac, tokens: authclient.NewServiceTokens(ac, cfg.ServiceClientID, cfg.ServiceClientSecret.Reveal()), br: authBr}
		opts.AuthAdmin = admin
		opts.CustomersAdmin = &customersAdmin{c: cc, br: customerBr, tokens: admin}
	} else {
		log.Warn("no service client configured (BFF_SERVICE_CLIENT_ID, BFF_SERVICE_CLIENT_SECRET): " +
			"compensation uses the user's own token only, and the reconciler can only finish what that token allows " +
			"(it cannot resolve a registration whose user id was never recorded, nor act after the token expired)")
	}

	secret, previous, err := serverSecrets(cfg)
	if err != nil {
		return err
	}
	if opts.Secrets, err = bff.NewSecrets(secret, previous...); err != nil {
		return err
	}

	var views bff.Views = bff.NewOrigin(authSvc, custSvc)
	checks := []web.Check{{Name: "mongodb", Check: mongodb.Ping(mc)}}
	var subscriber *rediscache.Subscriber
	rdb, err := redisconn.OpenIfSet(cfg.RedisURL.Reveal(), redisconn.Options{TracerProvider: tel.Tracer, Timeout: cfg.RedisTimeout})
	if err != nil {
		return err
	}
	defer redisconn.Close(rdb)
	if rdb != nil {
		redisBr, err := breakers.New("redis", rediscache.BreakerSettings())
		if err != nil {
			return err
		}
		cache, err := rediscache.New(rdb, views, rediscache.Options{
			TTL: cfg.CacheTTL, Timeout: cfg.RedisTimeout, Breaker: redisBr, Logger: log,
			MeterProvider: tel.Meter, TracerProvider: tel.Tracer,
		})
		if err != nil {
			return err
		}
		// The change stream is read on a client of its own, with the default
		// command timeout: REDIS_TIMEOUT is the cache's hit-path budget.
		feed, err := redisconn.Open(cfg.RedisURL.Reveal(), redisconn.Options{TracerProvider: tel.Tracer})
		if err != nil {
			return err
		}
		defer redisconn.Close(feed)
		if subscriber, err = rediscache.NewSubscriber(feed, cache, rediscache.SubscriberOptions{Logger: log, MeterProvider: tel.Meter, TracerProvider: tel.Tracer}); err != nil {
			return err
		}
		views = cache
	} else {
		log.Warn("REDIS_URL is not set: the merged-view cache is off, every GET /api/bff/me/ is answered from the origins (X-Cache: BYPASS)")
	}
	opts.Views = views

	var rec atomic.Pointer[bff.Reconciler] // set once the service exists
	backlog := func() int64 {
		if r := rec.Load(); r != nil {
			return r.Backlog()
		}
		return 0
	}
	gauges := reconcilerGauges{
		backlog: backlog,
		needsAttention: func() int64 {
			if r := rec.Load(); r != nil {
				return r.NeedsAttention()
			}
			return 0
		},
		oldestOpenAge: func() time.Duration {
			if r := rec.Load(); r != nil {
				return r.OldestOpenAge()
			}
			return 0
		},
		passes: func() int64 {
			if r := rec.Load(); r != nil {
				return r.Passes()
			}
			return 0
		},
	}
	if opts.Telemetry, err = newSagaTelemetry(tel.Tracer, tel.Meter, gauges); err != nil {
		return err
	}
	svc, err := bff.NewService(opts)
	if err != nil {
		return err
	}
	reconciler := svc.NewReconciler(cfg.ReconcileInterval, cfg.SagaRetention)
	rec.Store(reconciler)
	validator, err := bff.NewValidator()
	if err != nil {
		return err
	}
	verifier, err := authclient.NewVerifier(authclient.VerifierConfig{
		Key: cfg.SigningKeys.Key(), PreviousKeys: cfg.SigningKeys.PreviousKeys(), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
	})
	if err != nil {
		return err
	}

	if cfg.BenchFloor {
		log.Warn("BFF_BENCH_FLOOR is on: GET /api/bff/bench/floor/ is served for cmd/bench; never turn it on in a deployment")
	}
	engine := web.NewEngine(web.EngineOptions{Service: ServiceName, Logger: log, TracerProvider: tel.Tracer, MeterProvider: tel.Meter,
		ContentSecurityPolicy: httpapi.ContentSecurityPolicy})
	if err := engine.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	httpapi.Routes(engine, httpapi.Deps{
		Service: svc, Validator: validator, Views: views, Verifier: verifier,
		Checks:         checks,
		Metrics:        metricsOnAPI(cfg, tel.Metrics),
		BenchFloor:     cfg.BenchFloor,
		PublishDocs:    cfg.PublishDocs,
		AllowedOrigins: cfg.CORSAllowedOrigins,
		Details: func() map[string]any {
			d := map[string]any{
				"breakers":           breakers.States(),
				"service_client":     cfg.hasServiceClient(),
				"reconciler_backlog": backlog(),
				"needs_attention":    gauges.needsAttention(),
				"cache":              "off",
			}
			if subscriber != nil {
				d["cache"] = "redis"
				d["invalidation_subscribed"] = subscriber.Subscribed()
			}
			return d
		},
	})

	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { reconciler.Run(bg) })
	wg.Go(func() { clock.Run(bg) })
	if subscriber != nil {
		wg.Go(func() {
			if err := subscriber.Run(bg); err != nil && !errors.Is(err, context.Canceled) {
				log.Warn("change stream consumer stopped", "error", err.Error())
			}
		})
	}
	defer func() {
		stopBG()
		wg.Wait()
	}()

	return daemon.Serve(ctx, o, &web.Server{Addr: cfg.HTTPAddr, Handler: engine, Drain: cfg.ShutdownTimeout}, cfg.MetricsAddr, tel.Metrics)
}

// metricsOnAPI is the metrics handler to serve on the API listener: only
// when METRICS_ADDR is empty (no separate metrics listener).
func metricsOnAPI(cfg Config, h http.Handler) http.Handler {
	if cfg.MetricsAddr != "" {
		return nil
	}
	return h
}

// serverSecrets are the BFF's server secret and its previous ones:
// BFF_IDEMPOTENCY_SECRET and BFF_PREVIOUS_SECRETS when the secret is set;
// else derived from the signing keys, the current key's derivation the
// secret and the previous keys' the previous secrets, so that rotating
// JWT_SIGNING_KEY alone turns no retry into a 422 and strands no saga.
func serverSecrets(cfg Config) (secret []byte, previous [][]byte, err error) {
	if s := cfg.IdempotencySecret.Reveal(); s != "" {
		for _, p := range cfg.PreviousSecrets {
			previous = append(previous, []byte(p.Reveal()))
		}
		return []byte(s), previous, nil
	}
	if secret, err = bff.DeriveSecret(cfg.SigningKeys.Key()); err != nil {
		return nil, nil, err
	}
	for _, k := range cfg.SigningKeys.PreviousKeys() {
		p, err := bff.DeriveSecret(k)
		if err != nil {
			return nil, nil, err
		}
		previous = append(previous, p)
	}
	for _, p := range cfg.PreviousSecrets {
		previous = append(previous, []byte(p.Reveal()))
	}
	return secret, previous, nil
}
