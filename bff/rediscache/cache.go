// Package rediscache is the Redis cache of the BFF's merged views: a second
// implementation of bff.Views that decorates the origin one (cache-aside).
//
//   - One key per user, by the verified user id only:
//     bff:view:v2:{<user_id>} (v2: the entry carries its epoch; a v1
//     replica of a rolling deploy never reads it) holds "<user_id>\n<epoch>\n<view body>" (the
//     id is checked again on every hit), with a TTL of CACHE_TTL ±10 %.
//   - A miss loads from the origins once per user and generation at a time
//     (singleflight keyed by the user, the generation and the epoch the
//     lookup read); the callers waiting on it get the same answer, and a
//     lookup after a write never joins a load begun before it.
//   - Every Redis call goes through the "redis" circuit breaker with its own
//     short timeout. When Redis errors, is slow, or the breaker is open, the
//     answer comes from the origins (BYPASS) at origin latency; the cache
//     write of a miss happens after the answer is computed and is bounded by
//     the same timeout. The breaker's half-open probe brings the cache back
//     by itself when Redis returns.
//   - The stale-set race (a load that read the origins before an
//     invalidation writing its result after it) is closed by a per-user
//     generation counter bff:view:v2:{<user_id>}:gen: the lookup reads it
//     together with the view, Invalidate increments it (and deletes the view)
//     atomically, and the write is a Lua script that stores the view only if
//     the generation is still the one read before the load started.
//   - An eviction that cannot reach Redis is not lost: the outage rule. A
//     hit is served only if its entry carries the current value of the
//     shared epoch bff:view:v2:epoch (read in the same round trip as the
//     view and its generation, a GET pipelined after their MGET, so a hit
//     still costs one round trip; see lookups.roundTrip). Any failed
//     Redis call of a replica (an eviction, even one the breaker refused;
//     a lookup or a write that reached Redis, not one the open breaker
//     kept unsent) marks that replica: until it has moved the epoch on
//     (INCR, past the breaker, retried every RecoveryInterval, 25 ms, from
//     the moment it fails) it serves no hit; once it has, no replica serves
//     a view cached before, since every entry of an older epoch is a miss.
//     An eviction refused by an open breaker first tries Redis itself once.
//   - Invalidation comes from the BFF's own writes (Invalidate) and from the
//     services' change events (customer.changed, user.changed, user.deleted),
//     consumed from their Redis Stream by the BFF's consumer group
//     (Subscriber, on internal/changefeed): delivered at least once, an
//     event whose eviction failed is retried.
//
// Staleness bound (docs/design.md, "Invalidation that cannot be lost"):
// after the BFF's own write, none: the view is evicted before the write is
// answered or, when the eviction fails, the writer serves no hit until it
// has moved the epoch on, which it does before anything else as soon as
// Redis answers it (within RecoveryInterval + one round trip); a replica
// that could reach Redis during the writer's outage serves the old view
// until then, or until the service's change event evicts it. After a write
// made directly at the auth or customer service, a cached view is served
// until the service's event is relayed and handled (docs/design.md,
// "Change delivery"). A load that read the origins before the change can
// never extend that window (the generation check and the epoch tag).
package rediscache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/breaker"
	"github.com/acme/customer-platform/internal/telemetry"
)

// Defaults.
const (
	DefaultTTL         = 60 * time.Second
	DefaultJitter      = 0.10
	DefaultTimeout     = 50 * time.Millisecond
	DefaultLoadTimeout = 10 * time.Second
	DefaultKeyPrefix   = "bff:view:v2:"
	// DefaultRecoveryInterval is how often a replica whose Redis call
	// failed tries to move the epoch on (Options.RecoveryInterval).
	DefaultRecoveryInterval = 25 * time.Millisecond
)

// Options tune a Cache; zero values take the defaults.
type Options struct {
	TTL    time.Duration // CACHE_TTL (default 60s)
	Jitter float64       // fraction of TTL added or removed at random (default 0.10; negative: none)
	// Timeout bounds each Redis call (REDIS_TIMEOUT, default 50ms).
	Timeout time.Duration
	// LoadTimeout bounds a shared origin load, which outlives a caller that
	// goes away (default 10s; the origin clients' own timeouts are shorter).
	LoadTimeout time.Duration
	// Breaker guards every Redis call (see BreakerSettings). Nil: unguarded.
	Breaker   *breaker.Breaker
	KeyPrefix string // default DefaultKeyPrefix
	// RecoveryInterval is how often, after a failed Redis call, the cache
	// tries to move the shared epoch on (default DefaultRecoveryInterval).
	RecoveryInterval time.Duration
	Logger           *slog.Logger
	MeterProvider    metric.MeterProvider
	TracerProvider   trace.TracerProvider
}

// BreakerSettings are the settings of the breaker Options.Breaker should be:
// a cache miss (redis.Nil) counts as a success, three failures in a row open
// it, and it probes Redis again after a second.
func BreakerSettings() breaker.Settings {
	return breaker.Settings{
		FailuresToOpen: 3,
		OpenTimeout:    time.Second,
		HalfOpenMax:    1,
		IsSuccessful:   func(err error) bool { return errors.Is(err, redis.Nil) },
	}
}

// Cache is the cache-aside decorator of an origin bff.Views.
type Cache struct {
	rdb         redis.UniversalClient
	origin      bff.Views
	ttl         time.Duration
	jitter      float64
	timeout     time.Duration
	loadTimeout time.Duration
	genTTL      time.Duration
	prefix      string
	epochKey    string
	recoverEach time.Duration
	breaker     *breaker.Breaker
	logger      *slog.Logger
	tracer      trace.Tracer
	flights     singleflight.Group
	setScript   *redis.Script
	dropScript  *redis.Script
	lookups     lookups // batches concurrent lookups (batch.go)

	// The outage rule (see the package doc): failed counts this replica's
	// failed Redis calls; recovered is the value of failed when the epoch
	// was last moved on after them. While they differ the replica serves
	// no hit, and one recovery goroutine (recovering) moves the epoch on.
	failed, recovered atomic.Uint64
	recovering        atomic.Bool

	requests      metric.Int64Counter
	writes        metric.Int64Counter
	invalidations metric.Int64Counter
	recoveries    metric.Int64Counter
}

var _ bff.Views = (*Cache)(nil)

// setIfCurrent stores the view only if the user's generation is still the
// one read before the load (ARGV[1], "" when there was none).
const setIfCurrent = `
local g = redis.call('GET', KEYS[2])
if not g then g = '' end
if g ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`

// dropAndBump deletes the view and moves the generation on, atomically.
const dropAndBump = `
redis.call('DEL', KEYS[1])
local g = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return g
`

const instrumentation = "github.com/acme/customer-platform/bff/rediscache"

// New returns the cache of origin's views in rdb.
func New(rdb redis.UniversalClient, origin bff.Views, o Options) (*Cache, error) {
	if rdb == nil || origin == nil {
		return nil, errors.New("rediscache: a Redis client and an origin are required")
	}
	c := &Cache{
		rdb:         rdb,
		origin:      origin,
		ttl:         o.TTL,
		jitter:      o.Jitter,
		timeout:     o.Timeout,
		loadTimeout: o.LoadTimeout,
		prefix:      o.KeyPrefix,
		breaker:     o.Breaker,
		logger:      o.Logger,
		setScript:   redis.NewScript(setIfCurrent),
		dropScript:  redis.NewScript(dropAndBump),
	}
	if c.ttl <= 0 {
		c.ttl = DefaultTTL
	}
	switch {
	case c.jitter == 0:
		c.jitter = DefaultJitter
	case c.jitter < 0:
		c.jitter = 0
	case c.jitter > 0.5:
		return nil, fmt.Errorf("rediscache: jitter %v is more than half the TTL", c.jitter)
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	c.lookups.c = c
	if c.loadTimeout <= 0 {
		c.loadTimeout = DefaultLoadTimeout
	}
	// A generation must outlive any load that read it: a load that read "no
	// generation" must not find "no generation" again after an invalidation.
	c.genTTL = max(10*time.Minute, 2*c.loadTimeout, 2*c.ttl)
	if c.prefix == "" {
		c.prefix = DefaultKeyPrefix
	}
	c.epochKey = c.prefix + "epoch" // no braces: never a user's key
	c.recoverEach = o.RecoveryInterval
	if c.recoverEach <= 0 {
		c.recoverEach = DefaultRecoveryInterval
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	c.tracer = telemetry.Tracer(o.TracerProvider, instrumentation)
	m := telemetry.Meter(o.MeterProvider, instrumentation)
	var err error
	if c.requests, err = m.Int64Counter("bff.cache.requests",
		metric.WithDescription("Merged-view lookups by result: hit, miss or bypass.")); err != nil {
		return nil, fmt.Errorf("rediscache metrics: %w", err)
	}
	if c.writes, err = m.Int64Counter("bff.cache.writes",
		metric.WithDescription("Cache writes after a miss by result: stored, stale (an invalidation came first) or error.")); err != nil {
		return nil, fmt.Errorf("rediscache metrics: %w", err)
	}
	if c.invalidations, err = m.Int64Counter("bff.cache.invalidations",
		metric.WithDescription("Invalidations by result: ok or error.")); err != nil {
		return nil, fmt.Errorf("rediscache metrics: %w", err)
	}
	if c.recoveries, err = m.Int64Counter("bff.cache.epoch_bumps",
		metric.WithDescription("Moves of the shared cache epoch after this replica's Redis calls failed: every view cached before is then a miss.")); err != nil {
		return nil, fmt.Errorf("rediscache metrics: %w", err)
	}
	return c, nil
}

// Results of a lookup, as the cache.result span attribute and the result
// metric attribute.
const (
	resultHit    = "hit"
	resultMiss   = "miss"
	resultBypass = "bypass"
)

var (
	attrsHit    = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", resultHit)))
	attrsMiss   = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", resultMiss)))
	attrsBypass = metric.WithAttributeSet(attribute.NewSet(attribute.String("result", resultBypass)))
)

// ErrBadUserID is returned for a user id that cannot be a cache key.
var ErrBadUserID = errors.New("rediscache: user id is not a valid key")

// validID accepts what a verified user id looks like (a UUID, or another
// short token of letters, digits, '-' and '_').
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case b >= '0' && b <= '9', b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b == '-', b == '_':
		default:
			return false
		}
	}
	return true
}

// keys returns the view key and the generation key of a user; the braces
// keep both in one Redis Cluster slot, as the lookup's MGET and the
// scripts need. The epoch key has no braces and is never in a command or
// script with them.
func (c *Cache) keys(userID string) (view, gen string) {
	view = c.prefix + "{" + userID + "}"
	return view, view + ":gen"
}

// View serves userID's merged view from Redis, or loads it from the origin.
// The body is shared with other callers and must not be modified.
func (c *Cache) View(ctx context.Context, userID, token string) ([]byte, bff.CacheStatus, error) {
	ctx, span := c.tracer.Start(ctx, "cache.view")
	defer span.End()
	if !validID(userID) {
		span.SetStatus(codes.Error, "bad user id")
		return nil, bff.CacheBypass, ErrBadUserID
	}
	viewKey, genKey := c.keys(userID)
	// Whether this replica had moved the epoch on after its every failed
	// call, taken before the lookup: a failure recorded before it and
	// recovered during it may have let the lookup read the old epoch and a
	// view its failed eviction left, which must not be served.
	clean := c.failed.Load() == c.recovered.Load()
	vals, err := c.lookups.get(ctx, viewKey, genKey)
	if err != nil || len(vals) != 3 {
		if ctx.Err() != nil {
			return nil, bff.CacheBypass, ctx.Err()
		}
		// Redis is down, slow, or its breaker is open (the round trip
		// recorded the failure): serve from the origins without waiting
		// on Redis again.
		span.SetAttributes(attribute.String("cache.result", resultBypass))
		if err != nil {
			span.AddEvent("cache unavailable", trace.WithAttributes(attribute.String("error", err.Error())))
		}
		c.requests.Add(ctx, 1, attrsBypass)
		body, err := c.load(ctx, span, userID, token, "", "", false)
		return body, bff.CacheBypass, err
	}
	epoch, _ := vals[2].(string)
	if s, ok := vals[0].(string); ok && clean && c.failed.Load() == c.recovered.Load() {
		if body, ok := decodeEntry(userID, epoch, s); ok {
			span.SetAttributes(attribute.String("cache.result", resultHit))
			c.requests.Add(ctx, 1, attrsHit)
			return body, bff.CacheHit, nil
		}
		// An entry of an older epoch (cached before the last outage) or
		// while this replica has not yet moved the epoch on is a miss; one
		// that does not name this user is never served. The write after
		// the load replaces it.
	}
	gen, _ := vals[1].(string)
	span.SetAttributes(attribute.String("cache.result", resultMiss))
	c.requests.Add(ctx, 1, attrsMiss)
	body, err := c.load(ctx, span, userID, token, gen, epoch, true)
	return body, bff.CacheMiss, err
}

// flightKey names a load in flight. A miss's load is keyed by the user,
// the generation and the epoch its lookup read, and the count of this
// replica's failed Redis calls: a lookup after a write (whose eviction,
// through any replica, moved the generation on; or failed, after which
// the epoch moves on, and this replica's count when it was this one)
// never joins a load that read the origins before it. A bypass (Redis
// unreachable: nothing read) is keyed by the user alone; Evict forgets it.
func (c *Cache) flightKey(userID, gen, epoch string, store bool) string {
	if !store {
		return userID + "\n-"
	}
	return userID + "\n" + gen + "\n" + epoch + "\n" + strconv.FormatUint(c.failed.Load(), 10)
}

// load runs one origin load per user and generation at a time (flightKey). The load is detached from
// the caller's cancellation (other callers may be waiting on it) but bounded
// by LoadTimeout; a caller that goes away stops waiting. When store is set,
// the result is written, tagged with epoch, if gen is still the user's
// generation.
func (c *Cache) load(ctx context.Context, span trace.Span, userID, token, gen, epoch string, store bool) ([]byte, error) {
	ch := c.flights.DoChan(c.flightKey(userID, gen, epoch, store), func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.loadTimeout)
		defer cancel()
		body, _, err := c.origin.View(lctx, userID, token)
		if err != nil {
			return nil, err
		}
		if store {
			c.store(lctx, userID, gen, epoch, body)
		}
		return body, nil
	})
	select {
	case r := <-ch:
		if r.Shared {
			span.SetAttributes(attribute.Bool("cache.load_shared", true))
		}
		if r.Err != nil {
			span.RecordError(r.Err)
			span.SetStatus(codes.Error, "origin load failed")
			return nil, r.Err
		}
		return r.Val.([]byte), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// store writes a loaded view, tagged with the epoch read before the load,
// unless an invalidation came after gen was read. (A write tagged with an
// epoch that moved on meanwhile is stored but never served.)
func (c *Cache) store(ctx context.Context, userID, gen, epoch string, body []byte) {
	viewKey, genKey := c.keys(userID)
	ttl := c.ttl
	if c.jitter > 0 {
		ttl = time.Duration(float64(ttl) * (1 - c.jitter + 2*c.jitter*rand.Float64()))
	}
	ttl = max(ttl, time.Millisecond)
	stored, err := breaker.Call(ctx, c.breaker, func(ctx context.Context) (int64, error) {
		ctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		return c.setScript.Run(ctx, c.rdb, []string{viewKey, genKey}, gen, encodeEntry(userID, epoch, body), ttl.Milliseconds()).Int64()
	})
	result := "stored"
	switch {
	case err != nil:
		result = "error"
		if !errors.Is(err, breaker.ErrOpen) { // refused unsent: nothing new about Redis
			c.failure()
		}
		c.logger.DebugContext(ctx, "cache write failed", "error", err.Error())
	case stored == 0:
		result = "stale"
		c.logger.DebugContext(ctx, "cache write skipped: the view was invalidated during the load")
	}
	c.writes.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
}

// Invalidate deletes userID's cached view and moves its generation on, so
// no load that started earlier can write its result back. It also makes
// later callers on this replica start a fresh load instead of joining one
// in flight. It is detached from the caller's cancellation (a write that
// was made must be followed by its eviction) and bounded by the timeout.
func (c *Cache) Invalidate(ctx context.Context, userID string) {
	if err := c.Evict(ctx, userID); err != nil {
		c.logger.WarnContext(ctx, "cache invalidation failed; no replica serves the view once the epoch has moved on", "error", err.Error())
	}
}

// Evict is Invalidate reporting its failure (Redis unreachable, breaker
// open), so that the change event that asked for it is retried.
func (c *Cache) Evict(ctx context.Context, userID string) error {
	if !validID(userID) {
		return errors.New("rediscache: invalid user id")
	}
	c.flights.Forget(c.flightKey(userID, "", "", false))
	ctx, span := c.tracer.Start(context.WithoutCancel(ctx), "cache.invalidate")
	defer span.End()
	viewKey, genKey := c.keys(userID)
	drop := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		return c.dropScript.Run(ctx, c.rdb, []string{viewKey, genKey}, c.genTTL.Milliseconds()).Err()
	}
	err := c.breaker.Do(ctx, drop)
	if errors.Is(err, breaker.ErrOpen) {
		// An open breaker may outlast the outage that opened it: an
		// eviction is rare and matters, so it tries Redis itself once.
		if derr := drop(ctx); derr == nil {
			err = nil
		}
	}
	if err != nil {
		// The view stays in Redis: no replica serves it once this one
		// has moved the epoch on (failure), and the event is retried.
		c.failure()
		span.RecordError(err)
		span.SetStatus(codes.Error, "invalidation failed")
		c.invalidations.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "error")))
		return fmt.Errorf("evict the view: %w", err)
	}
	c.invalidations.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "ok")))
	return nil
}

// failure records a failed Redis call: until the epoch has been moved on
// after it, this replica serves no hit, and one goroutine tries to move it
// on every RecoveryInterval until Redis answers.
func (c *Cache) failure() {
	c.failed.Add(1)
	if c.recovering.CompareAndSwap(false, true) {
		go c.recover()
	}
}

// recover moves the shared epoch on (INCR, past the breaker: it is the
// first thing this replica does when Redis answers again) until it has done
// so after every failure recorded so far.
func (c *Cache) recover() {
	for {
		seen := c.failed.Load()
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		epoch, err := c.rdb.Incr(ctx, c.epochKey).Result()
		cancel()
		if err == nil {
			c.recovered.Store(seen)
			c.recoveries.Add(context.Background(), 1)
			c.logger.Info("Redis answers again: cache epoch moved on, views cached before are misses", "epoch", epoch)
			c.recovering.Store(false)
			// A failure recorded meanwhile that found the flag still set
			// started no goroutine: this one goes on for it.
			if c.failed.Load() == seen || !c.recovering.CompareAndSwap(false, true) {
				return
			}
		}
		time.Sleep(c.recoverEach) // paced, however often calls fail
	}
}

// encodeEntry is the stored form of a view: the owner's id, a newline, the
// epoch it was loaded in, a newline, and the body as served.
func encodeEntry(userID, epoch string, body []byte) []byte {
	b := make([]byte, 0, len(userID)+len(epoch)+2+len(body))
	b = append(b, userID...)
	b = append(b, '\n')
	b = append(b, epoch...)
	b = append(b, '\n')
	return append(b, body...)
}

// decodeEntry returns the body of a stored entry if it is userID's and of
// the current epoch. The body shares the entry's memory instead of copying
// it (a copy would be a hit's largest allocation): it is only ever read, as
// View's callers must (see View), and the string it comes from is
// immutable.
func decodeEntry(userID, epoch, entry string) ([]byte, bool) {
	n, m := len(userID), len(epoch)
	if len(entry) <= n+m+2 || entry[n] != '\n' || entry[:n] != userID ||
		entry[n+1+m] != '\n' || entry[n+1:n+1+m] != epoch {
		return nil, false
	}
	body := entry[n+m+2:]
	return unsafe.Slice(unsafe.StringData(body), len(body)), true
}
