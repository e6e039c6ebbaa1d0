package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// leaseDoc is the stored shape of a lease. Its _id is the owner, the
// random id of the attempt that holds it (a lease of the previous release
// has a random _id of its own and the owner in owner), and saga_id is
// unique: the insert is the claim.
type leaseDoc struct {
	ID        string    `bson:"_id"`
	SagaID    string    `bson:"saga_id"`
	Owner     string    `bson:"owner"`
	ExpiresAt time.Time `bson:"expires_at"`
}

// AcquireLease claims the lease of id for owner: an insert whose duplicate
// key (the unique saga_id) means someone else holds it. When it is held by
// a lease that expired before now, that lease is deleted by its own _id and
// the insert is tried once more: of several workers, exactly one wins.
//
// Each lease has its own _id (its owner, random per attempt), and the
// expired one is deleted by that _id only: FerretDB resolves a filtered
// delete to _ids and then deletes those, not atomically, so a delete keyed
// by the saga id could remove the new lease another worker has just
// inserted. The lookup by saga_id runs only when the lease is taken (a
// reconciler meeting a live attempt, or a crashed one): it reads the live
// leases, as many as attempts in flight, never the history.
func (s *Store) AcquireLease(ctx context.Context, id, owner string, now, expires time.Time) (bool, error) {
	for attempt := 0; ; attempt++ {
		_, err := s.leases.InsertOne(ctx, leaseDoc{ID: owner, SagaID: id, Owner: owner, ExpiresAt: expires.UTC()})
		switch {
		case err == nil:
			return true, nil
		case !mongo.IsDuplicateKeyError(err):
			return false, fmt.Errorf("bff store: acquire lease: %w", err)
		case attempt > 0:
			return false, nil
		}
		var held leaseDoc
		err = s.leases.FindOne(ctx, bson.D{{Key: "saga_id", Value: id}}).Decode(&held)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // released meanwhile
		}
		if err != nil {
			return false, fmt.Errorf("bff store: read lease: %w", err)
		}
		if !held.ExpiresAt.Before(now) {
			return false, nil
		}
		if _, err := s.leases.DeleteOne(ctx, bson.D{{Key: "_id", Value: held.ID}}); err != nil {
			return false, fmt.Errorf("bff store: expire lease: %w", err)
		}
	}
}

// ReleaseLease deletes owner's lease of id: by _id, the owner, so it can
// only ever remove owner's own lease (a lease of the previous release,
// whose _id is not its owner, is not released: it expires and is swept).
func (s *Store) ReleaseLease(ctx context.Context, id, owner string) error {
	if _, err := s.leases.DeleteOne(ctx, bson.D{{Key: "_id", Value: owner}}); err != nil {
		return fmt.Errorf("bff store: release lease: %w", err)
	}
	return nil
}

// SweepLeases deletes the leases that expired before before: orphaned by a
// crash between the lease and the saga record, or by a failed release.
// FerretDB resolves the filter to _ids first and deletes those; a lease
// inserted meanwhile by a takeover has a new _id (and a later expiry), so
// it is never swept.
func (s *Store) SweepLeases(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.leases.DeleteMany(ctx, bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: before.UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("bff store: sweep leases: %w", err)
	}
	return res.DeletedCount, nil
}
