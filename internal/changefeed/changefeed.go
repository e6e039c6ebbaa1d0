// Package changefeed carries the change notifications the BFF's cache is
// invalidated by: the customer and auth services publish a small JSON
// message on a Redis channel after each write, best effort. A message
// carries the W3C traceparent of the write that caused it, so the
// invalidation it leads to belongs to that write's trace.
package changefeed

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Channels.
const (
	CustomerChanged = "customer.changed" // {"user_id", "customer_id", "op"}
	UserChanged     = "user.changed"     // {"user_id", "op"}
)

// Message is a change notification. CustomerID is empty on user.changed.
type Message struct {
	UserID     string `json:"user_id"`
	CustomerID string `json:"customer_id,omitempty"`
	Op         string `json:"op"` // create, update, delete, verify, service
	// Traceparent is the W3C trace context of the write (set by Publish
	// from its context; empty when that was not traced). Only the trace
	// context travels: no baggage, which could carry anything.
	Traceparent string `json:"traceparent,omitempty"`
}

// traceContext is the propagator of Message.Traceparent.
var traceContext = propagation.TraceContext{}

// SpanContext is the remote span context of the write that caused m, or an
// invalid one when m carries none (or a malformed one).
func (m Message) SpanContext() trace.SpanContext {
	if m.Traceparent == "" {
		return trace.SpanContext{}
	}
	ctx := traceContext.Extract(context.Background(), propagation.MapCarrier{"traceparent": m.Traceparent})
	return trace.SpanContextFromContext(ctx)
}

// payload is m as published from ctx: with ctx's trace context.
func payload(ctx context.Context, m Message) []byte {
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	m.Traceparent = carrier["traceparent"]
	b, _ := json.Marshal(m)
	return b
}

// Publisher publishes change messages. A nil *Publisher, or one without a
// client, publishes nothing: Redis is optional for the services.
type Publisher struct {
	client  *redis.Client
	logger  *slog.Logger
	timeout time.Duration
}

// NewPublisher returns a publisher over client (nil: a no-op publisher).
func NewPublisher(client *redis.Client, logger *slog.Logger) *Publisher {
	if logger == nil {
		logger = slog.Default()
	}
	return &Publisher{client: client, logger: logger, timeout: 250 * time.Millisecond}
}

// Publish sends m on channel. Failures are logged and otherwise ignored: a
// Redis outage never fails the write that triggered the message (the BFF's
// cache TTL bounds staleness when a message is lost).
func (p *Publisher) Publish(ctx context.Context, channel string, m Message) {
	if p == nil || p.client == nil {
		return
	}
	b := payload(ctx, m)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
	defer cancel()
	if err := p.client.Publish(ctx, channel, b).Err(); err != nil {
		p.logger.WarnContext(ctx, "change notification not published", "channel", channel, "op", m.Op, "error", err.Error())
	}
}

// Decode parses a message payload.
func Decode(payload string) (Message, error) {
	var m Message
	err := json.Unmarshal([]byte(payload), &m)
	return m, err
}
