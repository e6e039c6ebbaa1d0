package rediscache

import (
	"context"
	"errors"
	"sync"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/bff/breaker"
)

// Lookups of concurrent requests share Redis round trips. A lookup that
// finds fewer than maxRoundTrips round trips in flight starts one at once
// (a request alone never waits); otherwise it queues, and the next round
// trip carries every lookup queued meanwhile as one pipeline. Under load
// many views then ride one write and one read: on both sides, Redis and
// the BFF, the system calls, the connection checkout and the client-span
// bookkeeping are paid per round trip rather than per request (they are
// most of a hit's cost: see BENCHMARKS.md).
//
// Each round trip goes through the breaker and is bounded by the cache's
// Redis timeout, detached from the cancellation of the request that
// happened to start it (it carries others' lookups). A lookup therefore
// waits at most for the round trip in flight ahead of it and its own; a
// caller that goes away stops waiting at once. The breaker's half-open
// probe is never waited for (see get): an open breaker costs nothing.

// maxRoundTrips bounds the concurrent lookup round trips of one cache:
// one, so that under load everything that queues behind it goes together.
const maxRoundTrips = 1

// errProbing answers a lookup made while the breaker probes Redis.
var errProbing = errors.New("rediscache: Redis is being probed after an outage")

// lookup is one request's MGET of its view and generation keys (one hash
// slot: {<user id>}), and the cache's epoch read in the same round trip.
type lookup struct {
	ctx  context.Context // the request's: a round trip's span goes under its first lookup's
	keys [2]string
	vals []any
	err  error
	done chan struct{}
}

// lookups queues and batches the lookups of one cache.
type lookups struct {
	c *Cache

	mu       sync.Mutex
	queue    []*lookup
	inflight int
}

// get returns the values of view, gen and the epoch, sharing a round trip
// with the lookups of concurrent requests.
func (b *lookups) get(ctx context.Context, view, gen string) ([]any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // a caller that is gone costs Redis nothing
	}
	// A half-open breaker lets one round trip through as its probe: it is
	// made, but no request waits for it (against a Redis that is still
	// down it lasts the whole timeout). The request is answered from the
	// origins at once; the probe's outcome closes or reopens the breaker.
	probing := b.c.breaker.State(ctx) == breaker.HalfOpen
	l := &lookup{ctx: ctx, keys: [2]string{view, gen}, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, l)
	if b.inflight < maxRoundTrips {
		b.inflight++
		batch := b.queue
		b.queue = nil
		b.mu.Unlock()
		go b.run(batch)
	} else {
		b.mu.Unlock()
	}
	if probing {
		return nil, errProbing
	}
	select {
	case <-l.done:
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return l.vals, l.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run makes round trips, the first with batch, then with whatever queued
// meanwhile, until nothing is queued; then it frees its slot.
func (b *lookups) run(batch []*lookup) {
	for {
		b.roundTrip(batch)
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.inflight--
			b.mu.Unlock()
			return
		}
		batch = b.queue
		b.queue = nil
		b.mu.Unlock()
	}
}

// roundTrip sends the batch's MGETs, and one GET of the epoch after them,
// as one pipeline through the breaker, and delivers each lookup's values
// (view, generation, epoch) or the round trip's error.
//
// The epoch is its own command: it lives in another hash slot than any
// user's keys, and a Redis Cluster refuses a command whose keys span slots
// (CROSSSLOT). On one node the pipeline runs it after the MGETs; a
// cluster client sends each node its part of the pipeline at once, so
// there the order is not given, and it need not be. What a hit must never
// be is a view cached before the last move of the epoch, served by a
// lookup that started after that move: every command of such a lookup's
// round trip runs after the move, whatever their order, so it reads the
// moved epoch and any entry of the old one is a miss. An entry tagged
// with the moved epoch was written by a load whose own lookup read it, so
// whose origin reads came after the move (load runs after the lookup's
// round trip). A lookup that overlaps the move may serve what it would
// have served just before it, as it could when it read both in one MGET.
func (b *lookups) roundTrip(batch []*lookup) {
	c := b.c
	ctx := context.WithoutCancel(batch[0].ctx)
	if len(batch) > 1 {
		trace.SpanFromContext(ctx).AddEvent("cache.lookup_batch", trace.WithAttributes(attribute.Int("cache.batch_size", len(batch))))
	}
	var epoch *redis.StringCmd
	cmds, err := breaker.Call(ctx, c.breaker, func(ctx context.Context) ([]*redis.SliceCmd, error) {
		ctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		pipe := c.rdb.Pipeline()
		cmds := make([]*redis.SliceCmd, len(batch))
		for i, l := range batch {
			cmds[i] = pipe.MGet(ctx, l.keys[:]...)
		}
		epoch = pipe.Get(ctx, c.epochKey)
		_, err := pipe.Exec(ctx)
		if errors.Is(err, redis.Nil) {
			err = nil // no epoch yet (none was ever moved on): ""
		}
		return cmds, err
	})
	// A call the open breaker refused was never sent: the failures that
	// opened it were recorded. Any other failure is (a half-open probe's
	// too, which no request waits for).
	if err != nil && !errors.Is(err, breaker.ErrOpen) {
		c.failure()
	}
	var ep any
	if err == nil {
		switch v, gerr := epoch.Result(); {
		case gerr == nil:
			ep = v
		case !errors.Is(gerr, redis.Nil):
			err = gerr
		}
	}
	for i, l := range batch {
		switch {
		case err != nil:
			l.err = err
		case i >= len(cmds):
			l.err = errors.New("rediscache: a pipelined lookup got no answer")
		default:
			l.vals, l.err = cmds[i].Result()
			if l.err == nil {
				l.vals = append(l.vals, ep)
			}
		}
		close(l.done)
	}
}
