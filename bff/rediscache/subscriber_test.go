package rediscache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/rediscache"
	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/testenv"
)

// recordingInvalidator is a fake Invalidator that records the user ids.
type recordingInvalidator struct {
	mu  sync.Mutex
	ids []string
}

var _ rediscache.Invalidator = (*recordingInvalidator)(nil)

func (r *recordingInvalidator) Invalidate(_ context.Context, userID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, userID)
}

func (r *recordingInvalidator) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

// subscribed starts a subscriber of rdb invalidating through inv, waits
// until its subscription is established, and returns it with runSubscriber's
// stop function.
func subscribed(t *testing.T, rdb redis.UniversalClient, inv rediscache.Invalidator, o rediscache.SubscriberOptions) (*rediscache.Subscriber, func() error) {
	t.Helper()
	sub, err := rediscache.NewSubscriber(rdb, inv, o)
	testenv.Must(t, err, "subscriber")
	stop := runSubscriber(t, sub)
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the subscription", sub.Subscribed))
	return sub, stop
}

// runSubscriber starts s and returns a stop function that waits for Run.
func runSubscriber(t *testing.T, s *rediscache.Subscriber) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Error("the subscriber did not stop with its context")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestChangeMessagesEvictTheView(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	subscribed(t, e.rdb, e.cache, rediscache.SubscriberOptions{MeterProvider: e.meter})

	pub := changefeed.NewPublisher(e.rdb, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		channel string
		msg     changefeed.Message
	}{
		{changefeed.CustomerChanged, changefeed.Message{UserID: userA, CustomerID: "c1", Op: "update"}},
		{changefeed.UserChanged, changefeed.Message{UserID: userA, Op: "update"}},
	} {
		e.view(t, userA)
		e.view(t, userB)
		if _, status := e.view(t, userA); status != bff.CacheHit {
			t.Fatalf("%s: not cached before the message: %s", tc.channel, status)
		}
		e.origin.version.Add(1)
		pub.Publish(ctx, tc.channel, tc.msg)
		testenv.Eventually(t, 10*time.Second, testenv.Holds(tc.channel+" to evict the view", func() bool {
			n, err := e.rdb.Exists(ctx, viewKey(userA)).Result()
			return err == nil && n == 0
		}))
		if _, status := e.view(t, userB); status != bff.CacheHit {
			t.Fatalf("%s evicted another user's view", tc.channel)
		}
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the messages to be counted", func() bool {
		return e.counter(t, "bff.cache.change_messages", "result", "invalidated") == 2
	}))
}

func TestMalformedMessagesAreIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	inv := &recordingInvalidator{}
	subscribed(t, e.rdb, inv, rediscache.SubscriberOptions{MeterProvider: e.meter})
	ctx := context.Background()
	for _, payload := range []string{`not json`, `{"op":"update"}`, `{"user_id":"a}b","op":"x"}`, `{"user_id":7}`} {
		if err := e.rdb.Publish(ctx, changefeed.CustomerChanged, payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// A good message after them arrives, and only it is acted on.
	changefeed.NewPublisher(e.rdb, nil).Publish(ctx, changefeed.UserChanged, changefeed.Message{UserID: userB, Op: "delete"})
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the good message", func() bool { return len(inv.got()) == 1 }))
	if got := inv.got(); got[0] != userB {
		t.Fatalf("invalidated %v", got)
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the malformed messages to be counted", func() bool {
		return e.counter(t, "bff.cache.change_messages", "result", "malformed") == 4
	}))
}

func TestSubscriberSurvivesRedisRestarts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	inv := &recordingInvalidator{}
	sub, stop := subscribed(t, e.rdb, inv, rediscache.SubscriberOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})

	ctx := context.Background()
	pub := changefeed.NewPublisher(e.rdb, nil)
	for round := range 2 {
		e.redis.Stop()
		testenv.Eventually(t, 10*time.Second, testenv.Holds("the subscriber to notice the outage", func() bool { return !sub.Subscribed() }))
		if err := e.redis.Start(ctx); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, testenv.Holds("the resubscription", func() bool { return sub.Subscribed() && sub.Subscriptions() == int64(round+2) }))
		pub.Publish(ctx, changefeed.CustomerChanged, changefeed.Message{UserID: userA, Op: "update"})
		testenv.Eventually(t, 10*time.Second, testenv.Holds("a message after the restart", func() bool { return len(inv.got()) == round+1 }))
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if sub.Subscribed() {
		t.Fatal("still subscribed after stop")
	}
}

func TestSubscriberStartsWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.redis.Stop()
	inv := &recordingInvalidator{}
	sub, err := rediscache.NewSubscriber(e.rdb, inv, rediscache.SubscriberOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	testenv.Must(t, err, "subscriber")
	stop := runSubscriber(t, sub)
	if sub.Subscribed() {
		t.Fatal("subscribed to a stopped Redis")
	}
	if err := e.redis.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the first subscription", sub.Subscribed))
	changefeed.NewPublisher(e.rdb, nil).Publish(context.Background(), changefeed.UserChanged, changefeed.Message{UserID: userA, Op: "update"})
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the message", func() bool { return len(inv.got()) == 1 }))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestSubscriberPingsASilentConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	proxy := newStallProxy(t, e.redis.Addr)
	base := newEnv(t, envOptions{sharedRedis: e.redis, redisURL: proxy.url()})
	inv := &recordingInvalidator{}
	sub, _ := subscribed(t, base.rdb, inv, rediscache.SubscriberOptions{HealthCheck: 30 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	// Silence is fine while pings are answered.
	time.Sleep(100 * time.Millisecond)
	if !sub.Subscribed() || sub.Subscriptions() != 1 {
		t.Fatalf("a healthy idle subscription was replaced (%d subscriptions)", sub.Subscriptions())
	}
	// A connection that stops answering (a partition: no reset, no EOF) is
	// detected by the unanswered ping and replaced once traffic flows again.
	proxy.stalled.Store(true)
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the dead connection to be noticed", func() bool { return !sub.Subscribed() }))
	proxy.stalled.Store(false)
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the resubscription", func() bool { return sub.Subscribed() && sub.Subscriptions() >= 2 }))
	changefeed.NewPublisher(e.rdb, nil).Publish(context.Background(), changefeed.UserChanged, changefeed.Message{UserID: userB, Op: "update"})
	testenv.Eventually(t, 10*time.Second, testenv.Holds("a message on the new connection", func() bool { return len(inv.got()) >= 1 }))
}

func TestNewSubscriberValidates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	if _, err := rediscache.NewSubscriber(nil, e.cache, rediscache.SubscriberOptions{}); err == nil {
		t.Fatal("nil client accepted")
	}
	if _, err := rediscache.NewSubscriber(e.rdb, nil, rediscache.SubscriberOptions{}); err == nil {
		t.Fatal("nil invalidator accepted")
	}
}

// The invalidation a message causes is traced as part of the write that
// published it: a consumer span, child of the publisher's span, with the
// cache's invalidation under it. A message from an untraced write starts
// a trace of its own.
func TestChangeMessagesContinueTheWritersTrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	subscribed(t, e.rdb, e.cache, rediscache.SubscriberOptions{TracerProvider: e.tp})

	pub := changefeed.NewPublisher(e.rdb, nil)
	wctx, write := e.tp.Tracer("test").Start(context.Background(), "PATCH /api/v1/customers/profile/")
	pub.Publish(wctx, changefeed.CustomerChanged, changefeed.Message{UserID: userA, CustomerID: "c1", Op: "update"})
	write.End()
	pub.Publish(context.Background(), changefeed.UserChanged, changefeed.Message{UserID: userB, Op: "update"})

	var process, untraced, invalidate sdktrace.ReadOnlySpan
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the spans of both messages", func() bool {
		process, untraced, invalidate = nil, nil, nil
		for _, s := range e.spans.Ended() {
			switch s.Name() {
			case "process " + changefeed.CustomerChanged:
				process = s
			case "process " + changefeed.UserChanged:
				untraced = s
			}
		}
		for _, s := range e.spans.Ended() {
			if s.Name() == "cache.invalidate" && process != nil && s.Parent().SpanID() == process.SpanContext().SpanID() {
				invalidate = s
			}
		}
		return process != nil && untraced != nil && invalidate != nil
	}))
	want := write.SpanContext()
	if process.Parent().TraceID() != want.TraceID() || process.Parent().SpanID() != want.SpanID() || !process.Parent().IsRemote() {
		t.Fatalf("the message's span has parent %v, want the writer's span %v", process.Parent(), want)
	}
	if process.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("the message's span is a %v span, want a consumer", process.SpanKind())
	}
	if untraced.Parent().IsValid() || untraced.SpanContext().TraceID() == want.TraceID() {
		t.Fatalf("an untraced write's message joined a trace: parent %v", untraced.Parent())
	}
}
