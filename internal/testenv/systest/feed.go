package systest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/redisconn"
)

// FeedSettled reports the first change event the system has not yet
// handled everywhere: one still in a service's outbox (not yet relayed to
// the change stream), or one in the stream that a consumer group has not
// read or not acknowledged. Each of groups must exist on the stream; every
// group there must have caught up. A test polls it (testenv.Eventually)
// before asserting what a late event would change: an eviction that lands
// between two reads turns the HIT the second should be into a MISS.
//
// It compares each group's last delivered id with the stream's last
// entry rather than reading XINFO's lag, which Redis keeps only from 7.0
// on and the embedded miniredis does not. Its Redis client is opened at
// its first call and kept until the test ends, so it is not safe for
// concurrent use.
func (s *System) FeedSettled(ctx context.Context, groups ...string) error {
	for _, name := range slices.Sorted(maps.Keys(s.dbs)) {
		n, err := s.DB(name).Collection(changefeed.Collection).CountDocuments(ctx, bson.D{})
		if err != nil {
			return fmt.Errorf("%s's outbox: %w", name, err)
		}
		if n > 0 {
			return fmt.Errorf("%s's outbox holds %d events", name, n)
		}
	}
	if s.feed == nil {
		url := s.opts.RedisURL
		if s.Redis != nil {
			url = s.Redis.URL
		}
		if url == "" {
			return errors.New("systest: the system has no Redis, so no change stream")
		}
		rdb, err := redisconn.Open(url, redisconn.Options{})
		if err != nil {
			return err
		}
		s.feed = rdb
		s.t.Cleanup(func() { redisconn.Close(rdb) })
	}
	return groupsCaughtUp(ctx, s.feed, groups)
}

// groupsCaughtUp reports a consumer group of the change stream that has
// not read every entry or not acknowledged what it read, or one of want
// that does not exist.
func groupsCaughtUp(ctx context.Context, rdb redis.UniversalClient, want []string) error {
	infos, err := rdb.XInfoGroups(ctx, changefeed.Stream).Result()
	if err != nil {
		return fmt.Errorf("XINFO GROUPS %s: %w", changefeed.Stream, err)
	}
	last, err := rdb.XRevRangeN(ctx, changefeed.Stream, "+", "-", 1).Result()
	if err != nil {
		return fmt.Errorf("XREVRANGE %s: %w", changefeed.Stream, err)
	}
	found := map[string]bool{}
	for _, g := range infos {
		found[g.Name] = true
		if g.Pending != 0 {
			return fmt.Errorf("group %s: %d entries read and not acknowledged", g.Name, g.Pending)
		}
		if len(last) > 0 && g.LastDeliveredID != last[0].ID {
			return fmt.Errorf("group %s: last read %s, the stream's last entry is %s", g.Name, g.LastDeliveredID, last[0].ID)
		}
	}
	for _, g := range want {
		if !found[g] {
			return fmt.Errorf("no consumer group %s on %s", g, changefeed.Stream)
		}
	}
	return nil
}
