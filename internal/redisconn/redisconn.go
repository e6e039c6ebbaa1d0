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

// Open parses url (redis://host:port/db) and returns a client traced by
// redisotel with the command text switched off: cached user data must never
// land in a span. It does not connect; use Ping for readiness.
func Open(url string, o Options) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	t := o.Timeout
	if t <= 0 {
		t = time.Second
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = t, t, t
	opt.MaxRetries = 0 // the callers decide about retries (and breakers)
	opt.ContextTimeoutEnabled = true
	c := redis.NewClient(opt)
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

// OpenIfSet is Open for a service that runs without Redis when url is "":
// it then returns a nil client.
func OpenIfSet(url string, o Options) (*redis.Client, error) {
	if url == "" {
		return nil, nil
	}
	return Open(url, o)
}

// Close closes c, if there is one (see OpenIfSet).
func Close(c *redis.Client) {
	if c != nil {
		_ = c.Close()
	}
}

// Ping is a readiness check of the client.
func Ping(c *redis.Client) func(ctx context.Context) error {
	return func(ctx context.Context) error { return c.Ping(ctx).Err() }
}
