package changefeed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/bson"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/redisconn"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// feed is an outbox on a fresh database, a relay and a Redis.
type feed struct {
	redis  *embedded.Redis // nil when the test started its Redis itself
	rdb    redis.UniversalClient
	outbox *Outbox
	relay  *Relay
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newFeed(t *testing.T, r *embedded.Redis) *feed {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the embedded FerretDB and a Redis: not in the fast tier (-short)")
	}
	if r == nil {
		r = testenv.Redis(t)
	}
	f := newFeedAt(t, r.URL)
	f.redis = r
	return f
}

// newFeedAt is a feed on the Redis at url (any REDIS_URL form), which the
// test started.
func newFeedAt(t *testing.T, url string) *feed {
	t.Helper()
	_, db := testenv.Mongo(t)
	f := &feed{reader: sdkmetric.NewManualReader()}
	f.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.reader))
	var err error
	f.rdb, err = redisconn.Open(url, redisconn.Options{})
	testenv.Must(t, err, "redis client")
	t.Cleanup(func() { _ = f.rdb.Close() })
	ctx := context.Background()
	f.outbox, err = NewOutbox(ctx, db, OutboxOptions{MeterProvider: f.mp, Grace: time.Hour})
	testenv.Must(t, err, "outbox")
	f.relay, err = NewRelay(f.outbox, f.rdb, RelayOptions{MeterProvider: f.mp, Interval: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	testenv.Must(t, err, "relay")
	return f
}

// write records an event of a write that succeeds.
func (f *feed) write(t *testing.T, userID string) {
	t.Helper()
	testenv.Must(t, f.outbox.Record(context.Background(), Event{Topic: UserChanged, UserID: userID, Op: "update"},
		func() (bool, error) { return true, nil }, nil), "record")
}

// consume runs a consumer of group with h until the test ends.
func (f *feed) consume(t *testing.T, group string, h Handler, o ConsumerOptions) *Consumer {
	t.Helper()
	o.Group = group
	o.MeterProvider = f.mp
	if o.ClaimIdle == 0 {
		o.ClaimIdle = 200 * time.Millisecond
	}
	o.MinBackoff, o.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	c, err := NewConsumer(f.rdb, h, o)
	testenv.Must(t, err, "consumer")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// sum is the total of an int64 counter or gauge, over the points whose
// attributes include want.
func (f *feed) sum(t *testing.T, name string, want map[string]string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	testenv.Must(t, f.reader.Collect(context.Background(), &rm), "collect")
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				points = d.DataPoints
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			}
		next:
			for _, p := range points {
				for k, v := range want {
					if got, ok := p.Attributes.Value(attributeKey(k)); !ok || got.AsString() != v {
						continue next
					}
				}
				n += p.Value
			}
		}
	}
	return n
}

// recorder is a handler that remembers the user ids it was given.
type recorder struct {
	mu   sync.Mutex
	ids  []string
	fail func(Event) error
}

func (r *recorder) handle(_ context.Context, e Event) error {
	if r.fail != nil {
		if err := r.fail(e); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, e.UserID)
	return nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

func (r *recorder) count(id string) int {
	n := 0
	for _, g := range r.got() {
		if g == id {
			n++
		}
	}
	return n
}

// The event is in the outbox before the write runs, and only ready once it
// succeeded; a write that certainly failed or changed nothing leaves no
// event, an uncertain failure leaves it pending (relayed after the grace).
func TestRecordWritesTheEventFirst(t *testing.T) {
	t.Parallel()
	f := newFeed(t, nil)
	ctx := context.Background()
	coll := f.outbox.coll
	find := func() []record {
		var recs []record
		cur, err := coll.Find(ctx, bson.D{})
		testenv.Must(t, err, "find")
		testenv.Must(t, cur.All(ctx, &recs), "decode")
		return recs
	}
	testenv.Must(t, f.outbox.Record(ctx, Event{Topic: UserDeleted, UserID: "u1", Op: "delete"}, func() (bool, error) {
		recs := find()
		if len(recs) != 1 || recs[0].UserID != "u1" || recs[0].Topic != UserDeleted || !recs[0].ReadyAt.After(time.Now().Add(30*time.Minute)) {
			t.Errorf("during the write the outbox holds %+v, want the pending event", recs)
		}
		return true, nil
	}, nil), "record")
	recs := find()
	if len(recs) != 1 || recs[0].ReadyAt.After(time.Now()) || recs[0].ID == "" || recs[0].Time.IsZero() {
		t.Fatalf("after the write: %+v, want one ready event", recs)
	}
	testenv.Must(t, coll.Drop(ctx), "drop")

	refused := errors.New("refused")
	if err := f.outbox.Record(ctx, Event{Topic: UserChanged, UserID: "u2"}, func() (bool, error) { return false, refused },
		func(err error) bool { return errors.Is(err, refused) }); !errors.Is(err, refused) {
		t.Fatalf("Record returned %v, want the write's error", err)
	}
	testenv.Must(t, f.outbox.Record(ctx, Event{Topic: UserChanged, UserID: "u3"}, func() (bool, error) { return false, nil }, nil), "record")
	if recs := find(); len(recs) != 0 {
		t.Fatalf("a refused or empty write left %+v", recs)
	}
	unknown := errors.New("timeout")
	_ = f.outbox.Record(ctx, Event{Topic: UserChanged, UserID: "u4"}, func() (bool, error) { return false, unknown }, nil)
	if recs := find(); len(recs) != 1 || recs[0].UserID != "u4" || recs[0].ReadyAt.Before(time.Now().Add(30*time.Minute)) {
		t.Fatalf("an uncertain failure left %+v, want its event pending", recs)
	}
	if n, err := f.relay.Pass(ctx); err != nil || n != 0 {
		t.Fatalf("the relay relayed %d pending events (%v), want none before the grace", n, err)
	}

	// No event, no write.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	ran := false
	if err := f.outbox.Record(cctx, Event{Topic: UserChanged, UserID: "u5"}, func() (bool, error) { ran = true; return true, nil }, nil); err == nil || ran {
		t.Fatalf("Record with the outbox unreachable: err %v, write ran %v; want an error and no write", err, ran)
	}
}

// An event written while Redis is down stays in the outbox and reaches the
// consumers once Redis is back (the group is recreated: Redis lost it).
func TestEventsWrittenWhileRedisIsDownAreDelivered(t *testing.T) {
	t.Parallel()
	f := newFeed(t, nil)
	rec := &recorder{}
	f.consume(t, "g", rec.handle, ConsumerOptions{})
	f.write(t, "before")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.relay.Run(ctx)
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the first event to be handled", func() bool { return rec.count("before") == 1 }))

	f.redis.Stop()
	f.write(t, "during")
	time.Sleep(200 * time.Millisecond) // the relay fails meanwhile
	testenv.Must(t, f.redis.Start(context.Background()), "restart Redis")
	testenv.Eventually(t, 15*time.Second, testenv.Holds("the event written during the outage to be handled", func() bool { return rec.count("during") == 1 }))
	// The relay counts an event once it is out of the outbox, which may be
	// after a consumer handled it.
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := f.sum(t, "changefeed.events.relayed", map[string]string{"result": "added"}); got != 2 {
			return fmt.Errorf("relayed %d, want 2", got)
		}
		return nil
	})
}

// Two relays on one outbox add each event to the stream once.
func TestTwoRelaysAddEachEventOnce(t *testing.T) {
	t.Parallel()
	f := newFeed(t, nil)
	second, err := NewRelay(f.outbox, f.rdb, RelayOptions{Interval: 5 * time.Millisecond})
	testenv.Must(t, err, "relay")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.relay.Run(ctx)
	go second.Run(ctx)
	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f.write(t, "user-"+string(rune('A'+i))) })
	}
	wg.Wait()
	testenv.Eventually(t, 15*time.Second, testenv.Holds("every event relayed", func() bool {
		c, err := f.outbox.coll.CountDocuments(ctx, bson.D{{Key: "relayed", Value: false}})
		return err == nil && c == 0
	}))
	entries, err := f.rdb.XRange(ctx, Stream, "-", "+").Result()
	testenv.Must(t, err, "xrange")
	seen := map[string]int{}
	for _, m := range entries {
		e, err := Decode(m.Values["event"].(string))
		testenv.Must(t, err, "decode")
		seen[e.ID]++
	}
	if len(entries) != n || len(seen) != n {
		t.Fatalf("the stream has %d entries of %d events, want %d of %d", len(entries), len(seen), n, n)
	}
}

// addEntry adds an entry to the stream directly (as a relay would).
func addEntry(t *testing.T, rdb redis.UniversalClient, raw string) {
	t.Helper()
	testenv.Must(t, rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: Stream, Values: []any{"event", raw}}).Err(), "xadd")
}

// An event delivered twice (the stream holds it twice, or it was redelivered
// after its handling) is handled once.
func TestAnEventHandledTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFeed(t, nil)
	rec := &recorder{}
	e := Event{ID: "e1", Topic: CustomerChanged, UserID: "u1", CustomerID: "c1", Op: "update", Time: time.Now()}
	addEntry(t, f.rdb, e.Encode())
	addEntry(t, f.rdb, e.Encode())
	addEntry(t, f.rdb, Event{ID: "e2", Topic: UserChanged, UserID: "u2", Op: "update", Time: time.Now()}.Encode())
	f.consume(t, "g", rec.handle, ConsumerOptions{})
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the events to be consumed", func() bool { return rec.count("u2") == 1 }))
	time.Sleep(100 * time.Millisecond)
	if got := rec.count("u1"); got != 1 {
		t.Fatalf("the duplicated event was handled %d times", got)
	}
	if got := f.sum(t, "changefeed.events.delivered", map[string]string{"result": "duplicate"}); got != 1 {
		t.Fatalf("duplicates counted %d, want 1", got)
	}
	// Another group gets every event too.
	other := &recorder{}
	f.consume(t, "other", other.handle, ConsumerOptions{Topics: []string{UserChanged}})
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the other group to get its topic", func() bool { return other.count("u2") == 1 }))
	if other.count("u1") != 0 {
		t.Fatal("a topic the group does not want was handled")
	}
}

// An event whose handler keeps failing is retried, then parked and
// counted; a malformed one is parked at once; the others go on.
func TestPoisonEventsAreParked(t *testing.T) {
	t.Parallel()
	f := newFeed(t, nil)
	var attempts atomic.Int64
	rec := &recorder{fail: func(e Event) error {
		if e.UserID == "poison" {
			attempts.Add(1)
			return errors.New("cannot handle")
		}
		return nil
	}}
	addEntry(t, f.rdb, Event{ID: "p", Topic: UserChanged, UserID: "poison", Time: time.Now()}.Encode())
	addEntry(t, f.rdb, "{not json")
	addEntry(t, f.rdb, Event{ID: "ok", Topic: UserChanged, UserID: "fine", Time: time.Now()}.Encode())
	f.consume(t, "g", rec.handle, ConsumerOptions{MaxAttempts: 3, ClaimIdle: 100 * time.Millisecond})
	testenv.Eventually(t, 15*time.Second, testenv.Holds("two events parked", func() bool {
		n, _ := f.rdb.XLen(context.Background(), DeadLetter).Result()
		return n == 2
	}))
	if got := attempts.Load(); got != 3 {
		t.Fatalf("the poison event was attempted %d times, want 3", got)
	}
	if rec.count("fine") != 1 {
		t.Fatal("the good event after the poison one was not handled")
	}
	if got := f.sum(t, "changefeed.events.parked", map[string]string{"reason": "attempts"}); got != 1 {
		t.Fatalf("parked (attempts) %d, want 1", got)
	}
	if got := f.sum(t, "changefeed.events.parked", map[string]string{"reason": "malformed"}); got != 1 {
		t.Fatalf("parked (malformed) %d, want 1", got)
	}
	if got := f.sum(t, "changefeed.events.redelivered", nil); got != 3 {
		t.Fatalf("redelivered %d, want 3 (the poison event's second and third attempt, and the fourth delivery that parks it)", got)
	}
	dead, err := f.rdb.XRange(context.Background(), DeadLetter, "-", "+").Result()
	testenv.Must(t, err, "dead letters")
	if dead[0].Values["group"] != "g" || dead[0].Values["reason"] == "" {
		t.Fatalf("dead letter %v", dead[0].Values)
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("nothing pending", func() bool {
		p, err := f.rdb.XPending(context.Background(), Stream, "g").Result()
		return err == nil && p.Count == 0
	}))
}

// What a consumer read and never acked (it died) is handled by another
// consumer of the group after ClaimIdle.
func TestAnotherConsumerTakesOverWhatADeadOneLeft(t *testing.T) {
	t.Parallel()
	f := newFeed(t, nil)
	ctx := context.Background()
	testenv.Must(t, f.rdb.XGroupCreateMkStream(ctx, Stream, "g", "0").Err(), "group")
	addEntry(t, f.rdb, Event{ID: "e", Topic: UserChanged, UserID: "orphan", Time: time.Now()}.Encode())
	// The dead consumer read it and never acked.
	if _, err := f.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "dead", Streams: []string{Stream, ">"}}).Result(); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	c := f.consume(t, "g", rec.handle, ConsumerOptions{ClaimIdle: 150 * time.Millisecond})
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the dead consumer's event handled", func() bool { return rec.count("orphan") == 1 }))
	if !c.Reading() {
		t.Fatal("the consumer does not report reading")
	}
	if got := f.sum(t, "changefeed.events.redelivered", nil); got != 1 {
		t.Fatalf("redelivered %d, want 1", got)
	}
}

// The relay's and the consumer's spans continue the write's trace.
func TestEventsCarryTheWritesTraceContext(t *testing.T) {
	t.Parallel()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; traceparent(ctx) != want {
		t.Fatalf("traceparent %q, want %q", traceparent(ctx), want)
	}
	e, err := Decode(Event{ID: "1", Topic: UserChanged, Traceparent: traceparent(ctx)}.Encode())
	testenv.Must(t, err, "decode")
	if got := e.SpanContext(); !got.IsRemote() || got.TraceID() != tid || got.SpanID() != sid || !got.IsSampled() {
		t.Fatalf("span context %+v, want the remote %s/%s, sampled", got, tid, sid)
	}
	if traceparent(context.Background()) != "" {
		t.Fatal("an untraced write has a traceparent")
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		if spanContext(bad).IsValid() {
			t.Errorf("traceparent %q gave a valid span context", bad)
		}
	}
	for _, bad := range []string{"", "{}", `{"id":"x"}`, "[1]"} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q) accepted it", bad)
		}
	}
}

// The commands the feed needs, on miniredis (the fallback when no
// redis-server is installed): the tests above run there too when it is the
// only Redis; this one checks it explicitly.
func TestMiniredisSupportsTheFeed(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("not in the fast tier (-short)")
	}
	r, err := embedded.StartRedis(context.Background(), "127.0.0.1:0", false)
	testenv.Must(t, err, "miniredis")
	t.Cleanup(r.Stop)
	f := newFeed(t, r)
	rec := &recorder{}
	f.consume(t, "g", rec.handle, ConsumerOptions{})
	f.write(t, "mini")
	if _, err := f.relay.Pass(context.Background()); err != nil {
		t.Skipf("miniredis lacks what the relay needs (EVAL of XADD with MINID): %v", err)
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the event handled on miniredis", func() bool { return rec.count("mini") == 1 }))
}

func attributeKey(k string) attribute.Key { return attribute.Key(k) }

func TestOpenProducerOnlyWithRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded FerretDB and a Redis: not in the fast tier (-short)")
	}
	ctx := context.Background()
	_, db := testenv.Mongo(t)
	none, err := redisconn.OpenIfSet("", redisconn.Options{}) // without REDIS_URL
	testenv.Must(t, err, "no redis")
	out, relay, err := OpenProducer(ctx, db, none, ProducerOptions{})
	if err != nil || out != nil || relay != nil {
		t.Fatalf("without Redis: outbox %v, relay %v, err %v; want neither and no error", out, relay, err)
	}
	rdb, err := redisconn.Open(testenv.Redis(t).URL, redisconn.Options{})
	testenv.Must(t, err, "redis client")
	t.Cleanup(func() { _ = rdb.Close() })
	out, relay, err = OpenProducer(ctx, db, rdb, ProducerOptions{})
	if err != nil || out == nil || relay == nil {
		t.Fatalf("with Redis: outbox %v, relay %v, err %v; want both", out, relay, err)
	}
	testenv.Must(t, out.Record(ctx, Event{Topic: UserChanged, UserID: "0b3c6f1e-8d2a-4c3b-9e7f-1a2b3c4d5e6f", Op: "update"},
		func() (bool, error) { return true, nil }, nil), "record through the opened outbox")
}

// The outbox holds only what is not relayed yet: a relayed event is
// deleted (the stream holds it), and the records an earlier release marked
// relayed and kept are removed by the first pass. So the relay's poll, a
// scan on the embedded server, costs what the backlog is, not the history.
func TestTheOutboxKeepsOnlyTheBacklog(t *testing.T) {
	t.Parallel()
	f := newFeed(t, nil)
	ctx := context.Background()
	coll := f.outbox.coll
	// Written by the previous release: relayed and kept for an hour.
	old := time.Now().UTC().Add(-time.Minute)
	for i := range 5 {
		_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("old-%d", i)}, {Key: "topic", Value: UserChanged},
			{Key: "user_id", Value: "u"}, {Key: "op", Value: "update"}, {Key: "time", Value: old},
			{Key: "ready_at", Value: old}, {Key: "relayed", Value: true}, {Key: "relayed_at", Value: old}})
		testenv.Must(t, err, "insert an old-shape record")
	}
	f.write(t, "a")
	f.write(t, "b")
	if n, err := f.relay.Pass(ctx); err != nil || n != 2 {
		t.Fatalf("relayed %d (%v), want 2", n, err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Fatalf("the outbox holds %d records after the pass (%v), want none", n, err)
	}
	if n, _ := f.rdb.XLen(ctx, Stream).Result(); n != 2 {
		t.Fatalf("the stream has %d entries, want 2", n)
	}
	// A record relayed but not deleted (the delete failed) is found again
	// and added once: the stream's dedupe key says it is there.
	f.write(t, "c")
	var rec record
	testenv.Must(t, coll.FindOne(ctx, bson.D{{Key: "user_id", Value: "c"}}).Decode(&rec), "find c")
	testenv.Must(t, f.relay.relay(ctx, rec.Event), "relay c")
	_, err := coll.InsertOne(ctx, rec)
	testenv.Must(t, err, "put c back, as if its delete had failed")
	if n, err := f.relay.Pass(ctx); err != nil || n != 1 {
		t.Fatalf("second pass handled %d (%v), want 1", n, err)
	}
	if n, _ := f.rdb.XLen(ctx, Stream).Result(); n != 3 {
		t.Fatalf("the stream has %d entries, want 3 (c once)", n)
	}
	if n, _ := coll.CountDocuments(ctx, bson.D{}); n != 0 {
		t.Fatalf("the outbox holds %d records, want none", n)
	}
}
