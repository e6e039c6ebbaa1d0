package mongodb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/customer"
)

// aliasChunk bounds the aliases of one insert command.
const aliasChunk = 500

// UpgradeResult is what Upgrade did.
type UpgradeResult struct {
	Aliases   int // aliases written for profiles with a legacy id
	Converted int // service records of the previous shape now in slots
	Orphans   int // records of the previous shape whose profile is gone, left alone
}

// Upgrade brings data written by the previous version to this one's
// shape, and is run by New at every start:
//
//   - every profile whose _id is not ProfileID(user_id) (the random ids of
//     profiles created before it, which clients hold and which are not
//     changed) gets its alias {_id: user_id, customer_id};
//   - every service record of the previous shape (one document per record,
//     no series) moves to the next free slot of its profile's series, in
//     the order of performed_at, under a key document named after its old
//     key (so a retry of the request that recorded it still finds it), and
//     its old document is then deleted.
//
// It is idempotent and safe while other replicas (of either version)
// serve: an alias is the same whoever writes it, and a record is moved
// through the same key-guarded walk as an increment, so a conversion that
// stopped half-way, or ran on two replicas at once, counts each record
// once. It reads every profile, alias and record document once (a scan on
// either server, at start only). Records that a replica of the previous
// version writes after this start are converted at the next one; until
// then this version does not count them (docs/design.md).
func (s *Store) Upgrade(ctx context.Context) (UpgradeResult, error) {
	var res UpgradeResult
	var err error
	if res.Aliases, err = s.backfillAliases(ctx); err != nil {
		return res, err
	}
	res.Converted, res.Orphans, err = s.convertRecords(ctx)
	return res, err
}

// backfillAliases writes the missing aliases of profiles with legacy ids.
func (s *Store) backfillAliases(ctx context.Context) (int, error) {
	have := map[string]string{}
	cur, err := s.aliases.Find(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("read customer aliases: %w", err)
	}
	var as []aliasDoc
	if err := cur.All(ctx, &as); err != nil {
		return 0, fmt.Errorf("read customer aliases: %w", err)
	}
	for _, a := range as {
		have[a.UserID] = a.CustomerID
	}
	cur, err = s.customers.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "user_id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("read customer ids: %w", err)
	}
	var refs []aliasDoc
	for cur.Next(ctx) {
		var r struct {
			ID     string `bson:"_id"`
			UserID string `bson:"user_id"`
		}
		if err := cur.Decode(&r); err != nil {
			return 0, fmt.Errorf("decode customer id: %w", err)
		}
		if r.UserID == "" || r.ID == customer.ProfileID(r.UserID) {
			continue
		}
		switch got, ok := have[r.UserID]; {
		case !ok:
			refs = append(refs, aliasDoc{UserID: r.UserID, CustomerID: r.ID})
		case got != r.ID: // stale: its profile was deleted by the previous version
			if err := s.putAlias(ctx, r.UserID, r.ID); err != nil {
				return 0, err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return 0, fmt.Errorf("read customer ids: %w", err)
	}
	_ = cur.Close(ctx)
	for start := 0; start < len(refs); start += aliasChunk {
		chunk := refs[start:min(start+aliasChunk, len(refs))]
		docs := make([]any, len(chunk))
		for i, r := range chunk {
			docs[i] = r
		}
		if _, err := s.aliases.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil && !allDuplicates(err) {
			return 0, fmt.Errorf("write customer aliases: %w", err)
		}
	}
	return len(refs), nil
}

// allDuplicates reports a bulk write whose every error is a duplicate key
// (another replica wrote the same documents first).
func allDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// convertRecords moves the records of the previous shape into slots, a
// few customers at a time, each customer's in order.
func (s *Store) convertRecords(ctx context.Context) (converted, orphans int, err error) {
	cur, err := s.services.Find(ctx, bson.D{{Key: "series", Value: bson.D{{Key: "$exists", Value: false}}}})
	if err != nil {
		return 0, 0, fmt.Errorf("read service records of the previous shape: %w", err)
	}
	var old []serviceDoc
	if err := cur.All(ctx, &old); err != nil {
		return 0, 0, fmt.Errorf("read service records of the previous shape: %w", err)
	}
	if len(old) == 0 {
		return 0, 0, nil
	}
	byCustomer := map[string][]serviceDoc{}
	for _, d := range old {
		byCustomer[d.CustomerID] = append(byCustomer[d.CustomerID], d)
	}
	ids := make([]string, 0, len(byCustomer))
	for id := range byCustomer {
		ids = append(ids, id)
	}
	// A record is two documents for a moment (its slot inserted, its old
	// document not yet deleted), which a recount must not count: the
	// conversion is a bulk write that does not count (Uncounted).
	var mu sync.Mutex
	err = s.Uncounted(ctx, func(ctx context.Context) error {
		return each(ctx, len(ids), func(ctx context.Context, i int) error {
			c, o, err := s.convertCustomer(ctx, ids[i], byCustomer[ids[i]])
			mu.Lock()
			converted, orphans = converted+c, orphans+o
			mu.Unlock()
			return err
		})
	})
	return converted, orphans, err
}

// convertCustomer moves one customer's records of the previous shape.
func (s *Store) convertCustomer(ctx context.Context, customerID string, recs []serviceDoc) (converted, orphans int, err error) {
	p, err := s.profileDoc(ctx, customerID)
	if errors.Is(err, customer.ErrNotFound) {
		return 0, len(recs), nil
	}
	if err != nil {
		return 0, 0, err
	}
	series := p.series()
	slices.SortFunc(recs, func(a, b serviceDoc) int {
		return cmp.Or(a.PerformedAt.Compare(b.PerformedAt), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	n, _, err := s.count(ctx, series)
	if err != nil {
		return 0, 0, err
	}
	for _, old := range recs {
		d, _, err := s.record(ctx, customerID, series, n+1, fromServiceDoc(old), old.Key, true)
		if err != nil {
			return converted, 0, fmt.Errorf("convert service record %s: %w", old.ID, err)
		}
		n = max(n, d.N)
		if _, err := s.services.DeleteOne(ctx, byID(old.ID)); err != nil {
			return converted, 0, fmt.Errorf("delete converted service record %s: %w", old.ID, err)
		}
		converted++
	}
	return converted, 0, nil
}
