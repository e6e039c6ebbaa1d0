package changefeed

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/acme/customer-platform/internal/testenv"
)

// The feed on a real Redis Cluster of three masters (REDIS_URL
// redis-cluster://...): two relays add each event once (the script's
// stream and marker keys share the {changefeed} slot), two consumers of a
// group and one of another each handle every event once, what a dead
// consumer read and never acknowledged is claimed (XAUTOCLAIM) and handled
// by a live one, and a poison event is parked on the dead-letter stream.
// Every key of the feed lands on one master: no command of the feed spans
// slots. Skipped only when redis-server is not installed.
func TestTheFeedOnARedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded FerretDB and a Redis Cluster: not in the fast tier (-short)")
	}
	t.Parallel()
	cluster := testenv.RedisCluster(t)
	f := newFeedAt(t, cluster.URL)
	if _, ok := f.rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("redisconn.Open(%q) gave a %T, want a cluster client", cluster.URL, f.rdb)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// A consumer of group g that died: it read the first event and never
	// acknowledged it.
	testenv.Must(t, f.rdb.XGroupCreateMkStream(ctx, Stream, "g", "0").Err(), "create group g")
	addEntry(t, f.rdb, Event{ID: "orphan", Topic: UserChanged, UserID: "orphan", Time: time.Now()}.Encode())
	if _, err := f.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "dead", Streams: []string{Stream, ">"}}).Result(); err != nil {
		t.Fatalf("the dead consumer's read: %v", err)
	}
	// A poison event: its handler fails every time.
	addEntry(t, f.rdb, Event{ID: "poison", Topic: UserChanged, UserID: "poison", Time: time.Now()}.Encode())

	var poisoned atomic.Int64
	fail := func(e Event) error {
		if e.UserID == "poison" {
			poisoned.Add(1)
			return errors.New("cannot handle")
		}
		return nil
	}
	g1, g2, h := &recorder{fail: fail}, &recorder{fail: fail}, &recorder{}
	o := ConsumerOptions{MaxAttempts: 2, ClaimIdle: 150 * time.Millisecond}
	f.consume(t, "g", g1.handle, o)
	f.consume(t, "g", g2.handle, o)
	f.consume(t, "h", h.handle, ConsumerOptions{Topics: []string{UserChanged}})

	second, err := NewRelay(f.outbox, f.rdb, RelayOptions{Interval: 5 * time.Millisecond})
	testenv.Must(t, err, "second relay")
	go f.relay.Run(ctx)
	go second.Run(ctx)
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f.write(t, fmt.Sprintf("user-%02d", i)) })
	}
	wg.Wait()

	handledOnce := func(recs ...*recorder) error {
		for i := range n {
			id := fmt.Sprintf("user-%02d", i)
			total := 0
			for _, r := range recs {
				total += r.count(id)
			}
			if total != 1 {
				return fmt.Errorf("%s handled %d times", id, total)
			}
		}
		return nil
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		if err := handledOnce(g1, g2); err != nil {
			return fmt.Errorf("group g: %w", err)
		}
		if err := handledOnce(h); err != nil {
			return fmt.Errorf("group h: %w", err)
		}
		if g1.count("orphan")+g2.count("orphan") != 1 || h.count("orphan") != 1 {
			return fmt.Errorf("the dead consumer's event handled %d times in g, %d in h; want once in each",
				g1.count("orphan")+g2.count("orphan"), h.count("orphan"))
		}
		if n, err := f.rdb.XLen(ctx, DeadLetter).Result(); err != nil || n != 1 {
			return fmt.Errorf("%d events parked (%v), want the poison one", n, err)
		}
		return nil
	})
	if got := poisoned.Load(); got != 2 {
		t.Errorf("the poison event was attempted %d times, want MaxAttempts (2)", got)
	}
	if got := f.sum(t, "changefeed.events.redelivered", map[string]string{"group": "g"}); got < 2 {
		t.Errorf("redelivered in group g: %d, want at least 2 (the dead consumer's event, the poison event's)", got)
	}
	c, err := f.outbox.coll.CountDocuments(ctx, bson.D{})
	testenv.Must(t, err, "outbox count")
	entries, err := f.rdb.XLen(ctx, Stream).Result()
	testenv.Must(t, err, "XLEN")
	if c != 0 || entries != n+2 {
		t.Errorf("the outbox holds %d events and the stream %d entries; want 0 and %d (each event added once)", c, entries, n+2)
	}
	for _, group := range []string{"g", "h"} {
		p, err := f.rdb.XPending(ctx, Stream, group).Result()
		if err != nil || p.Count != 0 {
			t.Errorf("group %s: %v pending (%v), want none", group, p, err)
		}
	}

	// Every key of the feed on one master.
	cc := f.rdb.(*redis.ClusterClient)
	var mu sync.Mutex
	holders := 0
	var keys []string
	testenv.Must(t, cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		ks, err := m.Keys(ctx, "*").Result()
		mu.Lock()
		defer mu.Unlock()
		if len(ks) > 0 {
			holders++
			keys = append(keys, ks...)
		}
		return err
	}), "KEYS on each master")
	if holders != 1 {
		t.Errorf("the feed's keys are on %d masters, want one (one hash slot): %v", holders, keys)
	}
}
