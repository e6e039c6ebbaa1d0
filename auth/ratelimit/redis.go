package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// hitScript increments the counter, starting its window on the first event
// (and repairing a counter left without expiry), and returns the count and
// the window's remaining milliseconds, atomically.
const hitScript = `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`

// Redis is a Backend shared by every replica.
type Redis struct {
	c   redis.UniversalClient
	hit *redis.Script
}

var _ Backend = (*Redis)(nil)

// NewRedis returns a backend on c.
func NewRedis(c redis.UniversalClient) *Redis {
	return &Redis{c: c, hit: redis.NewScript(hitScript)}
}

// Hit counts one event in key's window.
func (r *Redis) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	res, err := r.hit.Run(ctx, r.c, []string{key}, window.Milliseconds()).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("ratelimit: redis: unexpected script answer %v", res)
	}
	return res[0], time.Duration(res[1]) * time.Millisecond, nil
}

// Block marks key for d.
func (r *Redis) Block(ctx context.Context, key string, d time.Duration) error {
	if err := r.c.Set(ctx, key, 1, d).Err(); err != nil {
		return fmt.Errorf("ratelimit: redis: %w", err)
	}
	return nil
}

// Blocked returns how long key stays marked.
func (r *Redis) Blocked(ctx context.Context, key string) (time.Duration, error) {
	d, err := r.c.PTTL(ctx, key).Result()
	if err != nil {
		return 0, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if d < 0 { // -2: no key; -1: no expiry (never set by us)
		return 0, nil
	}
	return d, nil
}

// Clear forgets keys.
func (r *Redis) Clear(ctx context.Context, keys ...string) error {
	// One DEL per key, pipelined: the keys (an email's failures and its
	// lock) hash to different Cluster slots, and one DEL of both is
	// refused there as CROSSSLOT; a Cluster client sends each to its node.
	pipe := r.c.Pipeline()
	for _, k := range keys {
		pipe.Del(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("ratelimit: redis: %w", err)
	}
	return nil
}
