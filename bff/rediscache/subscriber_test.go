package rediscache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/rediscache"
	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/testenv"
)

// fakeEvictor is a hand-written fake Evictor: it records the user ids and
// fails while Fail says so.
type fakeEvictor struct {
	mu   sync.Mutex
	ids  []string
	Fail func(userID string) error
}

var _ rediscache.Evictor = (*fakeEvictor)(nil)

func (f *fakeEvictor) Evict(_ context.Context, userID string) error {
	if f.Fail != nil {
		if err := f.Fail(userID); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, userID)
	return nil
}

func (f *fakeEvictor) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...)
}

// subscribed starts a subscriber of rdb evicting through ev, waits until it
// reads the stream, and stops it when the test ends.
func subscribed(t *testing.T, rdb redis.UniversalClient, ev rediscache.Evictor, o rediscache.SubscriberOptions) *rediscache.Subscriber {
	t.Helper()
	sub, err := rediscache.NewSubscriber(rdb, ev, o)
	testenv.Must(t, err, "subscriber")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the subscriber did not stop with its context")
		}
	})
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the subscriber to read the stream", sub.Subscribed))
	return sub
}

// publish adds an event to the change stream as a relay would.
func publish(t *testing.T, rdb redis.UniversalClient, raw string) {
	t.Helper()
	testenv.Must(t, rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: changefeed.Stream, Values: []any{"event", raw}}).Err(), "xadd")
}

func event(id, topic, userID string) string {
	return changefeed.Event{ID: id, Topic: topic, UserID: userID, Op: "update", Time: time.Now()}.Encode()
}

func TestChangeEventsEvictTheView(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	subscribed(t, e.rdb, e.cache, rediscache.SubscriberOptions{MeterProvider: e.meter})
	ctx := context.Background()
	for i, topic := range []string{changefeed.CustomerChanged, changefeed.UserChanged, changefeed.UserDeleted} {
		e.view(t, userA)
		e.view(t, userB)
		if _, status := e.view(t, userA); status != bff.CacheHit {
			t.Fatalf("%s: not cached before the event: %s", topic, status)
		}
		e.origin.version.Add(1)
		publish(t, e.rdb, event(string(rune('a'+i)), topic, userA))
		testenv.Eventually(t, 10*time.Second, testenv.Holds(topic+" to evict the view", func() bool {
			n, err := e.rdb.Exists(ctx, viewKey(userA)).Result()
			return err == nil && n == 0
		}))
		if _, status := e.view(t, userB); status != bff.CacheHit {
			t.Fatalf("%s evicted another user's view", topic)
		}
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the events to be counted", func() bool {
		return e.counter(t, "bff.cache.change_messages", "result", "invalidated") == 3 &&
			e.counter(t, "changefeed.events.delivered", "result", "handled") == 3
	}))
}

// An event delivered again after it was handled (the stream holds it twice)
// changes nothing: the view cached since stays a HIT.
func TestAnEventHandledTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	subscribed(t, e.rdb, e.cache, rediscache.SubscriberOptions{MeterProvider: e.meter})
	e.view(t, userA)
	publish(t, e.rdb, event("same", changefeed.UserChanged, userA))
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the first delivery to evict", func() bool {
		return e.counter(t, "changefeed.events.delivered", "result", "handled") == 1
	}))
	if _, status := e.view(t, userA); status != bff.CacheMiss {
		t.Fatalf("after the event: %s, want a MISS", status)
	}
	publish(t, e.rdb, event("same", changefeed.UserChanged, userA))
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the second delivery to be seen", func() bool {
		return e.counter(t, "changefeed.events.delivered", "result", "duplicate") == 1
	}))
	if _, status := e.view(t, userA); status != bff.CacheHit {
		t.Fatalf("after the same event again: %s, want the view still cached (HIT)", status)
	}
	if got := e.counter(t, "bff.cache.change_messages", "result", "invalidated"); got != 1 {
		t.Fatalf("evicted %d times, want once", got)
	}
}

// A malformed event, one naming no valid user, and one whose eviction keeps
// failing are parked on the dead-letter stream and counted; the good event
// behind them is handled.
func TestPoisonEventsAreParkedAndCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var attempts atomic.Int64
	ev := &fakeEvictor{Fail: func(id string) error {
		if id == userA {
			attempts.Add(1)
			return errors.New("redis unavailable")
		}
		return nil
	}}
	subscribed(t, e.rdb, ev, rediscache.SubscriberOptions{MeterProvider: e.meter, ClaimIdle: 100 * time.Millisecond, MaxAttempts: 3})
	publish(t, e.rdb, `not json`)
	publish(t, e.rdb, event("bad-user", changefeed.CustomerChanged, "a}b"))
	publish(t, e.rdb, event("failing", changefeed.UserChanged, userA))
	publish(t, e.rdb, event("good", changefeed.UserDeleted, userB))
	testenv.Eventually(t, 15*time.Second, testenv.Holds("three events parked", func() bool {
		n, _ := e.rdb.XLen(context.Background(), changefeed.DeadLetter).Result()
		return n == 3
	}))
	if got := ev.got(); len(got) != 1 || got[0] != userB {
		t.Fatalf("evicted %v, want only %s", got, userB)
	}
	if got := attempts.Load(); got != 3 {
		t.Fatalf("the failing eviction was attempted %d times, want 3", got)
	}
	for reason, want := range map[string]int64{"malformed": 1, "rejected": 1, "attempts": 1} {
		if got := e.counter(t, "changefeed.events.parked", "reason", reason); got != want {
			t.Errorf("parked (%s) %d, want %d", reason, got, want)
		}
	}
}

func TestNewSubscriberValidates(t *testing.T) {
	t.Parallel()
	if _, err := rediscache.NewSubscriber(nil, &fakeEvictor{}, rediscache.SubscriberOptions{}); err == nil {
		t.Fatal("no Redis client accepted")
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	if _, err := rediscache.NewSubscriber(rdb, nil, rediscache.SubscriberOptions{}); err == nil {
		t.Fatal("no evictor accepted")
	}
}
