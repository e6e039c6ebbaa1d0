package mongodb

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/indexcheck"
)

// hotPath drives what a registration and an account deletion send to the
// store (docs/indexes.md): create, read and move a saga, claim and release
// its lease, claim and complete or release an idempotency key.
func hotPath(t *testing.T, s *Store, id string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	owner := "owner-" + id
	ok, err := s.AcquireLease(ctx, id, owner, now, now.Add(time.Minute))
	if err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	key := &bff.IdempotencyRecord{KeyID: "key-" + id, Check: "c", State: bff.KeyInFlight, Owner: owner,
		LeaseExpiresAt: now.Add(time.Minute), SagaID: id, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	testenv.Must(t, s.InsertKey(ctx, key), "insert key")
	testenv.Must(t, s.CreateSaga(ctx, &bff.Saga{ID: id, Kind: bff.KindRegister, State: bff.StateStarted,
		NextAttemptAt: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now}), "create")
	testenv.Must(t, s.TransitionSaga(ctx, id, 0, bff.SagaChange{State: bff.StateUserCreated, At: now, UserID: "u"}), "transition")
	testenv.Must(t, s.TransitionSaga(ctx, id, 1, bff.SagaChange{State: bff.StateUserCreated, At: now, NextAttemptAt: now.Add(time.Second)}), "retry later")
	if _, err := s.GetSaga(ctx, id); err != nil {
		t.Fatalf("get: %v", err)
	}
	testenv.Must(t, s.TransitionSaga(ctx, id, 2, bff.SagaChange{State: bff.StateCompleted, At: now, WipeSecrets: true}), "complete")
	testenv.Must(t, s.CompleteKey(ctx, "key-"+id, key.Owner, 201, []byte("answer"), now), "complete key")
	if _, err := s.GetKey(ctx, "key-"+id, now); err != nil {
		t.Fatalf("get key: %v", err)
	}
	if err := s.InsertKey(ctx, &bff.IdempotencyRecord{KeyID: "key-" + id, Owner: "retry", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, bff.ErrKeyExists) {
		t.Fatalf("a retry's claim: %v", err)
	}
	testenv.Must(t, s.DeleteKey(ctx, "key-"+id, key.Owner, now), "release a done key (a no-op)")
	testenv.Must(t, s.ReleaseLease(ctx, id, owner), "release")
}

// Every query the store sends is served by an index it creates, on
// MongoDB; the exempt ones read collections as large as the open work, or
// run in the background sweeps.
func TestEveryQueryIsIndexed(t *testing.T) {
	t.Parallel()
	rec, db := indexcheck.Connect(t)
	ctx := context.Background()
	s, err := New(ctx, db)
	testenv.Must(t, err, "store")
	hotPath(t, s, "s1")
	now := time.Now().UTC()
	// The rest: the reconciler's reads and sweeps, the retry paths.
	testenv.Must(t, s.CreateSaga(ctx, &bff.Saga{ID: "s2", Kind: bff.KindRegister, State: bff.StateStarted, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now}), "create")
	_, err = s.DueSagas(ctx, now.Add(time.Minute), 10)
	testenv.Must(t, err, "due")
	_, err = s.Stats(ctx)
	testenv.Must(t, err, "stats")
	_, err = s.AcquireLease(ctx, "s2", "a", now, now.Add(time.Second))
	testenv.Must(t, err, "acquire")
	if ok, err := s.AcquireLease(ctx, "s2", "b", now.Add(time.Minute), now.Add(2*time.Minute)); !ok || err != nil {
		t.Fatalf("takeover: %v %v", ok, err)
	}
	_, err = s.SweepKeys(ctx, now)
	testenv.Must(t, err, "sweep keys")
	_, err = s.SweepLeases(ctx, now)
	testenv.Must(t, err, "sweep leases")
	_, err = s.SweepSagas(ctx, now.Add(time.Hour))
	testenv.Must(t, err, "sweep sagas")
	rec.CheckIndexed(t, db,
		indexcheck.Exempt{Collection: OpenCollection, Command: "find", Fields: []string{}, Reason: "the open markers: DueSagas and Stats read them all, as many as the open sagas"},
		indexcheck.Exempt{Collection: LegacyKeysCollection, Command: "find", Fields: []string{}, Reason: "the previous release's idempotency records, moved at start: empty once upgraded"},
	)
}

// The per-request operations are lone _id lookups, the only filter the
// embedded FerretDB answers without reading every document.
func TestHotPathIsByID(t *testing.T) {
	t.Parallel()
	rec, db := indexcheck.Connect(t)
	s, err := New(context.Background(), db)
	testenv.Must(t, err, "store")
	rec.Reset()
	hotPath(t, s, "s1")
	rec.CheckIDOnly(t)
}
