package rediscache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/acme/customer-platform/internal/changefeed"
)

// Invalidator evicts a user's cached view; *Cache is one.
type Invalidator interface {
	Invalidate(ctx context.Context, userID string)
}

// SubscriberOptions tune a Subscriber; zero values take the defaults.
type SubscriberOptions struct {
	Logger        *slog.Logger
	MeterProvider metric.MeterProvider
	// TracerProvider traces the handling of each message, as a child of the
	// write that published it (default: no tracing).
	TracerProvider trace.TracerProvider
	// HealthCheck is how long the subscription may be silent before it is
	// pinged; a ping unanswered for as long again means the connection is
	// dead and it is replaced (default 15s).
	HealthCheck time.Duration
	// MinBackoff and MaxBackoff bound the wait between resubscription
	// attempts while Redis is unreachable (defaults 100ms and 5s).
	MinBackoff, MaxBackoff time.Duration
}

// Subscriber evicts cached views on the customer.changed and user.changed
// notifications. It resubscribes by itself after Redis restarts or the
// connection breaks; messages published while it was not subscribed are
// lost, and the cache TTL bounds the staleness they could leave.
type Subscriber struct {
	rdb        redis.UniversalClient
	inv        Invalidator
	logger     *slog.Logger
	health     time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	subscribed atomic.Bool
	sessions   atomic.Int64
	messages   metric.Int64Counter
	tracer     trace.Tracer
}

// Channels are the change feeds a Subscriber listens to.
var channels = []string{changefeed.CustomerChanged, changefeed.UserChanged}

// NewSubscriber returns a subscriber that invalidates through inv.
func NewSubscriber(rdb redis.UniversalClient, inv Invalidator, o SubscriberOptions) (*Subscriber, error) {
	if rdb == nil || inv == nil {
		return nil, errors.New("rediscache: a Redis client and an invalidator are required")
	}
	s := &Subscriber{rdb: rdb, inv: inv, logger: o.Logger, health: o.HealthCheck, minBackoff: o.MinBackoff, maxBackoff: o.MaxBackoff}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.health <= 0 {
		s.health = 15 * time.Second
	}
	if s.minBackoff <= 0 {
		s.minBackoff = 100 * time.Millisecond
	}
	if s.maxBackoff < s.minBackoff {
		s.maxBackoff = max(5*time.Second, s.minBackoff)
	}
	mp := o.MeterProvider
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	tp := o.TracerProvider
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	s.tracer = tp.Tracer(instrumentation)
	var err error
	if s.messages, err = mp.Meter(instrumentation).Int64Counter("bff.cache.change_messages",
		metric.WithDescription("Change notifications received by channel and result: invalidated or malformed.")); err != nil {
		return nil, fmt.Errorf("rediscache metrics: %w", err)
	}
	return s, nil
}

// Subscribed reports whether the subscription is currently established.
func (s *Subscriber) Subscribed() bool { return s.subscribed.Load() }

// Subscriptions counts the subscriptions established so far (1 after the
// first, more after each resubscription).
func (s *Subscriber) Subscriptions() int64 { return s.sessions.Load() }

// Run listens until ctx is cancelled, resubscribing with backoff whenever
// the subscription is lost. It returns nil once ctx is done.
func (s *Subscriber) Run(ctx context.Context) error {
	backoff := s.minBackoff
	failing := false
	for ctx.Err() == nil {
		established, err := s.session(ctx)
		s.subscribed.Store(false)
		if ctx.Err() != nil {
			break
		}
		if established {
			backoff = s.minBackoff
		}
		if !failing || established {
			s.logger.WarnContext(ctx, "change feed subscription lost; resubscribing (views changed meanwhile expire with the cache TTL)",
				"error", err.Error())
		}
		failing = true
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		backoff = min(2*backoff, s.maxBackoff)
	}
	s.logger.InfoContext(context.WithoutCancel(ctx), "change feed subscriber stopped")
	return nil
}

// session subscribes and handles messages until the connection fails or
// ctx is done; established reports whether the subscription was confirmed.
func (s *Subscriber) session(ctx context.Context) (established bool, err error) {
	ps := s.rdb.Subscribe(ctx)
	defer ps.Close()
	// A blocked read does not watch ctx: closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()

	if err := ps.Subscribe(ctx, channels...); err != nil {
		return false, fmt.Errorf("subscribe: %w", err)
	}
	confirmed := map[string]bool{}
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, s.health)
		if err != nil {
			if isTimeout(err) && !pinged {
				if perr := ps.Ping(ctx); perr != nil {
					return established, fmt.Errorf("ping: %w", perr)
				}
				pinged = true
				continue
			}
			if isTimeout(err) {
				err = errors.New("no answer to a ping")
			}
			return established, err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				confirmed[m.Channel] = true
			}
			if !established && len(confirmed) == len(channels) {
				established = true
				s.subscribed.Store(true)
				s.sessions.Add(1)
				s.logger.InfoContext(ctx, "change feed subscribed", "channels", channels)
			}
		case *redis.Message:
			s.handle(ctx, m)
		case *redis.Pong:
		}
	}
}

// handle processes one message under a consumer span: a child of the write
// that published it when the message says which (one trace then shows the
// write and the invalidations it caused, in every BFF replica), else a
// root. The subscription's own context is only its lifetime.
func (s *Subscriber) handle(ctx context.Context, m *redis.Message) {
	cm, err := changefeed.Decode(m.Payload)
	parent := context.WithoutCancel(ctx)
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "redis"), attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", m.Channel))}
	if sc := cm.SpanContext(); sc.IsValid() {
		parent = trace.ContextWithRemoteSpanContext(parent, sc)
	} else {
		opts = append(opts, trace.WithNewRoot())
	}
	ctx, span := s.tracer.Start(parent, "process "+m.Channel, opts...)
	defer span.End()
	if err != nil || !validID(cm.UserID) {
		span.SetStatus(codes.Error, "malformed change notification")
		s.messages.Add(ctx, 1, metric.WithAttributes(attribute.String("channel", m.Channel), attribute.String("result", "malformed")))
		s.logger.WarnContext(ctx, "malformed change notification ignored", "channel", m.Channel)
		return
	}
	span.SetAttributes(attribute.String("changefeed.op", cm.Op))
	s.inv.Invalidate(ctx, cm.UserID)
	s.messages.Add(ctx, 1, metric.WithAttributes(attribute.String("channel", m.Channel), attribute.String("result", "invalidated")))
	s.logger.DebugContext(ctx, "view invalidated by change notification", "channel", m.Channel, "op", cm.Op, "user_id", cm.UserID)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
