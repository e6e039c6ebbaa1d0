// Package mongodb opens the instrumented MongoDB client every service uses.
package mongodb

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"
	"go.mongodb.org/mongo-driver/mongo/writeconcern"
	"go.opentelemetry.io/contrib/instrumentation/go.mongodb.org/mongo-driver/mongo/otelmongo"
	"go.opentelemetry.io/otel/trace"
)

// Connect opens a client to uri, traced by otelmongo with tp (nil: the global
// provider), and pings it so a wrong URI fails at start, not at first request.
func Connect(ctx context.Context, uri, appName string, tp trace.TracerProvider) (*mongo.Client, error) {
	var mopts []otelmongo.Option
	if tp != nil {
		mopts = append(mopts, otelmongo.WithTracerProvider(tp))
	}
	// Statement text is left out of spans: documents carry personal data.
	mopts = append(mopts, otelmongo.WithCommandAttributeDisabled(true))
	opts := clientOptions(uri, appName).SetMonitor(tracingMonitor(mopts...))
	c, err := mongo.Connect(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("mongodb connect: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.Ping(pctx, readpref.Primary()); err != nil {
		_ = c.Disconnect(context.Background())
		return nil, fmt.Errorf("mongodb ping %s: %w", redact(uri), err)
	}
	return c, nil
}

// clientOptions are the client's settings: the URI's, with the defaults
// a replica set needs where the URI does not choose (docs/scaling.md,
// "MongoDB"). An acknowledged write must survive a failover — a saga's
// completed record is what a 201 stands on — so the write concern is
// majority unless the URI sets w; reads go to the primary (the services
// read their own writes) and writes and reads are retried once by the
// driver across a failover (the drivers' defaults, stated here).
func clientOptions(uri, appName string) *options.ClientOptions {
	opts := options.Client().ApplyURI(uri).
		SetAppName(appName).
		SetServerSelectionTimeout(5 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetMaxPoolSize(100)
	if opts.WriteConcern == nil {
		opts.SetWriteConcern(writeconcern.Majority())
	}
	if opts.ReadPreference == nil {
		opts.SetReadPreference(readpref.Primary())
	}
	if opts.RetryWrites == nil {
		opts.SetRetryWrites(true)
	}
	if opts.RetryReads == nil {
		opts.SetRetryReads(true)
	}
	return opts
}

// Disconnect closes c, giving it up to 5s even when ctx is cancelled (as
// it is when a service stops).
func Disconnect(ctx context.Context, c *mongo.Client) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = c.Disconnect(dctx)
}

// Ping is a readiness check of the client.
func Ping(c *mongo.Client) func(ctx context.Context) error {
	return func(ctx context.Context) error { return c.Ping(ctx, readpref.Primary()) }
}

// redact hides credentials in a connection string for error messages.
func redact(uri string) string {
	_, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return "(invalid uri)"
	}
	hostPart, _, _ := strings.Cut(rest, "/")
	at := strings.LastIndex(hostPart, "@")
	if at < 0 {
		return uri
	}
	return uri[:len(uri)-len(rest)] + "****@" + rest[at+1:]
}
