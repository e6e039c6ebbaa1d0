// Package changefeed delivers the change events of the services at least
// once, also across a Redis outage or a consumer that is down.
//
// A producer (the auth and customer services) records each event in an
// insert-only outbox collection of its own MongoDB database (Outbox) BEFORE
// the write it announces, and marks it ready once the write succeeded. A
// Relay in every replica of the producer moves ready events to one Redis
// Stream (XADD, trimmed by age), retrying while Redis is down; each event
// is added to the stream once however many relays run (a Lua script keyed
// by the event id). Consumers (the BFF) read the stream in a consumer group
// (Consumer: XREADGROUP, XACK after handling, XAUTOCLAIM of what a dead or
// failing consumer left un-acked), skip an event id they already handled,
// and park an event that failed MaxAttempts times on a dead-letter stream.
//
// The order, without transactions: event first, write second. A crash
// between the two leaves an event for a change that did not happen, which
// is relayed after a grace period: harmless, because consumers re-read the
// origin and are idempotent. The other order would lose the event of a
// write made just before a crash. An event is only relayed once its write
// succeeded (or after the grace period), never while the write may still be
// in flight, so a consumer that reloads on the event sees the change.
//
// An event carries the W3C traceparent of the write, and the stream entry
// the one of the relay's span (a child of the write's): one trace shows the
// write, the relay and each consumer's handling.
package changefeed

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Topics.
const (
	CustomerChanged = "customer.changed" // a profile was created, changed or deleted
	UserChanged     = "user.changed"     // an auth user's fields changed
	UserDeleted     = "user.deleted"     // an auth user was deleted (by any path)
)

// Redis keys. They share the hash tag {changefeed}, so the relay's script
// may touch the stream and its dedupe keys on a Redis Cluster too.
const (
	Stream     = "{changefeed}:events" // the stream every event is added to
	DeadLetter = "{changefeed}:parked" // events a consumer group gave up on
	keyPrefix  = "{changefeed}:"
)

// instrumentation names the tracer and meter.
const instrumentation = "github.com/acme/customer-platform/internal/changefeed"

// Event is one change. IDs are unique: consumers deduplicate by ID.
type Event struct {
	ID         string    `json:"id" bson:"_id"`
	Topic      string    `json:"topic" bson:"topic"`
	UserID     string    `json:"user_id" bson:"user_id"`
	CustomerID string    `json:"customer_id,omitempty" bson:"customer_id,omitempty"`
	Op         string    `json:"op" bson:"op"` // create, update, delete, verify, service
	Time       time.Time `json:"time" bson:"time"`
	// Traceparent is the W3C trace context of the write (empty when it was
	// not traced). Only the trace context travels: no baggage, which could
	// carry anything.
	Traceparent string `json:"traceparent,omitempty" bson:"traceparent,omitempty"`
}

// traceContext is the propagator of trace contexts in events and entries.
var traceContext = propagation.TraceContext{}

// traceparent is the W3C trace context of ctx's span ("" when none).
func traceparent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	return carrier["traceparent"]
}

// spanContext parses a traceparent; invalid when empty or malformed.
func spanContext(tp string) trace.SpanContext {
	if tp == "" {
		return trace.SpanContext{}
	}
	ctx := traceContext.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	return trace.SpanContextFromContext(ctx)
}

// backoffBounds is a relay's or a consumer's MinBackoff and MaxBackoff with
// the defaults (100ms and 5s) applied.
func backoffBounds(lo, hi time.Duration) (time.Duration, time.Duration) {
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = max(5*time.Second, lo)
	}
	return lo, hi
}

// jitter is a random wait between d/2 and d.
func jitter(d time.Duration) time.Duration { return d/2 + rand.N(d/2+1) }

// startSpan starts a span of tracer, detached from ctx's cancellation: a
// child of the remote span sc when that is valid, else a new root.
func startSpan(ctx context.Context, tracer trace.Tracer, sc trace.SpanContext, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := context.WithoutCancel(ctx)
	if sc.IsValid() {
		parent = trace.ContextWithRemoteSpanContext(parent, sc)
	} else {
		opts = append(opts, trace.WithNewRoot())
	}
	return tracer.Start(parent, name, opts...)
}

// SpanContext is the remote span context of the write that caused e, or an
// invalid one when e carries none (or a malformed one).
func (e Event) SpanContext() trace.SpanContext { return spanContext(e.Traceparent) }

// Encode is e as stored in a stream entry.
func (e Event) Encode() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// Decode parses an event as Encode wrote it; an event without an id or a
// topic is malformed.
func Decode(s string) (Event, error) {
	var e Event
	if err := json.Unmarshal([]byte(s), &e); err != nil {
		return Event{}, err
	}
	if e.ID == "" || e.Topic == "" {
		return Event{}, errors.New("changefeed: event without id or topic")
	}
	return e, nil
}
