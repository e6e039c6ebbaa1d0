package bff

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedStore is a saga store whose GetSaga blocks until release is closed,
// counting the calls in flight.
type gatedStore struct {
	*memStore
	release           chan struct{}
	inFlight, maxSeen atomic.Int64
	calls             atomic.Int64
	// deadlines receives the deadline each call was given and whether its
	// context had already ended when the call was sent.
	deadlines chan callStart
}

type callStart struct {
	deadline time.Time
	ended    bool
}

func (g *gatedStore) GetSaga(ctx context.Context, id string) (*Saga, error) {
	g.calls.Add(1)
	n := g.inFlight.Add(1)
	defer g.inFlight.Add(-1)
	for {
		m := g.maxSeen.Load()
		if n <= m || g.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if g.deadlines != nil {
		d, _ := ctx.Deadline()
		g.deadlines <- callStart{deadline: d, ended: ctx.Err() != nil}
	}
	<-g.release
	return nil, ErrSagaNotFound
}

func newGated() *gatedStore {
	return &gatedStore{memStore: newMemStore(), release: make(chan struct{})}
}

func gatedBounded(st *gatedStore, slots int, wait, timeout time.Duration) bounded {
	return bounded{raw: rawStores{sagas: st, leases: st, keys: st}, timeout: timeout, gate: newGate(slots, wait)}
}

// TestStoreGateBoundsTheCallsInFlight: ten concurrent calls through a gate
// of three slots never have more than three at the store, and all of them
// are served once the store answers.
func TestStoreGateBoundsTheCallsInFlight(t *testing.T) {
	t.Parallel()
	st := newGated()
	b := gatedBounded(st, 3, time.Minute, time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Go(func() {
			_, err := b.GetSaga(context.Background(), "s"+string(rune('0'+i)))
			errs <- err
		})
	}
	for st.calls.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	close(st.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrSagaNotFound) {
			t.Errorf("a call failed: %v", err)
		}
	}
	if got := st.maxSeen.Load(); got > 3 {
		t.Errorf("%d calls in flight through a gate of 3 slots", got)
	}
	if got := st.calls.Load(); got != 10 {
		t.Errorf("%d calls reached the store, want 10", got)
	}
}

// TestStoreGateBusyIsUnsent: a call that waits longer than the gate's
// bound fails with ErrStoreBusy and never reaches the store; one whose
// caller gives up first fails with the caller's cause.
func TestStoreGateBusyIsUnsent(t *testing.T) {
	t.Parallel()
	st := newGated()
	defer close(st.release)
	b := gatedBounded(st, 1, 20*time.Millisecond, time.Minute)
	go func() { _, _ = b.GetSaga(context.Background(), "holder") }()
	for st.calls.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	_, err := b.GetSaga(context.Background(), "waiter")
	if !errors.Is(err, ErrStoreBusy) {
		t.Fatalf("a call that found no slot: %v, want ErrStoreBusy", err)
	}
	gone := errors.New("client gone")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(gone)
	if _, err := b.GetSaga(ctx, "cancelled"); !errors.Is(err, gone) {
		t.Fatalf("a cancelled call: %v, want its cause", err)
	}
	if got := st.calls.Load(); got != 1 {
		t.Fatalf("%d calls reached the store, want only the holder's", got)
	}
}

// TestStoreGateDeadlineStartsWithTheSlot: a call that waited for its slot
// longer than the store timeout still gets the whole timeout once it holds
// the slot (its deadline is after the moment the slot was freed).
func TestStoreGateDeadlineStartsWithTheSlot(t *testing.T) {
	t.Parallel()
	st := newGated()
	st.deadlines = make(chan callStart, 2)
	const timeout = 50 * time.Millisecond
	b := gatedBounded(st, 1, time.Minute, timeout)
	holder, waiter := make(chan error, 1), make(chan error, 1)
	go func() { _, err := b.GetSaga(context.Background(), "holder"); holder <- err }()
	<-st.deadlines
	go func() { _, err := b.GetSaga(context.Background(), "waiter"); waiter <- err }()
	time.Sleep(4 * timeout) // the waiter waits for the slot meanwhile
	freed := time.Now()
	close(st.release)
	var w callStart
	select {
	case w = <-st.deadlines:
	case err := <-waiter:
		t.Fatalf("the waiter never reached the store: %v", err)
	}
	if w.ended || !w.deadline.After(freed) {
		t.Fatalf("the waiter's call was sent with deadline %v (ended %v), the slot was freed at %v: its wait counted against its timeout",
			w.deadline, w.ended, freed)
	}
	<-holder
	<-waiter
}

// TestBusyStoreAnswers503AndLeavesNothing: a registration that finds the
// store busy before its saga exists answers 503 service_unavailable with a
// Retry-After and creates nothing; one that finds it busy after the user
// was created removes the user, and what it could not record is the
// reconciler's, which settles the saga once the store has room again.
func TestBusyStoreAnswers503AndLeavesNothing(t *testing.T) {
	t.Parallel()
	busy := func(h *harness) (fill func(), free func()) {
		g := h.svc.gated.gate
		fill = func() {
			for range cap(g.slots) {
				g.slots <- struct{}{}
			}
		}
		free = func() {
			for range cap(g.slots) {
				<-g.slots
			}
		}
		return fill, free
	}
	newBusyHarness := func(t *testing.T) *harness {
		h := newHarness(t, true)
		h.svc.gated.gate = newGate(2, 10*time.Millisecond)
		return h
	}

	t.Run("before the saga", func(t *testing.T) {
		t.Parallel()
		h := newBusyHarness(t)
		fill, free := busy(h)
		fill()
		_, err := h.svc.Register(context.Background(), validRegistration, nil)
		free()
		be, ok := errors.AsType[*Error](err)
		if !ok || be.Code != CodeStoreUnavailable || be.RetryAfter <= 0 || !errors.Is(err, ErrStoreBusy) {
			t.Fatalf("error %v, want service_unavailable with a Retry-After, caused by ErrStoreBusy", err)
		}
		if h.auth.count("register") != 0 || len(h.store.sagas) != 0 {
			t.Fatalf("a busy store let the registration start: %d register calls, %d sagas", h.auth.count("register"), len(h.store.sagas))
		}
	})

	t.Run("after the user was created", func(t *testing.T) {
		t.Parallel()
		h := newBusyHarness(t)
		fill, free := busy(h)
		register := h.auth.register
		h.auth.register = func(in AuthRegistration) (AuthUser, TokenPair, error) {
			fill() // the store is full while the user is created
			return register(in)
		}
		_, err := h.svc.Register(context.Background(), validRegistration, nil)
		free()
		if _, ok := errors.AsType[*Error](err); !ok || !errors.Is(err, ErrStoreBusy) {
			t.Fatalf("error %v, want an answer caused by ErrStoreBusy", err)
		}
		if h.auth.count("delete_self") != 1 {
			t.Fatalf("the user the saga could not record was not removed (%d deletes)", h.auth.count("delete_self"))
		}
		sg := h.store.only(t)
		if Terminal(sg.State) {
			t.Fatalf("the saga is %s: what it could not record must be left to the reconciler", sg.State)
		}
		h.clock.advance(max(h.svc.authGrace(), h.svc.leaseTTL) + time.Second) // the dead attempt's lease, unreleased, has expired
		rc := h.svc.NewReconciler(time.Second, 0)
		if _, err := rc.Pass(context.Background()); err != nil {
			t.Fatal(err)
		}
		if sg := h.store.only(t); !Terminal(sg.State) {
			t.Fatalf("after a pass the saga is %s, want it settled", sg.State)
		}
	})
}

// TestSagaTimesCountFromTheSlot: a registration that waited for the store
// starts its saga, its lease and the register call's deadline when its
// calls could be sent, not before the wait: the wait eats neither the
// auth service's deadline nor the lease (a lease stamped before a long
// wait could be expired, and taken over, while the attempt runs).
func TestSagaTimesCountFromTheSlot(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	h.svc.gated.gate = newGate(1, time.Minute)
	var deadline time.Time
	register := h.auth.register
	h.auth.register = func(in AuthRegistration) (AuthUser, TokenPair, error) {
		deadline = in.Deadline
		return register(in)
	}
	h.svc.gated.gate.slots <- struct{}{} // the store is busy
	done := make(chan error, 1)
	go func() { _, err := h.svc.Register(context.Background(), validRegistration, nil); done <- err }()
	time.Sleep(50 * time.Millisecond) // the registration waits for the slot meanwhile
	const waited = time.Hour
	h.clock.advance(waited)
	sent := h.clock.now()
	<-h.svc.gated.gate.slots
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sg := h.store.only(t)
	if !sg.CreatedAt.Equal(sent) || !sg.CreatedAt.Equal(deadline.Add(-h.svc.authTimeout)) {
		t.Fatalf("saga created at %v, register deadline %v; the slot was held at %v", sg.CreatedAt, deadline, sent)
	}
}

// TestKeyHoldRunOutStartsNoSaga: a keyed registration whose hold on its
// key ran out while it waited for the store starts no saga (a retry may
// have taken the key over and run its own): it answers 503, nothing is
// created, and the key is released for the retry.
func TestKeyHoldRunOutStartsNoSaga(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	h.svc.gated.gate = newGate(1, time.Minute)
	fp := regFingerprint(t, validRegistration)
	claim, replay, err := h.svc.BeginIdempotent(context.Background(), "k1", fp)
	if err != nil || replay != nil {
		t.Fatalf("claim: %v %v", replay, err)
	}
	h.svc.gated.gate.slots <- struct{}{} // the store is busy
	done := make(chan error, 1)
	go func() { _, err := h.svc.Register(context.Background(), validRegistration, claim); done <- err }()
	time.Sleep(50 * time.Millisecond) // the registration waits for the slot meanwhile
	h.clock.advance(h.svc.leaseTTL)
	<-h.svc.gated.gate.slots
	err = <-done
	if be, ok := errors.AsType[*Error](err); !ok || be.Code != CodeStoreUnavailable || !errors.Is(err, errKeyHoldEnded) {
		t.Fatalf("error %v, want service_unavailable caused by the key's hold ending", err)
	}
	if h.auth.count("register") != 0 || len(h.store.sagas) != 0 {
		t.Fatalf("a registration past its key's hold started: %d register calls, %d sagas", h.auth.count("register"), len(h.store.sagas))
	}
	h.svc.CompleteIdempotent(context.Background(), claim, 503, nil, false)
	if _, err := h.store.GetKey(context.Background(), claim.KeyID, time.Now()); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("the key is still held: %v", err)
	}
}
