package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/internal/contract"
)

// leaseDoc is the stored shape of a lease.
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
// Each lease has its own random _id, and the expired one is deleted by that
// _id only: FerretDB resolves a filtered delete to _ids and then deletes
// those, not atomically, so a delete keyed by the saga id could remove the
// new lease another worker has just inserted.
func (s *Store) AcquireLease(ctx context.Context, id, owner string, now, expires time.Time) (bool, error) {
	for attempt := 0; ; attempt++ {
		_, err := s.leases.InsertOne(ctx, leaseDoc{ID: contract.NewID(), SagaID: id, Owner: owner, ExpiresAt: expires.UTC()})
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

// ReleaseLease deletes owner's lease of id.
func (s *Store) ReleaseLease(ctx context.Context, id, owner string) error {
	if _, err := s.leases.DeleteOne(ctx, bson.D{{Key: "saga_id", Value: id}, {Key: "owner", Value: owner}}); err != nil {
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
