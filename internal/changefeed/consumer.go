package changefeed

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/internal/telemetry"
)

// Handler handles one event. An error leaves the event un-acked: it is
// delivered again after ClaimIdle, and parked after MaxAttempts; an error
// matching ErrReject parks it at once.
type Handler func(ctx context.Context, e Event) error

// ErrReject, wrapped in a handler's error, says the event can never be
// handled (it names no valid user, say): it is parked at once.
var ErrReject = errors.New("changefeed: event rejected")

// Consumer defaults.
const (
	DefaultMaxAttempts = 5
	DefaultClaimIdle   = 30 * time.Second
	DefaultRemember    = 24 * time.Hour
)

// ConsumerOptions tune a Consumer. Group is required.
type ConsumerOptions struct {
	// Group is the consumer group: every group gets every event once (at
	// least); the consumers of one group share its events.
	Group string
	// Name is this consumer's name in the group, unique per process
	// (default: the host name and a random suffix).
	Name string
	// Topics are handled; events of other topics are acked unhandled (nil:
	// every topic).
	Topics []string
	// MaxAttempts is how many deliveries an event gets before it is parked
	// (default DefaultMaxAttempts).
	MaxAttempts int
	// ClaimIdle is how long an event stays un-acked (its handler failed, or
	// its consumer died) before any consumer of the group claims it again
	// (default DefaultClaimIdle).
	ClaimIdle time.Duration
	// Remember is how long handled event ids are remembered to skip a
	// redelivery (default DefaultRemember, the stream's retention).
	Remember time.Duration
	// Block is the longest wait for new events (default 1s, at most half
	// of ClaimIdle).
	Block time.Duration
	// Batch is the most events read at once (default 50).
	Batch int64
	// MinBackoff and MaxBackoff bound the wait between attempts to reach
	// Redis (defaults 100ms and 5s).
	MinBackoff, MaxBackoff time.Duration

	Logger         *slog.Logger
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// Consumer reads the stream in a consumer group and hands each event to
// its handler, at least once: it acks after handling, claims what other
// consumers of the group left un-acked for ClaimIdle, skips ids it handled
// already, and parks an event on the dead-letter stream after MaxAttempts.
type Consumer struct {
	rdb     redis.UniversalClient
	handle  Handler
	o       ConsumerOptions
	log     *slog.Logger
	tracer  trace.Tracer
	reading atomic.Bool
	lag     atomic.Int64
	pending atomic.Int64

	delivered   metric.Int64Counter
	redelivered metric.Int64Counter
	parked      metric.Int64Counter
	delay       metric.Float64Histogram
	attrs       metric.MeasurementOption
}

// NewConsumer returns a consumer of the stream on rdb.
func NewConsumer(rdb redis.UniversalClient, h Handler, o ConsumerOptions) (*Consumer, error) {
	if rdb == nil || h == nil || o.Group == "" {
		return nil, errors.New("changefeed: a consumer needs a Redis client, a handler and a group")
	}
	if o.Name == "" {
		o.Name = ConsumerName()
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = DefaultClaimIdle
	}
	if o.Remember <= 0 {
		o.Remember = DefaultRemember
	}
	if o.Block <= 0 {
		o.Block = time.Second
	}
	o.Block = max(time.Millisecond, min(o.Block, o.ClaimIdle/2))
	if o.Batch <= 0 {
		o.Batch = 50
	}
	o.MinBackoff, o.MaxBackoff = backoffBounds(o.MinBackoff, o.MaxBackoff)
	c := &Consumer{rdb: rdb, handle: h, o: o, log: o.Logger, attrs: metric.WithAttributes(attribute.String("group", o.Group))}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("group", o.Group, "consumer", o.Name)
	c.tracer = telemetry.Tracer(o.TracerProvider, instrumentation)
	m := telemetry.Meter(o.MeterProvider, instrumentation)
	var err error
	if c.delivered, err = m.Int64Counter("changefeed.events.delivered",
		metric.WithDescription("Events delivered to a consumer group, by group, topic and result: handled, duplicate (handled before), ignored (another topic), failed (retried later).")); err != nil {
		return nil, fmt.Errorf("changefeed metrics: %w", err)
	}
	if c.redelivered, err = m.Int64Counter("changefeed.events.redelivered",
		metric.WithDescription("Deliveries of an event that was delivered before and not acked (a failed handler or a dead consumer), by group.")); err != nil {
		return nil, fmt.Errorf("changefeed metrics: %w", err)
	}
	if c.parked, err = m.Int64Counter("changefeed.events.parked",
		metric.WithDescription("Events a group gave up on, moved to the dead-letter stream, by group and reason: attempts, malformed, rejected.")); err != nil {
		return nil, fmt.Errorf("changefeed metrics: %w", err)
	}
	if c.delay, err = m.Float64Histogram("changefeed.delivery.delay",
		metric.WithDescription("Time from an event's write to its handling, by group."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)); err != nil {
		return nil, fmt.Errorf("changefeed metrics: %w", err)
	}
	if _, err = m.Int64ObservableGauge("changefeed.consumer.lag",
		metric.WithDescription("Stream entries not yet delivered to the group, at the consumer's last look (XINFO GROUPS lag)."),
		metric.WithInt64Callback(func(_ context.Context, obs metric.Int64Observer) error {
			obs.Observe(c.lag.Load(), metric.WithAttributes(attribute.String("group", o.Group)))
			return nil
		})); err != nil {
		return nil, fmt.Errorf("changefeed metrics: %w", err)
	}
	if _, err = m.Int64ObservableGauge("changefeed.consumer.pending",
		metric.WithDescription("Events delivered to the group and not acked yet, at the consumer's last look."),
		metric.WithInt64Callback(func(_ context.Context, obs metric.Int64Observer) error {
			obs.Observe(c.pending.Load(), metric.WithAttributes(attribute.String("group", o.Group)))
			return nil
		})); err != nil {
		return nil, fmt.Errorf("changefeed metrics: %w", err)
	}
	return c, nil
}

// ConsumerName is a consumer name unique to this process: the host name
// (a pod's name) and a random suffix.
func ConsumerName() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "consumer"
	}
	var b [4]byte
	_, _ = crand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// Name is the consumer's name in its group.
func (c *Consumer) Name() string { return c.o.Name }

// Reading reports whether the consumer is reading the stream (its group
// exists and Redis answers).
func (c *Consumer) Reading() bool { return c.reading.Load() }

// Run consumes until ctx is done, reconnecting with backoff whenever Redis
// fails (and recreating the group when Redis lost it). It returns nil once
// ctx is done.
func (c *Consumer) Run(ctx context.Context) error {
	backoff := c.o.MinBackoff
	failing := false
	for ctx.Err() == nil {
		worked, err := c.session(ctx)
		c.reading.Store(false)
		if ctx.Err() != nil {
			break
		}
		if worked {
			backoff = c.o.MinBackoff
		}
		if !failing || worked {
			c.log.WarnContext(ctx, "change stream unavailable; retrying (events wait in the stream and the outboxes)", "error", err.Error())
		}
		failing = true
		wait := jitter(backoff)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.o.MaxBackoff)
	}
	c.log.InfoContext(context.WithoutCancel(ctx), "change stream consumer stopped")
	return nil
}

// session creates the group if needed and consumes until Redis fails;
// worked reports whether it got as far as reading.
func (c *Consumer) session(ctx context.Context) (worked bool, err error) {
	// From the start of the stream: a group created after events were added
	// (the first start, or Redis lost its data) must not skip them.
	if err := c.rdb.XGroupCreateMkStream(ctx, Stream, c.o.Group, "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return false, fmt.Errorf("create group %s: %w", c.o.Group, err)
	}
	if !c.reading.Swap(true) {
		c.log.InfoContext(ctx, "change stream consumer reading", "stream", Stream)
	}
	var lastClaim time.Time
	for {
		if time.Since(lastClaim) >= c.o.ClaimIdle/2 {
			if err := c.claim(ctx); err != nil {
				return true, err
			}
			c.observeLag(ctx)
			lastClaim = time.Now()
		}
		streams, err := c.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: c.o.Group, Consumer: c.o.Name, Streams: []string{Stream, ">"}, Count: c.o.Batch, Block: c.o.Block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return true, fmt.Errorf("read group %s: %w", c.o.Group, err)
		}
		for _, s := range streams {
			for _, m := range s.Messages {
				if err := c.process(ctx, m, 1); err != nil {
					return true, err
				}
			}
		}
	}
}

// claim takes over the group's events left un-acked for ClaimIdle (by a
// consumer that died, or whose handler failed) and processes them.
func (c *Consumer) claim(ctx context.Context) error {
	start := "0-0"
	for range 100 { // bounded: new events are not starved
		msgs, next, err := c.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: Stream, Group: c.o.Group, Consumer: c.o.Name, MinIdle: c.o.ClaimIdle, Start: start, Count: c.o.Batch,
		}).Result()
		if err != nil {
			return fmt.Errorf("claim in group %s: %w", c.o.Group, err)
		}
		if len(msgs) > 0 {
			counts, err := c.deliveries(ctx, msgs)
			if err != nil {
				return err
			}
			for _, m := range msgs {
				if err := c.process(ctx, m, counts[m.ID]); err != nil {
					return err
				}
			}
		}
		if next == "0-0" || next == "" || len(msgs) == 0 {
			return nil
		}
		start = next
	}
	return nil
}

// deliveries returns how many times each claimed event was delivered
// (counting this claim).
func (c *Consumer) deliveries(ctx context.Context, msgs []redis.XMessage) (map[string]int64, error) {
	pend, err := c.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: Stream, Group: c.o.Group, Start: msgs[0].ID, End: msgs[len(msgs)-1].ID, Count: int64(len(msgs)) + 10, Consumer: c.o.Name,
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("pending of group %s: %w", c.o.Group, err)
	}
	counts := make(map[string]int64, len(pend))
	for _, p := range pend {
		counts[p.ID] = p.RetryCount
	}
	return counts, nil
}

// observeLag records the group's lag and pending count (best effort).
func (c *Consumer) observeLag(ctx context.Context) {
	groups, err := c.rdb.XInfoGroups(ctx, Stream).Result()
	if err != nil {
		return
	}
	for _, g := range groups {
		if g.Name == c.o.Group {
			c.lag.Store(max(0, g.Lag))
			c.pending.Store(g.Pending)
		}
	}
}

// process handles one delivery of an entry; only a Redis failure is
// returned (a handler's failure leaves the event pending).
func (c *Consumer) process(ctx context.Context, m redis.XMessage, delivery int64) error {
	raw, _ := m.Values["event"].(string)
	e, derr := Decode(raw)
	if derr != nil {
		return c.park(ctx, m, "malformed", delivery)
	}
	topic := metric.WithAttributes(attribute.String("group", c.o.Group), attribute.String("topic", e.Topic))
	if delivery > 1 {
		c.redelivered.Add(ctx, 1, c.attrs)
	}
	if c.o.Topics != nil && !slices.Contains(c.o.Topics, e.Topic) {
		c.delivered.Add(ctx, 1, topic, metric.WithAttributes(attribute.String("result", "ignored")))
		return c.ack(ctx, m.ID)
	}
	if delivery > int64(c.o.MaxAttempts) {
		return c.park(ctx, m, "attempts", delivery)
	}
	seen := keyPrefix + "seen:" + c.o.Group + ":" + e.ID
	n, err := c.rdb.Exists(ctx, seen).Result()
	if err != nil {
		return fmt.Errorf("dedupe: %w", err)
	}
	if n > 0 {
		c.delivered.Add(ctx, 1, topic, metric.WithAttributes(attribute.String("result", "duplicate")))
		return c.ack(ctx, m.ID)
	}

	// A consumer span: a child of the relay's (and so of the write's) when
	// the entry says which, else a root.
	tp, _ := m.Values["traceparent"].(string)
	sc := spanContext(tp)
	if !sc.IsValid() {
		sc = e.SpanContext()
	}
	hctx, span := startSpan(ctx, c.tracer, sc, "process "+e.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "redis"), attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", Stream), attribute.String("messaging.consumer.group.name", c.o.Group),
			attribute.String("messaging.message.id", e.ID), attribute.Int64("messaging.message.delivery_count", delivery),
			attribute.String("changefeed.op", e.Op)))
	defer span.End()
	if err := c.handle(hctx, e); err != nil {
		span.RecordError(err)
		if errors.Is(err, ErrReject) {
			span.SetStatus(codes.Error, "rejected")
			return c.park(ctx, m, "rejected", delivery)
		}
		span.SetStatus(codes.Error, "handler failed")
		c.delivered.Add(ctx, 1, topic, metric.WithAttributes(attribute.String("result", "failed")))
		c.log.WarnContext(hctx, "change event not handled; it is delivered again later", "event_id", e.ID, "topic", e.Topic,
			"delivery", delivery, "max_attempts", c.o.MaxAttempts, "error", err.Error())
		return nil
	}
	if err := c.rdb.Set(ctx, seen, "1", c.o.Remember).Err(); err != nil {
		return fmt.Errorf("remember %s: %w", e.ID, err)
	}
	c.delivered.Add(ctx, 1, topic, metric.WithAttributes(attribute.String("result", "handled")))
	c.delay.Record(ctx, time.Since(e.Time).Seconds(), c.attrs)
	return c.ack(ctx, m.ID)
}

func (c *Consumer) ack(ctx context.Context, id string) error {
	if err := c.rdb.XAck(ctx, Stream, c.o.Group, id).Err(); err != nil {
		return fmt.Errorf("ack %s: %w", id, err)
	}
	return nil
}

// park moves an entry to the dead-letter stream (with why, and for which
// group) and acks it.
func (c *Consumer) park(ctx context.Context, m redis.XMessage, reason string, delivery int64) error {
	raw, _ := m.Values["event"].(string)
	if err := c.rdb.XAdd(ctx, &redis.XAddArgs{Stream: DeadLetter, MaxLen: 10000, Approx: true, Values: []any{
		"event", raw, "entry_id", m.ID, "group", c.o.Group, "consumer", c.o.Name, "reason", reason,
		"deliveries", strconv.FormatInt(delivery, 10), "parked_at", time.Now().UTC().Format(time.RFC3339Nano),
	}}).Err(); err != nil {
		return fmt.Errorf("park %s: %w", m.ID, err)
	}
	c.parked.Add(ctx, 1, c.attrs, metric.WithAttributes(attribute.String("reason", reason)))
	c.log.ErrorContext(ctx, "change event parked on the dead-letter stream", "entry_id", m.ID, "reason", reason,
		"deliveries", delivery, "dead_letter", DeadLetter)
	return c.ack(ctx, m.ID)
}
