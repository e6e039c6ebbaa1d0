package customerd

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/customer/httpapi"
	customermongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/mongodb"
	"github.com/acme/customer-platform/internal/redisconn"
	"github.com/acme/customer-platform/internal/web"
)

// ServiceName names the service in logs, traces and metrics.
const ServiceName = "customer"

// Run serves the customer service until ctx is cancelled, then drains
// in-flight requests for up to cfg.ShutdownTimeout and stops the
// change-event relay and the erasure cascade.
func Run(ctx context.Context, cfg Config, o daemon.Options) error {
	log := o.Log()
	tel, err := o.Start(ctx, ServiceName, cfg.Environment, cfg)
	if err != nil {
		return err
	}
	defer tel.Close(ctx, log)

	verifier, err := authclient.NewVerifier(authclient.VerifierConfig{
		Key:          cfg.SigningKeys.Key(),
		PreviousKeys: cfg.SigningKeys.PreviousKeys(),
		Issuer:       cfg.JWTIssuer,
		Audience:     cfg.JWTAudience,
	})
	if err != nil {
		return err
	}

	client, err := mongodb.Connect(ctx, cfg.MongoURI.Reveal(), ServiceName, tel.Tracer)
	if err != nil {
		return err
	}
	defer mongodb.Disconnect(ctx, client)
	// The intents of profile writes are leased with this replica's clock
	// and found expired with others' (customer/mongodb, pending.go).
	clock, err := mongodb.WatchClock(ctx, client.Database(cfg.Database), log, tel.Meter, customermongo.MaxClockSkew)
	if err != nil {
		return err
	}
	mstore, err := customermongo.New(ctx, client.Database(cfg.Database))
	if err != nil {
		return fmt.Errorf("customer store: %w", err)
	}
	if up := mstore.Upgraded(); up != (customermongo.UpgradeResult{}) {
		log.InfoContext(ctx, "customer store upgraded", "aliases_written", up.Aliases, "records_converted", up.Converted, "orphan_records_left", up.Orphans)
	}
	var store customer.Store = mstore

	rdb, err := redisconn.OpenIfSet(cfg.RedisURL.Reveal(), redisconn.Options{TracerProvider: tel.Tracer})
	if err != nil {
		return err
	}
	defer redisconn.Close(rdb)

	// With Redis, every profile write is recorded in the outbox before it is
	// made, and relayed to the change stream (internal/changefeed).
	out, relay, err := changefeed.OpenProducer(ctx, client.Database(cfg.Database), rdb, changefeed.ProducerOptions{Logger: log, MeterProvider: tel.Meter, TracerProvider: tel.Tracer})
	if err != nil {
		return err
	}
	if out != nil {
		store = outboxStore{Store: store, out: out}
	}

	auth := authclient.New(authclient.Options{
		BaseURL:        cfg.AuthURL,
		Timeout:        cfg.AuthTimeout,
		TracerProvider: tel.Tracer,
		MeterProvider:  tel.Meter,
		Propagator:     tel.Propagator,
	})
	svc := customer.NewService(store, authUsers{auth}, nil, customer.Options{Logger: log, UserTimeout: cfg.AuthTimeout})

	// The erasure cascade: user.deleted events, in the consumer group
	// "customer", delete the user's profile once the auth service confirms
	// the user is gone (docs/design.md, "Cascading erasure").
	var cascade *changefeed.Consumer
	switch {
	case rdb != nil && cfg.ServiceClientID != "":
		h := erasure{svc: svc, tokens: authclient.NewServiceTokens(auth, cfg.ServiceClientID, cfg.ServiceClientSecret.Reveal()), log: log}
		if cascade, err = changefeed.NewConsumer(rdb, h.handle, changefeed.ConsumerOptions{
			Group: ErasureGroup, Topics: []string{changefeed.UserDeleted},
			Logger: log, MeterProvider: tel.Meter, TracerProvider: tel.Tracer,
		}); err != nil {
			return err
		}
	case rdb != nil:
		log.WarnContext(ctx, "no CUSTOMER_SERVICE_CLIENT_ID: profiles of users deleted at the auth service are not erased (their events wait in the stream)")
	}

	engine := web.NewEngine(web.EngineOptions{Service: ServiceName, Logger: log, TracerProvider: tel.Tracer, MeterProvider: tel.Meter})
	httpapi.Routes(engine, httpapi.Deps{
		Service:                    svc,
		Verifier:                   verifier,
		Checks:                     []web.Check{{Name: "mongodb", Check: mongodb.Ping(client)}},
		Details:                    redisDetails(rdb),
		PublicURL:                  cfg.PublicURL,
		AllowUnscopedServiceTokens: cfg.ServiceTokensWithoutScope == UnscopedAllow,
	})

	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { mstore.Maintain(runCtx, log) })
	wg.Go(func() { clock.Run(runCtx) })
	if relay != nil {
		wg.Go(func() { relay.Run(runCtx) })
	}
	if cascade != nil {
		wg.Go(func() { _ = cascade.Run(runCtx) })
	}
	defer wg.Wait()
	defer cancel()

	return daemon.Serve(ctx, o, &web.Server{Addr: cfg.HTTPAddr, Handler: engine, Drain: cfg.ShutdownTimeout}, cfg.MetricsAddr, tel.Metrics)
}

// redisDetails reports Redis under the readiness details: change events
// wait in the outbox until Redis is back, so Redis being down never fails
// readiness.
func redisDetails(rdb redis.UniversalClient) func() map[string]any {
	return func() map[string]any {
		if rdb == nil {
			return map[string]any{"redis": "not configured"}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if err := redisconn.Ping(rdb)(ctx); err != nil {
			return map[string]any{"redis": "unavailable"}
		}
		return map[string]any{"redis": "ok"}
	}
}
