package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/bff"
)

// sagaDoc is the stored shape of a saga.
type sagaDoc struct {
	ID               string    `bson:"_id"`
	Kind             string    `bson:"kind"`
	State            string    `bson:"state"`
	UserID           string    `bson:"user_id,omitempty"`
	CustomerID       string    `bson:"customer_id,omitempty"`
	EmailHash        string    `bson:"email_hash,omitempty"`
	EmailSealed      []byte    `bson:"email_sealed,omitempty"`
	TokenSealed      []byte    `bson:"token_sealed,omitempty"`
	TokenExpiresAt   time.Time `bson:"token_expires_at,omitempty"`
	IdempotencyKeyID string    `bson:"idempotency_key_id,omitempty"`
	Attempts         int32     `bson:"attempts"`
	NextAttemptAt    time.Time `bson:"next_attempt_at"`
	LastError        string    `bson:"last_error,omitempty"`
	Traceparent      string    `bson:"traceparent,omitempty"`
	CreatedAt        time.Time `bson:"created_at"`
	UpdatedAt        time.Time `bson:"updated_at"`
}

func toSagaDoc(s *bff.Saga) sagaDoc {
	return sagaDoc{
		ID: s.ID, Kind: s.Kind, State: s.State, UserID: s.UserID, CustomerID: s.CustomerID,
		EmailHash: s.EmailHash, EmailSealed: s.EmailSealed, TokenSealed: s.TokenSealed,
		TokenExpiresAt: s.TokenExpiresAt.UTC(), IdempotencyKeyID: s.IdempotencyKeyID,
		Attempts: int32(s.Attempts), NextAttemptAt: s.NextAttemptAt.UTC(), LastError: s.LastError,
		Traceparent: s.Traceparent, CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
	}
}

func (d sagaDoc) toSaga() *bff.Saga {
	return &bff.Saga{
		ID: d.ID, Kind: d.Kind, State: d.State, UserID: d.UserID, CustomerID: d.CustomerID,
		EmailHash: d.EmailHash, EmailSealed: d.EmailSealed, TokenSealed: d.TokenSealed,
		TokenExpiresAt: d.TokenExpiresAt, IdempotencyKeyID: d.IdempotencyKeyID,
		Attempts: int(d.Attempts), NextAttemptAt: d.NextAttemptAt, LastError: d.LastError,
		Traceparent: d.Traceparent, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
}

// CreateSaga inserts a new saga.
func (s *Store) CreateSaga(ctx context.Context, sg *bff.Saga) error {
	if _, err := s.sagas.InsertOne(ctx, toSagaDoc(sg)); err != nil {
		return fmt.Errorf("bff store: create saga: %w", err)
	}
	return nil
}

// GetSaga reads a saga.
func (s *Store) GetSaga(ctx context.Context, id string) (*bff.Saga, error) {
	var d sagaDoc
	err := s.sagas.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, bff.ErrSagaNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("bff store: get saga: %w", err)
	}
	return d.toSaga(), nil
}

// TransitionUpdate encodes a transition as an update document.
func TransitionUpdate(ch bff.SagaChange) bson.D {
	set := make(bson.D, 0, 9)
	set = append(set, bson.E{Key: "state", Value: ch.State}, bson.E{Key: "updated_at", Value: ch.At.UTC()})
	if ch.UserID != "" {
		set = append(set, bson.E{Key: "user_id", Value: ch.UserID})
	}
	if ch.CustomerID != "" {
		set = append(set, bson.E{Key: "customer_id", Value: ch.CustomerID})
	}
	if ch.TokenSealed != nil && !ch.WipeSecrets {
		set = append(set, bson.E{Key: "token_sealed", Value: ch.TokenSealed}, bson.E{Key: "token_expires_at", Value: ch.TokenExpiresAt.UTC()})
	}
	if ch.SetAttempts {
		set = append(set, bson.E{Key: "attempts", Value: int32(ch.Attempts)})
	}
	if !ch.NextAttemptAt.IsZero() {
		set = append(set, bson.E{Key: "next_attempt_at", Value: ch.NextAttemptAt.UTC()})
	}
	if ch.LastError != "" {
		set = append(set, bson.E{Key: "last_error", Value: ch.LastError})
	}
	update := bson.D{{Key: "$set", Value: set}}
	if ch.WipeSecrets {
		update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "email_sealed", Value: ""}, {Key: "token_sealed", Value: ""}}})
	}
	return update
}

// TransitionSaga applies ch when the saga is in state from: on MongoDB one
// update filtered by _id and state (an atomic compare-and-set); on
// FerretDB, whose filtered update is a read and a write that are not
// atomic either, the same check made with a read by _id and a write by
// _id, so that neither decodes every saga of the collection. The saga's
// lease keeps other workers away in both cases.
func (s *Store) TransitionSaga(ctx context.Context, id, from string, ch bff.SagaChange) error {
	filter := bson.D{{Key: "_id", Value: id}, {Key: "state", Value: from}}
	if s.guardByRead {
		var cur struct {
			State string `bson:"state"`
		}
		err := s.sagas.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
			options.FindOne().SetProjection(bson.D{{Key: "state", Value: 1}})).Decode(&cur)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			return bff.ErrStateChanged
		case err != nil:
			return fmt.Errorf("bff store: transition saga: %w", err)
		case cur.State != from:
			return bff.ErrStateChanged
		}
		filter = bson.D{{Key: "_id", Value: id}}
	}
	res, err := s.sagas.UpdateOne(ctx, filter, TransitionUpdate(ch))
	if err != nil {
		return fmt.Errorf("bff store: transition saga: %w", err)
	}
	if res.MatchedCount == 0 {
		return bff.ErrStateChanged
	}
	return nil
}

// DueSagas lists open sagas whose next attempt is due, oldest first.
func (s *Store) DueSagas(ctx context.Context, now time.Time, limit int) ([]*bff.Saga, error) {
	cur, err := s.sagas.Find(ctx, bson.D{
		{Key: "state", Value: bson.D{{Key: "$in", Value: bff.OpenStates}}},
		{Key: "next_attempt_at", Value: bson.D{{Key: "$lte", Value: now.UTC()}}},
	}, options.Find().SetSort(bson.D{{Key: "next_attempt_at", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("bff store: due sagas: %w", err)
	}
	var docs []sagaDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("bff store: due sagas: %w", err)
	}
	out := make([]*bff.Saga, len(docs))
	for i, d := range docs {
		out[i] = d.toSaga()
	}
	return out, nil
}

// SagasWithUser lists the ids of the sagas recording userID.
func (s *Store) SagasWithUser(ctx context.Context, userID string) ([]string, error) {
	cur, err := s.sagas.Find(ctx, bson.D{{Key: "user_id", Value: userID}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(100))
	if err != nil {
		return nil, fmt.Errorf("bff store: sagas with user: %w", err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("bff store: sagas with user: %w", err)
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	return ids, nil
}

// CountOpen counts the non-terminal sagas.
func (s *Store) CountOpen(ctx context.Context) (int64, error) {
	n, err := s.sagas.CountDocuments(ctx, bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bff.OpenStates}}}})
	if err != nil {
		return 0, fmt.Errorf("bff store: count open sagas: %w", err)
	}
	return n, nil
}

// SweepSagas deletes the finished sagas last changed before before.
func (s *Store) SweepSagas(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.sagas.DeleteMany(ctx, bson.D{
		{Key: "state", Value: bson.D{{Key: "$in", Value: bff.SweptStates}}},
		{Key: "updated_at", Value: bson.D{{Key: "$lt", Value: before.UTC()}}},
	})
	if err != nil {
		return 0, fmt.Errorf("bff store: sweep sagas: %w", err)
	}
	return res.DeletedCount, nil
}
