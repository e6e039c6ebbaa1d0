package mongodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// CreateSaga inserts a new saga: first its open marker (unless it is
// created finished), then the saga. A crash between the two leaves a
// marker without a saga, which DueSagas deletes once it is older than
// orphanGrace; the other order could leave an open saga no reconciler
// ever finds.
func (s *Store) CreateSaga(ctx context.Context, sg *bff.Saga) error {
	if tracked(sg.State) {
		m := openDoc{ID: sg.ID, Kind: sg.Kind, CreatedAt: sg.CreatedAt.UTC(), NextAttemptAt: sg.NextAttemptAt.UTC(), Parked: sg.State == bff.StateNeedsAttention}
		if _, err := s.open.InsertOne(ctx, m); err != nil && !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("bff store: create saga: open marker: %w", err)
		}
	}
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
	if err != nil {
		return err
	}
	if !matched {
		// Nothing matched: rolled forward by a reader already, or no such saga.
		if n, err := s.sagas.CountDocuments(ctx, bson.D{{Key: "_id", Value: id}}); err == nil && n == 0 {
			return bff.ErrStateChanged
		}
	}
	s.keepMarker(ctx, id, ch.State, ch.NextAttemptAt)
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

// DueSagas lists open sagas whose next attempt is due, oldest first. It
// reads the open markers (a collection as large as the open work, not the
// history: a marker is deleted when its saga finishes), picks those whose
// next attempt is due, and reads each of those sagas by _id, repairing
// what a crash left behind: the marker of a finished saga is deleted, the
// one of a parked saga marked parked, a stale due time brought up to date,
// and a marker whose saga was never written (a crash between the two
// inserts of CreateSaga) deleted once it is older than orphanGrace.
func (s *Store) DueSagas(ctx context.Context, now time.Time, limit int) ([]*bff.Saga, error) {
	markers, err := s.markers(ctx)
	if err != nil {
		return nil, fmt.Errorf("bff store: due sagas: %w", err)
	}
	due := markers[:0]
	for _, m := range markers {
		if !m.Parked && !m.NextAttemptAt.After(now) {
			due = append(due, m)
		}
	}
	slices.SortFunc(due, func(a, b openDoc) int { return a.NextAttemptAt.Compare(b.NextAttemptAt) })
	var out []*bff.Saga
	for _, m := range due {
		if len(out) >= limit {
			break
		}
		sg, err := s.GetSaga(ctx, m.ID)
		switch {
		case errors.Is(err, bff.ErrSagaNotFound):
			if now.Sub(m.CreatedAt) > orphanGrace {
				_, _ = s.open.DeleteOne(ctx, bson.D{{Key: "_id", Value: m.ID}})
			}
			continue
		case err != nil:
			return nil, fmt.Errorf("bff store: due sagas: %w", err)
		case !slices.Contains(bff.OpenStates, sg.State):
			s.keepMarker(ctx, sg.ID, sg.State, time.Time{})
			continue
		case sg.NextAttemptAt.After(now):
			s.keepMarker(ctx, sg.ID, sg.State, sg.NextAttemptAt)
			continue
		}
		out = append(out, sg)
	}
	return out, nil
}

// orphanGrace is how old a marker without its saga must be before
// DueSagas deletes it: far longer than any insert of a saga can take (its
// call is bounded by the store timeout), so the saga of a marker deleted
// this way can no longer appear.
const orphanGrace = 10 * time.Minute

// openDoc is a saga's open marker: its _id is the saga's, it exists from
// the saga's creation until the saga finishes (completed, compensated,
// failed), and it is the reconciler's view of the open work. Parked:
// the saga needs attention (kept for an operator, no longer worked on).
// NextAttemptAt is a copy of the saga's, kept up to date after each
// transition that moves it (by the lease holder, by _id): a hint that
// DueSagas checks against the saga itself.
type openDoc struct {
	ID            string    `bson:"_id"`
	Kind          string    `bson:"kind"`
	CreatedAt     time.Time `bson:"created_at"`
	NextAttemptAt time.Time `bson:"next_attempt_at"`
	Parked        bool      `bson:"parked,omitempty"`
}

// tracked reports whether a saga in state has an open marker.
func tracked(state string) bool { return !slices.Contains(bff.SweptStates, state) }

// markers reads every open marker: a scan of a collection as large as
// the open and parked sagas.
func (s *Store) markers(ctx context.Context) ([]openDoc, error) {
	cur, err := s.open.Find(ctx, bson.D{})
	if err != nil {
		return nil, err
	}
	var docs []openDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	return docs, nil
}

// keepMarker brings the open marker of saga id in line with a transition
// to state (and its next attempt, when set): deleted when the saga is
// finished, parked when it needs attention, else its due time updated.
// Best effort: a marker left behind is repaired by DueSagas.
func (s *Store) keepMarker(ctx context.Context, id, state string, next time.Time) {
	filter := bson.D{{Key: "_id", Value: id}}
	switch {
	case !tracked(state):
		_, _ = s.open.DeleteOne(ctx, filter)
	case state == bff.StateNeedsAttention:
		_, _ = s.open.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "parked", Value: true}}}})
	case !next.IsZero():
		_, _ = s.open.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "next_attempt_at", Value: next.UTC()}}}})
	}
}

// Stats counts the open sagas and those that need attention, and finds
// the oldest open one, from the open markers (one read of a collection as
// large as the open work). A finished saga whose marker a crash left
// behind counts as open until DueSagas repairs it.
func (s *Store) Stats(ctx context.Context) (bff.SagaStats, error) {
	var st bff.SagaStats
	markers, err := s.markers(ctx)
	if err != nil {
		return st, fmt.Errorf("bff store: saga stats: %w", err)
	}
	for _, m := range markers {
		if m.Parked {
			st.NeedsAttention++
			continue
		}
		st.Open++
		if st.OldestOpen.IsZero() || m.CreatedAt.Before(st.OldestOpen) {
			st.OldestOpen = m.CreatedAt
		}
	}
	return st, nil
}

// backfillMarkers gives every open or parked saga written by the previous
// release (which kept no markers) its marker: one read of the sagas by
// state at start, inserts whose duplicates are ignored, so it is
// idempotent and safe with other replicas running. A marker of a saga that
// finished meanwhile is deleted by the next DueSagas.
func (s *Store) backfillMarkers(ctx context.Context) error {
	states := append(slices.Clone(bff.OpenStates), bff.StateNeedsAttention)
	cur, err := s.sagas.Find(ctx, bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: states}}}},
		options.Find().SetProjection(bson.D{{Key: "kind", Value: 1}, {Key: "state", Value: 1}, {Key: "created_at", Value: 1}, {Key: "next_attempt_at", Value: 1}}))
	if err != nil {
		return fmt.Errorf("bff store: open markers: %w", err)
	}
	var docs []sagaDoc
	if err := cur.All(ctx, &docs); err != nil {
		return fmt.Errorf("bff store: open markers: %w", err)
	}
	if len(docs) == 0 {
		return nil
	}
	markers := make([]any, len(docs))
	for i, d := range docs {
		markers[i] = openDoc{ID: d.ID, Kind: d.Kind, CreatedAt: d.CreatedAt, NextAttemptAt: d.NextAttemptAt, Parked: d.State == bff.StateNeedsAttention}
	}
	_, err = s.open.InsertMany(ctx, markers, options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError == nil && allDuplicates(bwe.WriteErrors) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("bff store: open markers: %w", err)
	}
	return nil
}

func allDuplicates(errs []mongo.BulkWriteError) bool {
	for _, e := range errs {
		if e.Code != 11000 {
			return false
		}
	}
	return true
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
