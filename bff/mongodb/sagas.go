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
	AnswerSealed     []byte    `bson:"answer_sealed,omitempty"`
	Version          int32     `bson:"version"`
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
		AnswerSealed: s.AnswerSealed, Version: int32(s.Version),
		Attempts: int32(s.Attempts), NextAttemptAt: s.NextAttemptAt.UTC(), LastError: s.LastError,
		Traceparent: s.Traceparent, CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
	}
}

func (d sagaDoc) toSaga() *bff.Saga {
	return &bff.Saga{
		ID: d.ID, Kind: d.Kind, State: d.State, UserID: d.UserID, CustomerID: d.CustomerID,
		EmailHash: d.EmailHash, EmailSealed: d.EmailSealed, TokenSealed: d.TokenSealed,
		TokenExpiresAt: d.TokenExpiresAt, IdempotencyKeyID: d.IdempotencyKeyID,
		AnswerSealed: d.AnswerSealed, Version: int(d.Version),
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

// GetSaga reads a saga, with every transition whose fence is written
// applied (a writer that died between its fence and the saga's update is
// rolled forward here).
func (s *Store) GetSaga(ctx context.Context, id string) (*bff.Saga, error) {
	var d sagaDoc
	err := s.sagas.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, bff.ErrSagaNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("bff store: get saga: %w", err)
	}
	sg := d.toSaga()
	for {
		var f fenceDoc
		err := s.fences.FindOne(ctx, bson.D{{Key: "_id", Value: fenceID(id, sg.Version+1)}}).Decode(&f)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return sg, nil
		}
		if err != nil {
			return nil, fmt.Errorf("bff store: get saga fence: %w", err)
		}
		ch := f.Change.toChange()
		if _, err := s.applyChange(ctx, id, sg.Version+1, ch); err != nil {
			return nil, err
		}
		bff.ApplyChange(sg, ch)
	}
}

// fenceDoc is one transition of a saga, inserted with the unique _id
// "<saga id>/<version>" before the saga is updated: of the writers that
// read one version, exactly one inserts the next fence (an insert with a
// unique key is atomic on MongoDB and FerretDB alike), and a writer that
// lost its lease and was overtaken finds the fence taken.
type fenceDoc struct {
	ID      string    `bson:"_id"`
	SagaID  string    `bson:"saga_id"`
	Version int32     `bson:"version"`
	Change  changeDoc `bson:"change"`
}

// changeDoc is the stored shape of a bff.SagaChange.
type changeDoc struct {
	State          string    `bson:"state"`
	At             time.Time `bson:"at"`
	UserID         string    `bson:"user_id,omitempty"`
	CustomerID     string    `bson:"customer_id,omitempty"`
	TokenSealed    []byte    `bson:"token_sealed,omitempty"`
	TokenExpiresAt time.Time `bson:"token_expires_at,omitempty"`
	WipeSecrets    bool      `bson:"wipe_secrets,omitempty"`
	AnswerSealed   []byte    `bson:"answer_sealed,omitempty"`
	Attempts       int32     `bson:"attempts,omitempty"`
	SetAttempts    bool      `bson:"set_attempts,omitempty"`
	NextAttemptAt  time.Time `bson:"next_attempt_at,omitempty"`
	LastError      string    `bson:"last_error,omitempty"`
}

func toChangeDoc(ch bff.SagaChange) changeDoc {
	return changeDoc{
		State: ch.State, At: ch.At.UTC(), UserID: ch.UserID, CustomerID: ch.CustomerID,
		TokenSealed: ch.TokenSealed, TokenExpiresAt: ch.TokenExpiresAt.UTC(), WipeSecrets: ch.WipeSecrets,
		AnswerSealed: ch.AnswerSealed, Attempts: int32(ch.Attempts), SetAttempts: ch.SetAttempts,
		NextAttemptAt: ch.NextAttemptAt.UTC(), LastError: ch.LastError,
	}
}

func (c changeDoc) toChange() bff.SagaChange {
	ch := bff.SagaChange{
		State: c.State, At: c.At, UserID: c.UserID, CustomerID: c.CustomerID,
		TokenSealed: c.TokenSealed, TokenExpiresAt: c.TokenExpiresAt, WipeSecrets: c.WipeSecrets,
		AnswerSealed: c.AnswerSealed, Attempts: int(c.Attempts), SetAttempts: c.SetAttempts, LastError: c.LastError,
	}
	if !c.NextAttemptAt.IsZero() && c.NextAttemptAt.Unix() > 0 {
		ch.NextAttemptAt = c.NextAttemptAt
	}
	return ch
}

func fenceID(sagaID string, version int) string { return fmt.Sprintf("%s/%d", sagaID, version) }

// TransitionUpdate encodes a transition to version as an update document.
func TransitionUpdate(ch bff.SagaChange, version int) bson.D {
	set := make(bson.D, 0, 11)
	set = append(set, bson.E{Key: "state", Value: ch.State}, bson.E{Key: "updated_at", Value: ch.At.UTC()},
		bson.E{Key: "version", Value: int32(version)})
	if ch.UserID != "" {
		set = append(set, bson.E{Key: "user_id", Value: ch.UserID})
	}
	if ch.CustomerID != "" {
		set = append(set, bson.E{Key: "customer_id", Value: ch.CustomerID})
	}
	if ch.TokenSealed != nil && !ch.WipeSecrets {
		set = append(set, bson.E{Key: "token_sealed", Value: ch.TokenSealed}, bson.E{Key: "token_expires_at", Value: ch.TokenExpiresAt.UTC()})
	}
	if ch.AnswerSealed != nil {
		set = append(set, bson.E{Key: "answer_sealed", Value: ch.AnswerSealed})
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

// TransitionSaga applies ch to the saga at version: first the fence of
// version+1 (its duplicate key means another writer moved the saga:
// ErrStateChanged), then the saga's document. A crash between the two is
// rolled forward by the next GetSaga, so the fence is the transition and
// the document its materialisation.
func (s *Store) TransitionSaga(ctx context.Context, id string, version int, ch bff.SagaChange) error {
	_, err := s.fences.InsertOne(ctx, fenceDoc{ID: fenceID(id, version+1), SagaID: id, Version: int32(version + 1), Change: toChangeDoc(ch)})
	if mongo.IsDuplicateKeyError(err) {
		return bff.ErrStateChanged
	}
	if err != nil {
		return fmt.Errorf("bff store: transition saga: %w", err)
	}
	matched, err := s.applyChange(ctx, id, version+1, ch)
	if err != nil || matched {
		return err
	}
	// Nothing matched: rolled forward by a reader already, or no such saga.
	if n, err := s.sagas.CountDocuments(ctx, bson.D{{Key: "_id", Value: id}}); err == nil && n == 0 {
		return bff.ErrStateChanged
	}
	return nil
}

// applyChange writes a fenced transition to the saga's document. On
// MongoDB the update is also filtered by the previous version, so a late
// roll-forward never overwrites a later transition; FerretDB gets the
// update by _id alone (a filter on another field decodes every saga, and
// its filtered update is not atomic either): a document left behind by
// such a race is rolled forward again by the next GetSaga.
func (s *Store) applyChange(ctx context.Context, id string, version int, ch bff.SagaChange) (matched bool, _ error) {
	filter := bson.D{{Key: "_id", Value: id}}
	if !s.guardByRead {
		// $not $gte, not $lt: a saga written by the previous release has no
		// version, and only this form matches a missing field.
		filter = append(filter, bson.E{Key: "version", Value: bson.D{{Key: "$not", Value: bson.D{{Key: "$gte", Value: int32(version)}}}}})
	}
	res, err := s.sagas.UpdateOne(ctx, filter, TransitionUpdate(ch, version))
	if err != nil {
		return false, fmt.Errorf("bff store: transition saga: %w", err)
	}
	return res.MatchedCount > 0, nil
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

// Stats counts the open sagas and those that need attention, and finds
// the oldest open one: three simple queries (see docs/ferretdb.md).
func (s *Store) Stats(ctx context.Context) (bff.SagaStats, error) {
	open := bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bff.OpenStates}}}}
	var st bff.SagaStats
	var err error
	if st.Open, err = s.sagas.CountDocuments(ctx, open); err != nil {
		return st, fmt.Errorf("bff store: count open sagas: %w", err)
	}
	if st.NeedsAttention, err = s.sagas.CountDocuments(ctx, bson.D{{Key: "state", Value: bff.StateNeedsAttention}}); err != nil {
		return st, fmt.Errorf("bff store: count sagas needing attention: %w", err)
	}
	if st.Open == 0 {
		return st, nil
	}
	var oldest struct {
		CreatedAt time.Time `bson:"created_at"`
	}
	err = s.sagas.FindOne(ctx, open, options.FindOne().SetSort(bson.D{{Key: "created_at", Value: 1}}).
		SetProjection(bson.D{{Key: "created_at", Value: 1}})).Decode(&oldest)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return st, fmt.Errorf("bff store: oldest open saga: %w", err)
	}
	st.OldestOpen = oldest.CreatedAt
	return st, nil
}

// SweepSagas deletes the finished sagas last changed before before, and
// their fences.
func (s *Store) SweepSagas(ctx context.Context, before time.Time) (int64, error) {
	cur, err := s.sagas.Find(ctx, bson.D{
		{Key: "state", Value: bson.D{{Key: "$in", Value: bff.SweptStates}}},
		{Key: "updated_at", Value: bson.D{{Key: "$lt", Value: before.UTC()}}},
	}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(1000))
	if err != nil {
		return 0, fmt.Errorf("bff store: sweep sagas: %w", err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return 0, fmt.Errorf("bff store: sweep sagas: %w", err)
	}
	if len(docs) == 0 {
		return 0, nil
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	in := bson.D{{Key: "$in", Value: ids}}
	if _, err := s.fences.DeleteMany(ctx, bson.D{{Key: "saga_id", Value: in}}); err != nil {
		return 0, fmt.Errorf("bff store: sweep saga fences: %w", err)
	}
	res, err := s.sagas.DeleteMany(ctx, bson.D{{Key: "_id", Value: in}})
	if err != nil {
		return 0, fmt.Errorf("bff store: sweep sagas: %w", err)
	}
	return res.DeletedCount, nil
}
