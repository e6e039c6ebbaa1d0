package mongodb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newStore(t *testing.T) *Store {
	t.Helper()
	_, db := testenv.Mongo(t)
	s, err := New(context.Background(), db)
	testenv.Must(t, err, "store")
	// Opening it again (a second replica, a restart) must work too.
	_, err = New(context.Background(), db)
	testenv.Must(t, err, "store again")
	return s
}

func TestLeaseHasOneHolder(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	const n = 20
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won []string
	)
	for i := range n {
		wg.Go(func() {
			owner := fmt.Sprintf("worker-%d", i)
			ok, err := s.AcquireLease(ctx, "saga-1", owner, now, now.Add(time.Minute))
			if err != nil {
				t.Errorf("acquire: %v", err)
				return
			}
			if ok {
				mu.Lock()
				won = append(won, owner)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d holders (%v), want exactly 1", len(won), won)
	}
	// Someone else's release does not free it; the holder's does.
	testenv.Must(t, s.ReleaseLease(ctx, "saga-1", "not-the-holder"), "release by another")
	if ok, _ := s.AcquireLease(ctx, "saga-1", "late", now, now.Add(time.Minute)); ok {
		t.Fatal("lease taken while held")
	}
	testenv.Must(t, s.ReleaseLease(ctx, "saga-1", won[0]), "release")
	if ok, err := s.AcquireLease(ctx, "saga-1", "next", now, now.Add(time.Minute)); !ok || err != nil {
		t.Fatalf("acquire after release: %v %v", ok, err)
	}
	// An expired lease is taken over, by exactly one of many.
	later := now.Add(2 * time.Minute)
	won = nil
	for i := range n {
		wg.Go(func() {
			owner := fmt.Sprintf("late-%d", i)
			if ok, err := s.AcquireLease(ctx, "saga-1", owner, later, later.Add(time.Minute)); err == nil && ok {
				mu.Lock()
				won = append(won, owner)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d holders of the expired lease (%v), want exactly 1", len(won), won)
	}
}

// Both ways of guarding a transition are exercised against the embedded
// FerretDB: the read-then-write by _id it gets in production, and the one
// update filtered by _id and state that MongoDB gets.
func TestSagaTransitions(t *testing.T) {
	t.Parallel()
	for _, byRead := range []bool{true, false} {
		t.Run(fmt.Sprintf("guardByRead=%v", byRead), func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			if !s.guardByRead {
				t.Fatal("the embedded FerretDB was not recognised")
			}
			s.guardByRead = byRead
			testSagaTransitions(t, s)
		})
	}
}

func testSagaTransitions(t *testing.T, s *Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	sg := &bff.Saga{
		ID: "s1", Kind: bff.KindRegister, State: bff.StateStarted, EmailHash: "h",
		EmailSealed: []byte("sealed-email"), NextAttemptAt: now.Add(time.Second),
		CreatedAt: now, UpdatedAt: now, Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	testenv.Must(t, s.CreateSaga(ctx, sg), "create")
	if err := s.CreateSaga(ctx, sg); err == nil {
		t.Fatal("second create of one id succeeded")
	}
	if _, err := s.GetSaga(ctx, "nope"); !errors.Is(err, bff.ErrSagaNotFound) {
		t.Fatalf("missing saga: %v", err)
	}
	if due, _ := s.DueSagas(ctx, now, 10); len(due) != 0 {
		t.Fatalf("not yet due: %v", due)
	}
	if due, _ := s.DueSagas(ctx, now.Add(2*time.Second), 10); len(due) != 1 || due[0].ID != "s1" {
		t.Fatalf("due: %v", due)
	}
	ch := bff.SagaChange{State: bff.StateUserCreated, At: now, UserID: "u1", TokenSealed: []byte("sealed-token"),
		TokenExpiresAt: now.Add(time.Minute), Attempts: 2, SetAttempts: true, LastError: "x"}
	testenv.Must(t, s.TransitionSaga(ctx, "s1", 0, ch), "transition")
	// The fence: a second worker that still holds version 0 loses.
	if err := s.TransitionSaga(ctx, "s1", 0, bff.SagaChange{State: bff.StateFailed, At: now}); !errors.Is(err, bff.ErrStateChanged) {
		t.Fatalf("stale transition: %v", err)
	}
	if err := s.TransitionSaga(ctx, "nope", 0, bff.SagaChange{State: bff.StateFailed, At: now}); !errors.Is(err, bff.ErrStateChanged) {
		t.Fatalf("transition of a missing saga: %v", err)
	}
	got, err := s.GetSaga(ctx, "s1")
	testenv.Must(t, err, "get")
	if got.State != bff.StateUserCreated || got.Version != 1 || got.UserID != "u1" || string(got.TokenSealed) != "sealed-token" ||
		got.Attempts != 2 || got.LastError != "x" || string(got.EmailSealed) != "sealed-email" || got.Traceparent != sg.Traceparent {
		t.Fatalf("after transition: %+v", got)
	}
	if st, _ := s.Stats(ctx); st.Open != 1 || !st.OldestOpen.Equal(now) {
		t.Fatalf("stats: %+v", st)
	}
	// A terminal transition wipes the sealed secrets and keeps the answer.
	testenv.Must(t, s.TransitionSaga(ctx, "s1", 1, bff.SagaChange{State: bff.StateCompleted, At: now, CustomerID: "c1", WipeSecrets: true, AnswerSealed: []byte("answer")}), "complete")
	got, _ = s.GetSaga(ctx, "s1")
	if got.State != bff.StateCompleted || got.Version != 2 || got.CustomerID != "c1" || got.EmailSealed != nil || got.TokenSealed != nil || string(got.AnswerSealed) != "answer" {
		t.Fatalf("after completion: %+v", got)
	}
	if st, _ := s.Stats(ctx); st.Open != 0 || !st.OldestOpen.IsZero() {
		t.Fatalf("stats after completion: %+v", st)
	}
	if due, _ := s.DueSagas(ctx, now.Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("a completed saga is due: %v", due)
	}
}

// Issue 14, scenario 5: of many workers that read one version of a saga
// (one whose lease expired and those that took over), exactly one moves
// it; on the embedded FerretDB, whose read-then-write transitions let two
// win before.
func TestTransitionHasOneWinner(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	testenv.Must(t, s.CreateSaga(ctx, &bff.Saga{ID: "s", Kind: bff.KindRegister, State: bff.StateUserCreated, CreatedAt: now, UpdatedAt: now}), "create")
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		won []string
	)
	for i := range 20 {
		wg.Go(func() {
			to := bff.StateCompleted
			if i%2 == 1 {
				to = bff.StateCompensating
			}
			err := s.TransitionSaga(ctx, "s", 0, bff.SagaChange{State: to, At: now, LastError: fmt.Sprint(i)})
			switch {
			case err == nil:
				mu.Lock()
				won = append(won, fmt.Sprint(i))
				mu.Unlock()
			case !errors.Is(err, bff.ErrStateChanged):
				t.Errorf("transition: %v", err)
			}
		})
	}
	wg.Wait()
	got, err := s.GetSaga(ctx, "s")
	testenv.Must(t, err, "get")
	if len(won) != 1 || got.LastError != won[0] || got.Version != 1 {
		t.Fatalf("winners %v, saga %+v", won, got)
	}
}

// A saga written by the previous release (no version) moves on, with
// either guard.
func TestTransitionOfAnUnversionedSaga(t *testing.T) {
	t.Parallel()
	for _, byRead := range []bool{true, false} {
		s := newStore(t)
		s.guardByRead = byRead
		ctx := context.Background()
		_, err := s.sagas.InsertOne(ctx, bson.D{{Key: "_id", Value: "old"}, {Key: "kind", Value: bff.KindRegister}, {Key: "state", Value: bff.StateUserCreated}})
		testenv.Must(t, err, "insert")
		testenv.Must(t, s.TransitionSaga(ctx, "old", 0, bff.SagaChange{State: bff.StateCompleted, At: time.Now()}), "transition")
		var d sagaDoc
		testenv.Must(t, s.sagas.FindOne(ctx, bson.D{{Key: "_id", Value: "old"}}).Decode(&d), "raw")
		if d.State != bff.StateCompleted || d.Version != 1 {
			t.Fatalf("guardByRead=%v: document %+v", byRead, d)
		}
	}
}

// A writer that dies between its fence and the saga's update: the next
// read rolls the transition forward, and a writer at the old version loses.
func TestTransitionRolledForward(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	testenv.Must(t, s.CreateSaga(ctx, &bff.Saga{ID: "s", Kind: bff.KindRegister, State: bff.StateUserCreated, EmailSealed: []byte("e"), CreatedAt: now, UpdatedAt: now}), "create")
	ch := bff.SagaChange{State: bff.StateCompleted, At: now, CustomerID: "c1", WipeSecrets: true}
	_, err := s.fences.InsertOne(ctx, fenceDoc{ID: fenceID("s", 1), SagaID: "s", Version: 1, Change: toChangeDoc(ch)})
	testenv.Must(t, err, "fence only")
	got, err := s.GetSaga(ctx, "s")
	testenv.Must(t, err, "get")
	if got.State != bff.StateCompleted || got.Version != 1 || got.CustomerID != "c1" || got.EmailSealed != nil || !got.NextAttemptAt.IsZero() {
		t.Fatalf("not rolled forward: %+v", got)
	}
	if err := s.TransitionSaga(ctx, "s", 0, bff.SagaChange{State: bff.StateCompensating, At: now}); !errors.Is(err, bff.ErrStateChanged) {
		t.Fatalf("stale writer: %v", err)
	}
	// The document itself was rolled forward too.
	var d sagaDoc
	testenv.Must(t, s.sagas.FindOne(ctx, bson.D{{Key: "_id", Value: "s"}}).Decode(&d), "raw")
	if d.State != bff.StateCompleted || d.Version != 1 {
		t.Fatalf("document: %+v", d)
	}
}

// Issue 14, scenario 7: leases orphaned by a crash (no saga was ever
// written) or by a failed release are swept once expired; live ones stay.
func TestSweepLeases(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	for id, exp := range map[string]time.Time{"orphan": now.Add(-time.Minute), "unreleased": now.Add(-time.Second), "live": now.Add(time.Minute)} {
		ok, err := s.AcquireLease(ctx, id, "o-"+id, now.Add(-2*time.Minute), exp)
		if !ok || err != nil {
			t.Fatalf("acquire %s: %v %v", id, ok, err)
		}
	}
	n, err := s.SweepLeases(ctx, now)
	if err != nil || n != 2 {
		t.Fatalf("swept %d (%v), want 2", n, err)
	}
	if ok, _ := s.AcquireLease(ctx, "live", "other", now, now.Add(time.Minute)); ok {
		t.Fatal("the live lease was swept")
	}
	if ok, _ := s.AcquireLease(ctx, "orphan", "other", now, now.Add(time.Minute)); !ok {
		t.Fatal("the orphaned lease is still there")
	}
}

// The sweep deletes exactly the finished sagas last changed before the
// cut: not those that need attention, not open ones, not recent ones.
func TestSweepSagas(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	cut := time.Now().UTC().Truncate(time.Millisecond)
	old, recent := cut.Add(-time.Hour), cut.Add(time.Minute)
	for id, sg := range map[string]bff.Saga{
		"old-completed":       {State: bff.StateCompleted, UpdatedAt: old},
		"old-compensated":     {State: bff.StateCompensated, UpdatedAt: old},
		"old-failed":          {State: bff.StateFailed, UpdatedAt: old},
		"old-needs-attention": {State: bff.StateNeedsAttention, UpdatedAt: old},
		"old-open":            {State: bff.StateUserCreated, UpdatedAt: old},
		"recent-completed":    {State: bff.StateCompleted, UpdatedAt: recent},
	} {
		sg.ID, sg.Kind, sg.CreatedAt = id, bff.KindRegister, old
		testenv.Must(t, s.CreateSaga(ctx, &sg), "create %s", id)
	}
	n, err := s.SweepSagas(ctx, cut)
	if err != nil || n != 3 {
		t.Fatalf("swept %d (%v), want 3", n, err)
	}
	for _, id := range []string{"old-completed", "old-compensated", "old-failed"} {
		if _, err := s.GetSaga(ctx, id); !errors.Is(err, bff.ErrSagaNotFound) {
			t.Errorf("%s: %v, want it deleted", id, err)
		}
	}
	for _, id := range []string{"old-needs-attention", "old-open", "recent-completed"} {
		if _, err := s.GetSaga(ctx, id); err != nil {
			t.Errorf("%s: %v, want it kept", id, err)
		}
	}
}

func BenchmarkTransitionUpdate(b *testing.B) {
	now := time.Now()
	ch := bff.SagaChange{State: bff.StateUserCreated, At: now, UserID: "0b9f4a8e-3c3e-4f7e-9a53-6a9f0e2d6c11",
		TokenSealed: make([]byte, 300), TokenExpiresAt: now.Add(time.Minute), NextAttemptAt: now.Add(time.Second)}
	b.ReportAllocs()
	for b.Loop() {
		_ = TransitionUpdate(ch, 1)
	}
}

// Sagas written by the previous release have no open markers: opening the
// store gives the open and parked ones theirs (once, however often it is
// opened), so the reconciler, which reads only the markers, still finds
// them.
func TestOpenMarkersMigrated(t *testing.T) {
	t.Parallel()
	_, db := testenv.Mongo(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	old := now.Add(-time.Hour)
	for id, state := range map[string]string{"open": bff.StateUserCreated, "verifying": bff.StateVerifying,
		"parked": bff.StateNeedsAttention, "done": bff.StateCompleted, "failed": bff.StateFailed} {
		// The old shape: no version, no marker.
		_, err := db.Collection(SagasCollection).InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "kind", Value: bff.KindRegister},
			{Key: "state", Value: state}, {Key: "attempts", Value: int32(0)}, {Key: "next_attempt_at", Value: old},
			{Key: "created_at", Value: old}, {Key: "updated_at", Value: old}})
		testenv.Must(t, err, "insert %s", id)
	}
	var s *Store
	for range 2 {
		var err error
		s, err = New(ctx, db)
		testenv.Must(t, err, "open the store")
	}
	if n, _ := s.open.CountDocuments(ctx, bson.D{}); n != 3 {
		t.Fatalf("%d markers, want 3 (open, verifying, parked)", n)
	}
	st, err := s.Stats(ctx)
	testenv.Must(t, err, "stats")
	if st.Open != 2 || st.NeedsAttention != 1 || !st.OldestOpen.Equal(old) {
		t.Fatalf("stats %+v", st)
	}
	due, err := s.DueSagas(ctx, now, 10)
	testenv.Must(t, err, "due")
	if len(due) != 2 {
		t.Fatalf("due %v, want open and verifying", due)
	}
	testenv.Must(t, s.TransitionSaga(ctx, "open", 0, bff.SagaChange{State: bff.StateCompleted, At: now}), "complete")
	if st, _ := s.Stats(ctx); st.Open != 1 {
		t.Fatalf("stats after completion %+v", st)
	}
}

// What a crash leaves of the markers is repaired by the reconciler's read:
// the marker of a saga that finished (the crash came between its
// transition and the marker's deletion), of one parked, of one whose due
// time moved; and the marker of a saga never written, once it is old.
func TestOpenMarkersRepaired(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, id := range []string{"finished", "parked", "later", "due"} {
		testenv.Must(t, s.CreateSaga(ctx, &bff.Saga{ID: id, Kind: bff.KindRegister, State: bff.StateUserCreated,
			NextAttemptAt: now.Add(-time.Second), CreatedAt: now, UpdatedAt: now}), "create %s", id)
	}
	// The transitions land, the markers' upkeep does not (as after a crash).
	for id, ch := range map[string]bff.SagaChange{
		"finished": {State: bff.StateCompleted, At: now},
		"parked":   {State: bff.StateNeedsAttention, At: now},
		"later":    {State: bff.StateUserCreated, At: now, NextAttemptAt: now.Add(time.Hour)},
	} {
		_, err := s.sagas.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, TransitionUpdate(ch, 1))
		testenv.Must(t, err, "transition %s", id)
	}
	for id, age := range map[string]time.Duration{"orphan-old": orphanGrace + time.Minute, "orphan-young": time.Minute} {
		_, err := s.open.InsertOne(ctx, openDoc{ID: id, Kind: bff.KindRegister, CreatedAt: now.Add(-age), NextAttemptAt: now.Add(-age)})
		testenv.Must(t, err, "orphan marker")
	}
	due, err := s.DueSagas(ctx, now, 10)
	testenv.Must(t, err, "due")
	if len(due) != 1 || due[0].ID != "due" {
		t.Fatalf("due %v, want only \"due\"", due)
	}
	markers, err := s.markers(ctx)
	testenv.Must(t, err, "markers")
	got := map[string]openDoc{}
	for _, m := range markers {
		got[m.ID] = m
	}
	if _, ok := got["finished"]; ok || len(got) != 4 || !got["parked"].Parked || !got["later"].NextAttemptAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("markers after the repair: %+v", got)
	}
	if _, ok := got["orphan-young"]; !ok {
		t.Fatal("a young marker without its saga was deleted (its insert may still land)")
	}
	if st, _ := s.Stats(ctx); st.Open != 3 || st.NeedsAttention != 1 {
		t.Fatalf("stats %+v", st)
	}
}
