package rediscache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/testenv"
)

// afterLookupHook runs then, once armed, right after the next lookup's
// round trip has read its values and before the cache looks at them.
type afterLookupHook struct {
	armed atomic.Bool
	then  func()
}

func (h *afterLookupHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *afterLookupHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *afterLookupHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if len(cmds) > 0 && cmds[0].Name() == "mget" && h.armed.CompareAndSwap(true, false) {
			h.then()
		}
		return err
	}
}

// A replica whose Redis call failed (an eviction, say, so the cached view
// may be stale) serves no hit until it has moved the epoch on. Here the
// move lands between the lookup's read of the old epoch and the check of
// what it read: the view the lookup read, of the old epoch, is still a
// miss (the replica was not clean when the lookup started).
func TestARecoveryDuringALookupServesNothingItRead(t *testing.T) {
	t.Parallel()
	h := &afterLookupHook{}
	c, rdb := hookedCache(t, h, Options{Timeout: 5 * time.Second, RecoveryInterval: time.Hour})
	ctx := context.Background()

	if _, st, err := c.View(ctx, "u1", "token"); err != nil || st != bff.CacheMiss {
		t.Fatalf("first view: %v %v", st, err)
	}
	if _, st, _ := c.View(ctx, "u1", "token"); st != bff.CacheHit {
		t.Fatalf("second view: %v, want a hit", st)
	}
	// A failed call recorded, its recovery not run yet (as while Redis is
	// unreachable); it runs while the next lookup's answer is on its way.
	c.recovering.Store(true)
	c.failed.Add(1)
	h.then = func() {
		testenv.Must(t, rdb.Incr(ctx, c.epochKey).Err(), "move the epoch")
		c.recovered.Store(c.failed.Load())
	}
	h.armed.Store(true)
	if _, st, err := c.View(ctx, "u1", "token"); err != nil || st != bff.CacheMiss {
		t.Fatalf("view read before the epoch moved: %v %v, want a miss", st, err)
	}
	if h.armed.Load() {
		t.Fatal("the hook never ran")
	}
	// That miss stored its load under the epoch its lookup read, so it is
	// never served either; the next miss stores it under the new one,
	// which is served from then on.
	for i, want := range []bff.CacheStatus{bff.CacheMiss, bff.CacheHit} {
		if _, st, _ := c.View(ctx, "u1", "token"); st != want {
			t.Fatalf("view %d after the recovery: %v, want %v", i+1, st, want)
		}
	}
}
