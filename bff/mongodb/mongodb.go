// Package mongodb keeps the BFF's durable state in MongoDB (or the embedded
// FerretDB): saga records, saga leases and idempotency records.
//
// Collections and documents (BSON types in brackets):
//
//	sagas             {_id [string, saga id], kind, state, user_id, customer_id,
//	                   email_hash [hex HMAC], email_sealed [binary], token_sealed [binary],
//	                   token_expires_at [date], idempotency_key_id, attempts [int32],
//	                   next_attempt_at [date], last_error, traceparent,
//	                   created_at [date], updated_at [date]}
//	                  indexes: {state, next_attempt_at}, {user_id}, {state, updated_at}
//	saga_leases       {_id [string, random per lease], saga_id [unique], owner,
//	                   expires_at [date]}
//	idempotency_keys  {_id [string, the owner: random per claim], owner [the same, for
//	                   the previous release], key_id [unique, hex SHA-256 of the key],
//	                   check, state,
//	                   lease_expires_at [date], saga_id, status [int32],
//	                   answer [binary, AES-GCM], created_at [date], expires_at [date]}
//	                  indexes: {key_id} unique, {expires_at}
//
// Everything contended is an insert with a unique _id (a lease, a key);
// updates are guarded by the expected state and done only by the holder of
// the saga's lease (or the key's owner), so they hold on FerretDB, whose
// updates of one document are not atomic. Expiry is an application sweep
// (FerretDB has no TTL indexes).
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
	"github.com/acme/customer-platform/internal/mongodb"
)

// Collection names.
const (
	SagasCollection  = "sagas"
	LeasesCollection = "saga_leases"
	KeysCollection   = "idempotency_keys"
)

// Store implements bff.SagaStore, bff.LeaseStore and bff.IdempotencyStore.
type Store struct {
	sagas  *mongo.Collection
	leases *mongo.Collection
	keys   *mongo.Collection
	// guardByRead makes a saga transition read the state by _id and
	// write by _id (FerretDB) instead of one update filtered by _id and
	// state (MongoDB); see mongodb.IsFerretDB.
	guardByRead bool
}

var (
	_ bff.SagaStore        = (*Store)(nil)
	_ bff.LeaseStore       = (*Store)(nil)
	_ bff.IdempotencyStore = (*Store)(nil)
)

// New returns the store over db and creates its indexes.
func New(ctx context.Context, db *mongo.Database) (*Store, error) {
	ferret, err := mongodb.IsFerretDB(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("bff store: %w", err)
	}
	s := &Store{
		sagas:       db.Collection(SagasCollection),
		leases:      db.Collection(LeasesCollection),
		keys:        db.Collection(KeysCollection),
		guardByRead: ferret,
	}
	// One index per call: FerretDB v1 drops the connection when a
	// createIndexes of several indexes finds them existing already.
	for _, ix := range []struct {
		c      *mongo.Collection
		keys   bson.D
		unique bool
	}{
		{s.sagas, bson.D{{Key: "state", Value: 1}, {Key: "next_attempt_at", Value: 1}}, false},
		{s.sagas, bson.D{{Key: "user_id", Value: 1}}, false},
		{s.sagas, bson.D{{Key: "state", Value: 1}, {Key: "updated_at", Value: 1}}, false},
		{s.leases, bson.D{{Key: "saga_id", Value: 1}}, true},
		{s.keys, bson.D{{Key: "key_id", Value: 1}}, true},
		{s.keys, bson.D{{Key: "expires_at", Value: 1}}, false},
	} {
		if _, err := ix.c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetUnique(ix.unique)}); err != nil {
			return nil, fmt.Errorf("bff store: index of %s: %w", ix.c.Name(), err)
		}
	}
	return s, nil
}

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
		_, err := s.leases.InsertOne(ctx, leaseDoc{ID: bff.NewID(), SagaID: id, Owner: owner, ExpiresAt: expires.UTC()})
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

// leaseDoc is the stored shape of a lease.
type leaseDoc struct {
	ID        string    `bson:"_id"`
	SagaID    string    `bson:"saga_id"`
	Owner     string    `bson:"owner"`
	ExpiresAt time.Time `bson:"expires_at"`
}

// ReleaseLease deletes owner's lease of id.
func (s *Store) ReleaseLease(ctx context.Context, id, owner string) error {
	if _, err := s.leases.DeleteOne(ctx, bson.D{{Key: "saga_id", Value: id}, {Key: "owner", Value: owner}}); err != nil {
		return fmt.Errorf("bff store: release lease: %w", err)
	}
	return nil
}

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

// DeleteKey deletes owner's in-flight record.
func (s *Store) DeleteKey(ctx context.Context, keyID, owner string) error {
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
