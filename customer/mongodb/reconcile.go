package mongodb

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// ProfileRef is what a reconciliation of profiles and users needs of a
// profile: its id, its user and when it was created.
type ProfileRef struct {
	ID        string    `bson:"_id"`
	UserID    string    `bson:"user_id"`
	CreatedAt time.Time `bson:"created_at"`
}

// EachProfileRef streams every profile's ProfileRef in user_id order
// (binary string order, the order of Go's string comparison), calling fn
// with batches of at most size refs; the slice is reused between calls.
// One cursor reads the collection once (on MongoDB along the unique user_id
// index), so memory stays at one batch whatever the collection's size. An
// error of fn stops the stream and is returned as it is.
func (s *Store) EachProfileRef(ctx context.Context, size int, fn func([]ProfileRef) error) error {
	size = max(size, 1)
	cur, err := s.customers.Find(ctx, bson.D{}, options.Find().
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "user_id", Value: 1}, {Key: "created_at", Value: 1}}).
		SetSort(bson.D{{Key: "user_id", Value: 1}}).
		SetBatchSize(int32(min(size, 10000))))
	if err != nil {
		return fmt.Errorf("read profile refs: %w", err)
	}
	defer cur.Close(ctx)
	batch := make([]ProfileRef, 0, size)
	for cur.Next(ctx) {
		var r ProfileRef
		if err := cur.Decode(&r); err != nil {
			return fmt.Errorf("decode profile ref: %w", err)
		}
		batch = append(batch, r)
		if len(batch) == size {
			if err := fn(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read profile refs: %w", err)
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}
