package changefeed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/internal/telemetry"
)

// DefaultStreamRetention is how far back the stream reaches (MINID trimming).
const DefaultStreamRetention = 24 * time.Hour

// addOnce adds an event to the stream unless that event id was added
// already within the stream's retention (another relay got there first, or
// this one before its relayed marker was written). KEYS: the stream, the
// event's marker. ARGV: the marker's TTL in ms, the MINID to trim to, the
// event, the entry's traceparent. Returns the entry id, or nil for a
// duplicate.
var addOnce = redis.NewScript(`
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[2], '*', 'event', ARGV[3], 'traceparent', ARGV[4])
end
return false
`)

// RelayOptions tune a Relay; zero values take the defaults.
type RelayOptions struct {
	Logger         *slog.Logger
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	// Interval between polls of the outbox when not nudged (default 1s).
	Interval time.Duration
	// StreamRetention: entries older than this are trimmed from the stream
	// (default DefaultStreamRetention). A consumer down for longer misses
	// what was trimmed.
	StreamRetention time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts while Redis
	// or MongoDB fail (defaults 100ms and 5s).
	MinBackoff, MaxBackoff time.Duration
	// Batch is the most events relayed per pass (default 100).
	Batch int
}

// Relay moves ready outbox events to the stream. Any number of replicas may
// run one on the same outbox: each event is added to the stream once.
type Relay struct {
	out        *Outbox
	rdb        redis.UniversalClient
	log        *slog.Logger
	tracer     trace.Tracer
	interval   time.Duration
	streamRet  time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	batch      int
	relayed    metric.Int64Counter
	backlog    atomic.Int64
	lastPrune  time.Time
	lastCount  time.Time
}

// NewRelay returns a relay of out's events to rdb.
func NewRelay(out *Outbox, rdb redis.UniversalClient, o RelayOptions) (*Relay, error) {
	if out == nil || rdb == nil {
		return nil, errors.New("changefeed: a relay needs an outbox and a Redis client")
	}
	r := &Relay{out: out, rdb: rdb, log: o.Logger, interval: o.Interval, streamRet: o.StreamRetention,
		minBackoff: o.MinBackoff, maxBackoff: o.MaxBackoff, batch: o.Batch}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.interval <= 0 {
		r.interval = time.Second
	}
	if r.streamRet <= 0 {
		r.streamRet = DefaultStreamRetention
	}
	r.minBackoff, r.maxBackoff = backoffBounds(r.minBackoff, r.maxBackoff)
	if r.batch <= 0 {
		r.batch = 100
	}
	r.tracer = telemetry.Tracer(o.TracerProvider, instrumentation)
	m := telemetry.Meter(o.MeterProvider, instrumentation)
	var err error
	if r.relayed, err = m.Int64Counter("changefeed.events.relayed",
		metric.WithDescription("Outbox events moved to the stream, by topic and result: added, or duplicate (another relay added it).")); err != nil {
		return nil, fmt.Errorf("changefeed metrics: %w", err)
	}
	if _, err = m.Int64ObservableGauge("changefeed.outbox.backlog",
		metric.WithDescription("Outbox events not relayed yet (ready or waiting for their write), at the relay's last count."),
		metric.WithInt64Callback(func(_ context.Context, obs metric.Int64Observer) error {
			obs.Observe(r.backlog.Load())
			return nil
		})); err != nil {
		return nil, fmt.Errorf("changefeed metrics: %w", err)
	}
	return r, nil
}

// Run relays until ctx is done: at once when nudged, else every interval,
// backing off while Redis or MongoDB fail. It returns when ctx is done.
func (r *Relay) Run(ctx context.Context) {
	backoff := r.minBackoff
	failing := false
	for {
		n, err := r.Pass(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := r.interval
		switch {
		case err != nil:
			if !failing {
				r.log.WarnContext(ctx, "change events not relayed; retrying (they stay in the outbox)", "error", err.Error())
			}
			failing = true
			wait = jitter(backoff)
			backoff = min(2*backoff, r.maxBackoff)
		case failing:
			r.log.InfoContext(ctx, "change event relay recovered", "relayed", n)
			failing, backoff = false, r.minBackoff
		}
		if err == nil && n == r.batch {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
			return
		case <-r.out.nudge:
		case <-time.After(wait):
		}
	}
}

// Pass relays the ready events once (at most a batch, oldest first) and
// returns how many it handled. A relayed event is deleted from the outbox
// (the stream holds it now), so the outbox holds only the backlog and the
// poll, which reads the whole collection on the embedded server, costs
// what the backlog is, not the history. Once a minute (and at the first
// pass) it also deletes the records an earlier release marked relayed and
// kept: the migration of the old shape, idempotent.
func (r *Relay) Pass(ctx context.Context) (int, error) {
	now := r.out.now()
	if now.Sub(r.lastCount) >= 10*time.Second {
		if n, err := r.out.coll.CountDocuments(ctx, bson.D{{Key: "relayed", Value: false}}); err == nil {
			r.backlog.Store(n)
			r.lastCount = now
		}
	}
	if now.Sub(r.lastPrune) >= time.Minute {
		if _, err := r.out.coll.DeleteMany(ctx, bson.D{{Key: "relayed", Value: true}}); err != nil {
			return 0, fmt.Errorf("prune the outbox: %w", err)
		}
		r.lastPrune = now
	}
	cur, err := r.out.coll.Find(ctx, bson.D{{Key: "relayed", Value: false}, {Key: "ready_at", Value: bson.D{{Key: "$lte", Value: now}}}},
		options.Find().SetSort(bson.D{{Key: "time", Value: 1}}).SetLimit(int64(r.batch)))
	if err != nil {
		return 0, fmt.Errorf("read the outbox: %w", err)
	}
	var recs []record
	if err := cur.All(ctx, &recs); err != nil {
		return 0, fmt.Errorf("read the outbox: %w", err)
	}
	for i, rec := range recs {
		if err := r.relay(ctx, rec.Event); err != nil {
			return i, err
		}
	}
	if len(recs) > 0 {
		r.backlog.Store(max(0, r.backlog.Load()-int64(len(recs))))
	}
	return len(recs), nil
}

// relay adds one event to the stream under a producer span (a child of the
// write's) and deletes it from the outbox, by _id. A crash or a failure
// between the two leaves the event in the outbox: the next pass adds it
// again, which the stream's dedupe key turns into a duplicate (at least
// once, and once in the stream within its retention).
func (r *Relay) relay(ctx context.Context, e Event) error {
	sctx, span := startSpan(ctx, r.tracer, e.SpanContext(), "send "+e.Topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("messaging.system", "redis"), attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", Stream), attribute.String("messaging.message.id", e.ID),
			attribute.String("changefeed.topic", e.Topic)))
	defer span.End()
	minID := strconv.FormatInt(r.out.now().Add(-r.streamRet).UnixMilli(), 10)
	result := "added"
	err := addOnce.Run(sctx, r.rdb, []string{Stream, keyPrefix + "relayed:" + e.ID},
		r.streamRet.Milliseconds(), minID, e.Encode(), traceparent(sctx)).Err()
	switch {
	case errors.Is(err, redis.Nil):
		result = "duplicate"
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, "not added to the stream")
		return fmt.Errorf("add %s to the stream: %w", e.ID, err)
	}
	if _, err := r.out.coll.DeleteOne(sctx, bson.D{{Key: "_id", Value: e.ID}}); err != nil {
		// Added but not deleted: the next pass finds it a duplicate.
		span.RecordError(err)
		return fmt.Errorf("delete relayed %s from the outbox: %w", e.ID, err)
	}
	span.SetAttributes(attribute.String("changefeed.result", result))
	r.relayed.Add(sctx, 1, metric.WithAttributes(attribute.String("topic", e.Topic), attribute.String("result", result)))
	return nil
}
