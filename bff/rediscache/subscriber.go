package rediscache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/telemetry"
)

// Group is the BFF's consumer group on the change stream: every event
// reaches one replica of the BFF (the cache is shared by all of them).
const Group = "bff"

// Evictor evicts a user's cached view and reports whether it could; *Cache
// is one.
type Evictor interface {
	Evict(ctx context.Context, userID string) error
}

// SubscriberOptions tune a Subscriber; zero values take the defaults.
type SubscriberOptions struct {
	Logger        *slog.Logger
	MeterProvider metric.MeterProvider
	// TracerProvider traces the handling of each event, as a child of the
	// relay of the write that caused it (default: no tracing).
	TracerProvider trace.TracerProvider
	// Name is this replica's consumer name (default: changefeed.ConsumerName).
	Name string
	// ClaimIdle, MaxAttempts: see changefeed.ConsumerOptions (defaults
	// changefeed.DefaultClaimIdle and DefaultMaxAttempts).
	ClaimIdle   time.Duration
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait between attempts to reach
	// Redis (defaults 100ms and 5s).
	MinBackoff, MaxBackoff time.Duration
}

// Subscriber evicts cached views on the change stream's customer.changed,
// user.changed and user.deleted events, in the consumer group "bff"
// (changefeed.Consumer): at least once, also for events added while no BFF
// ran or Redis was down (they wait in the stream and the producers'
// outboxes). An eviction that fails (Redis or its breaker) leaves the event
// un-acked: it is retried after ClaimIdle and parked after MaxAttempts.
type Subscriber struct {
	consumer *changefeed.Consumer
	ev       Evictor
	logger   *slog.Logger
	messages metric.Int64Counter
}

// topics are the events that change a merged view.
var topics = []string{changefeed.CustomerChanged, changefeed.UserChanged, changefeed.UserDeleted}

// NewSubscriber returns a subscriber that evicts through ev.
func NewSubscriber(rdb redis.UniversalClient, ev Evictor, o SubscriberOptions) (*Subscriber, error) {
	if rdb == nil || ev == nil {
		return nil, errors.New("rediscache: a Redis client and an evictor are required")
	}
	s := &Subscriber{ev: ev, logger: o.Logger}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	var err error
	if s.messages, err = telemetry.Meter(o.MeterProvider, instrumentation).Int64Counter("bff.cache.change_messages",
		metric.WithDescription("Change events handled by topic (attribute channel) and result: invalidated, malformed or failed.")); err != nil {
		return nil, fmt.Errorf("rediscache metrics: %w", err)
	}
	s.consumer, err = changefeed.NewConsumer(rdb, s.handle, changefeed.ConsumerOptions{
		Group: Group, Name: o.Name, Topics: topics, MaxAttempts: o.MaxAttempts, ClaimIdle: o.ClaimIdle,
		MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff,
		Logger: s.logger, MeterProvider: o.MeterProvider, TracerProvider: o.TracerProvider,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Subscribed reports whether the subscriber is reading the stream.
func (s *Subscriber) Subscribed() bool { return s.consumer.Reading() }

// Name is the subscriber's consumer name in the group.
func (s *Subscriber) Name() string { return s.consumer.Name() }

// Run consumes until ctx is cancelled, reconnecting with backoff whenever
// Redis fails. It returns nil once ctx is done.
func (s *Subscriber) Run(ctx context.Context) error { return s.consumer.Run(ctx) }

// handle evicts the view of the event's user.
func (s *Subscriber) handle(ctx context.Context, e changefeed.Event) error {
	channel := metric.WithAttributes(attribute.String("channel", e.Topic))
	if !validID(e.UserID) {
		s.messages.Add(ctx, 1, channel, metric.WithAttributes(attribute.String("result", "malformed")))
		return fmt.Errorf("%w: no valid user id", changefeed.ErrReject)
	}
	if err := s.ev.Evict(ctx, e.UserID); err != nil {
		s.messages.Add(ctx, 1, channel, metric.WithAttributes(attribute.String("result", "failed")))
		return err
	}
	s.messages.Add(ctx, 1, channel, metric.WithAttributes(attribute.String("result", "invalidated")))
	s.logger.DebugContext(ctx, "view invalidated by change event", "topic", e.Topic, "op", e.Op, "user_id", e.UserID, "event_id", e.ID)
	return nil
}
