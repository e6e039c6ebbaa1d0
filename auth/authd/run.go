package authd

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/auth/httpapi"
	authmongo "github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/auth/password"
	"github.com/acme/customer-platform/auth/ratelimit"
	"github.com/acme/customer-platform/auth/token"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/mongodb"
	"github.com/acme/customer-platform/internal/redisconn"
	"github.com/acme/customer-platform/internal/web"
)

// ServiceName names the service in logs, traces and metrics.
const ServiceName = "auth"

// Run serves the auth service until ctx is cancelled, then drains in-flight
// requests for up to cfg.ShutdownTimeout and stops the blacklist sweep and
// the change-event relay.
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
	// A registration's deadline is the BFF's clock's, and the email
	// claims' ages are read with other replicas' clocks.
	clock, err := mongodb.WatchClock(ctx, mc.Database(cfg.DB), log, tel.Meter, authmongo.MaxClockSkew)
	if err != nil {
		return err
	}
	mstore := authmongo.New(mc.Database(cfg.DB))
	if err := mstore.EnsureIndexes(ctx); err != nil {
		return err
	}
	// Users written straight into the users collection (an import) get
	// their email claims; idempotent, so at every start.
	if n, err := mstore.BackfillEmailClaims(ctx); err != nil {
		return err
	} else if n > 0 {
		log.Info("email claims backfilled", "claims", n)
	}
	var store auth.Store = mstore

	rdb, err := redisconn.OpenIfSet(cfg.RedisURL.Reveal(), redisconn.Options{TracerProvider: tel.Tracer})
	if err != nil {
		return err
	}
	defer redisconn.Close(rdb)

	// With Redis, every user change and deletion is recorded in the outbox
	// before it is made, and relayed to the change stream (internal/changefeed).
	out, relay, err := changefeed.OpenProducer(ctx, mc.Database(cfg.DB), rdb, changefeed.ProducerOptions{Logger: log, MeterProvider: tel.Meter, TracerProvider: tel.Tracer})
	if err != nil {
		return err
	}
	if out != nil {
		store = outboxStore{Store: store, out: out}
	}

	argon, err := password.New(cfg.Argon2, cfg.HashConcurrency)
	if err != nil {
		return err
	}
	hasher, err := instrumentHasher(argon, tel.Tracer, tel.Meter)
	if err != nil {
		return err
	}
	issuer, err := token.New(token.Config{
		Key: cfg.SigningKeys.Key(), PreviousKeys: cfg.SigningKeys.PreviousKeys(), Issuer: cfg.Issuer, Audience: cfg.Audience,
		AccessTTL: cfg.AccessTTL, RefreshTTL: cfg.RefreshTTL, ServiceTokenTTL: cfg.ServiceTokenTTL,
	})
	if err != nil {
		return err
	}
	rules, err := auth.NewPasswordRules()
	if err != nil {
		return err
	}
	limits, err := ratelimit.ParseRules(cfg.RateLimits)
	if err != nil {
		return err
	}
	var backend ratelimit.Backend = ratelimit.NewMemory(nil)
	if rdb != nil {
		backend = ratelimit.NewRedis(rdb)
	}
	clients, err := auth.ParseClients(cfg.ServiceClients.Reveal(), cfg.ServiceClientScopes)
	if err != nil {
		return err
	}
	// A client configured without scopes gets none, but in development
	// (configured before scopes existed) every scope; either way a warning.
	if ids := clients.Unscoped(); len(ids) > 0 {
		if cfg.Environment == config.Development {
			clients.GrantUnscoped(auth.KnownScopes())
			log.Warn("service clients configured without scopes get every scope in development; configure their scopes in AUTH_SERVICE_CLIENT_SCOPES", "clients", ids)
		} else {
			log.Warn("service clients configured without scopes get none: configure their scopes in AUTH_SERVICE_CLIENT_SCOPES", "clients", ids)
		}
	}
	svc, err := auth.NewService(auth.Deps{
		Store: store, Hasher: hasher, Tokens: issuer, Rules: rules,
		Limiter: ratelimit.New(limits, backend),
		Clients: clients,
		Logger:  log,
	})
	if err != nil {
		return err
	}
	log.Info("auth service configured", "rate_limits", limits.String(), "service_clients", clients.Len(), "redis", rdb != nil)

	if cfg.BootstrapAdminEmail != "" {
		created, err := svc.EnsureAdmin(ctx, cfg.BootstrapAdminEmail, cfg.BootstrapAdminPassword.Reveal())
		if err != nil {
			return err
		}
		_, domain, _ := strings.Cut(contract.NormalizeEmail(cfg.BootstrapAdminEmail), "@")
		log.Info("bootstrap admin", "email_domain", domain, "created", created)
	}

	verifier, err := authclient.NewVerifier(authclient.VerifierConfig{
		Key: cfg.SigningKeys.Key(), PreviousKeys: cfg.SigningKeys.PreviousKeys(), Issuer: cfg.Issuer, Audience: cfg.Audience,
	})
	if err != nil {
		return err
	}
	engine := web.NewEngine(web.EngineOptions{Service: ServiceName, Logger: log, TracerProvider: tel.Tracer, MeterProvider: tel.Meter})
	if err := engine.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	httpapi.Routes(engine, httpapi.Deps{
		Service: svc, Verifier: verifier, PublicURL: cfg.PublicURL,
		Checks: []web.Check{{Name: "mongodb", Check: mongodb.Ping(mc)}}, Details: redisDetails(rdb),
	})

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { sweep(runCtx, svc, mstore, cfg.BlacklistSweep, log) })
	wg.Go(func() { clock.Run(runCtx) })
	if relay != nil {
		wg.Go(func() { relay.Run(runCtx) })
	}
	defer wg.Wait()
	defer cancel()

	api := &web.Server{Addr: cfg.HTTPAddr, Handler: engine, Drain: cfg.ShutdownTimeout}
	return daemon.Serve(ctx, o, api, cfg.MetricsAddr, tel.Metrics)
}

// redisDetails reports Redis in /readyz without failing readiness: rate
// limiting fails open and change events wait in the outbox until Redis is
// back.
func redisDetails(rdb redis.UniversalClient) func() map[string]any {
	if rdb == nil {
		return nil
	}
	return func() map[string]any {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		state := "ok"
		if err := rdb.Ping(ctx).Err(); err != nil {
			state = "unavailable"
		}
		return map[string]any{"redis": state}
	}
}

// sweep removes expired refresh-token blacklist entries and old email
// claim releases every interval (FerretDB has no TTL indexes).
func sweep(ctx context.Context, svc *auth.Service, store *authmongo.Store, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := svc.SweepBlacklist(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("refresh blacklist sweep failed", "error", err.Error())
			case n > 0:
				log.Info("refresh blacklist swept", "deleted", n)
			}
			if _, err := store.SweepEmailReleases(ctx, time.Now().Add(-authmongo.ReleaseRetention)); err != nil && ctx.Err() == nil {
				log.Warn("email claim release sweep failed", "error", err.Error())
			}
		}
	}
}
