package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/bff"
)

// keyDoc is the stored shape of an idempotency record. Its _id is the
// owner, the random id of the claim that inserted it, and the key's id is
// the unique key_id: so a guarded update or delete of one record never
// touches its successor, and the owner's completion is addressed by _id
// alone, the one filter the embedded FerretDB hands to SQLite instead of
// decoding every record of the collection.
type keyDoc struct {
	Owner string `bson:"_id"`
	// OwnerField repeats the owner for replicas still running the
	// previous release, which find a record's owner there (to take over an
	// expired record); it can go once none runs.
	OwnerField     string    `bson:"owner"`
	KeyID          string    `bson:"key_id"`
	Check          string    `bson:"check"`
	State          string    `bson:"state"`
	LeaseExpiresAt time.Time `bson:"lease_expires_at"`
	SagaID         string    `bson:"saga_id"`
	Status         int32     `bson:"status,omitempty"`
	Answer         []byte    `bson:"answer,omitempty"`
	CreatedAt      time.Time `bson:"created_at"`
	ExpiresAt      time.Time `bson:"expires_at"`
}

// InsertKey inserts a new idempotency record.
func (s *Store) InsertKey(ctx context.Context, r *bff.IdempotencyRecord) error {
	_, err := s.keys.InsertOne(ctx, keyDoc{
		Owner: r.Owner, OwnerField: r.Owner, KeyID: r.KeyID, Check: r.Check, State: r.State,
		LeaseExpiresAt: r.LeaseExpiresAt.UTC(), SagaID: r.SagaID, Status: int32(r.Status), Answer: r.Answer,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
	})
	if mongo.IsDuplicateKeyError(err) {
		return bff.ErrKeyExists
	}
	if err != nil {
		return fmt.Errorf("bff store: insert key: %w", err)
	}
	return nil
}

// GetKey reads an idempotency record.
func (s *Store) GetKey(ctx context.Context, keyID string) (*bff.IdempotencyRecord, error) {
	var d keyDoc
	err := s.keys.FindOne(ctx, bson.D{{Key: "key_id", Value: keyID}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, bff.ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("bff store: get key: %w", err)
	}
	return &bff.IdempotencyRecord{
		KeyID: d.KeyID, Check: d.Check, State: d.State, Owner: d.Owner, LeaseExpiresAt: d.LeaseExpiresAt,
		SagaID: d.SagaID, Status: int(d.Status), Answer: d.Answer, CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt,
	}, nil
}

// CompleteKey stores the answer of owner's in-flight record. The owner is
// the record's _id and completes it once, so the _id is the whole guard:
// a record taken over after its lease expired has another _id.
func (s *Store) CompleteKey(ctx context.Context, keyID, owner string, status int, answer []byte) error {
	res, err := s.keys.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: bff.KeyDone}, {Key: "status", Value: int32(status)}, {Key: "answer", Value: answer}}}})
	if err != nil {
		return fmt.Errorf("bff store: complete key: %w", err)
	}
	if res.MatchedCount == 0 {
		return bff.ErrKeyChanged
	}
	return nil
}

// DeleteKey deletes owner's in-flight record. On MongoDB it is one delete
// filtered by _id and state; FerretDB gets a read by _id and a delete by
// _id (any other filter decodes every record, and its filtered delete is a
// read and a delete that are not atomic either): the _id is the owner, so
// neither can touch another claim's record.
func (s *Store) DeleteKey(ctx context.Context, keyID, owner string) error {
	if s.guardByRead {
		var d struct {
			State string `bson:"state"`
		}
		err := s.keys.FindOne(ctx, bson.D{{Key: "_id", Value: owner}}).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) || err == nil && d.State != bff.KeyInFlight {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bff store: delete key: %w", err)
		}
		if _, err := s.keys.DeleteOne(ctx, bson.D{{Key: "_id", Value: owner}}); err != nil {
			return fmt.Errorf("bff store: delete key: %w", err)
		}
		return nil
	}
	_, err := s.keys.DeleteOne(ctx, bson.D{{Key: "_id", Value: owner}, {Key: "state", Value: bff.KeyInFlight}})
	if err != nil {
		return fmt.Errorf("bff store: delete key: %w", err)
	}
	return nil
}

// DeleteExpiredKey deletes the record when it expired at or before now.
func (s *Store) DeleteExpiredKey(ctx context.Context, keyID string, now time.Time) error {
	_, err := s.keys.DeleteOne(ctx, bson.D{{Key: "key_id", Value: keyID}, {Key: "expires_at", Value: bson.D{{Key: "$lte", Value: now.UTC()}}}})
	if err != nil {
		return fmt.Errorf("bff store: delete expired key: %w", err)
	}
	return nil
}

// SweepKeys deletes every expired record.
func (s *Store) SweepKeys(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.keys.DeleteMany(ctx, bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lte", Value: now.UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("bff store: sweep keys: %w", err)
	}
	return res.DeletedCount, nil
}
