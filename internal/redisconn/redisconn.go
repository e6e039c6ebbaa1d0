// Package redisconn opens the instrumented Redis client the services share.
package redisconn

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// Options tune the client; zero values take the defaults.
type Options struct {
	TracerProvider trace.TracerProvider
	// Timeout bounds each command's dial, read and write (default 1s).
	Timeout time.Duration
}

// Open parses url (ParseURL: one node, a Cluster or a Sentinel-named
// master) and returns a client traced by redisotel with the command text
// switched off: cached user data must never land in a span. The client is
// a *redis.Client, a *redis.ClusterClient or a failover client; its
// callers see only redis.UniversalClient, so one code path serves all
// three. It does not connect; use Ping for readiness.
func Open(url string, o Options) (redis.UniversalClient, error) {
	opt, err := ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	t := o.Timeout
	if t <= 0 {
		t = time.Second
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = t, t, t
	// The callers decide about retries (and breakers). A Cluster client
	// still follows MOVED and ASK redirections (MaxRedirects), which are
	// not retries of a failed command but its routing.
	opt.MaxRetries = -1
	opt.ContextTimeoutEnabled = true
	c := redis.NewUniversalClient(opt)
	// No command text (cached user data must never land in a span) and no
	// caller lookup (a stack walk on every command of the cache hit path).
	topts := []redisotel.TracingOption{redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)}
	if o.TracerProvider != nil {
		topts = append(topts, redisotel.WithTracerProvider(o.TracerProvider))
	}
	if err := redisotel.InstrumentTracing(c, topts...); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis tracing: %w", err)
	}
	return c, nil
}

// OpenIfSet is Open, or no client (an untyped nil) when url is empty.
func OpenIfSet(url string, o Options) (redis.UniversalClient, error) {
	if url == "" {
		return nil, nil
	}
	return Open(url, o)
}

// Close closes c if there is one.
func Close(c redis.UniversalClient) {
	if c != nil {
		_ = c.Close()
	}
}

// Ping is a readiness check of c.
func Ping(c redis.UniversalClient) func(ctx context.Context) error {
	return func(ctx context.Context) error { return c.Ping(ctx).Err() }
}
