package bff

import (
	"context"
	"errors"
	"testing"
	"time"
)

// parkStarted leaves a register saga in started, as a BFF that died during
// the register call does, and moves the clock past the grace period.
func parkStarted(t *testing.T, h *harness) {
	t.Helper()
	h.auth.register = func(AuthRegistration) (AuthUser, TokenPair, error) {
		return AuthUser{}, TokenPair{}, upstream(ServiceAuth, ErrUpstreamUnavailable, false, 0)
	}
	if _, err := h.svc.Register(context.Background(), validRegistration, nil); err == nil {
		t.Fatal("want a pending registration")
	}
	h.clock.advance(h.svc.authGrace() + time.Second)
}

func pass(t *testing.T, h *harness) {
	t.Helper()
	if _, err := h.svc.NewReconciler(time.Second, 0).Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Scenario 2 of issue 14: a saga only ever undoes a user it can prove it
// created (the auth service reports the saga id it was registered with);
// a user without that proof is never deleted, however well its
// date_joined fits the saga's window.
func TestReconcilerResolvesStartedSagas(t *testing.T) {
	t.Parallel()
	sagaStart := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	inWindow := sagaStart.Add(200 * time.Millisecond)
	const ours = "<the saga's id>"
	for _, tc := range []struct {
		name       string
		user       *AuthUser
		hasProfile bool
		want       string
		deletes    bool
	}{
		{name: "no user was created", want: StateFailed},
		{name: "the user is ours: compensated", user: &AuthUser{ID: "u1", DateJoined: inWindow, RegistrationKey: ours}, want: StateVerifying, deletes: true},
		{name: "the user is ours and has a profile: done, nothing deleted", user: &AuthUser{ID: "u1", DateJoined: inWindow, RegistrationKey: ours}, hasProfile: true, want: StateCompleted},
		{name: "another registration's user inside the window: ours created nothing", user: &AuthUser{ID: "u1", DateJoined: inWindow, RegistrationKey: "saga-b"}, want: StateFailed},
		{name: "another registration's whole account: ours created nothing", user: &AuthUser{ID: "u1", DateJoined: inWindow, RegistrationKey: "saga-b"}, hasProfile: true, want: StateFailed},
		{name: "a user without a key inside the window (staff, a Django auth service): parked", user: &AuthUser{ID: "u1", DateJoined: inWindow}, want: StateNeedsAttention},
		{name: "a user without a key that has a profile: parked", user: &AuthUser{ID: "u1", DateJoined: inWindow}, hasProfile: true, want: StateNeedsAttention},
		{name: "a user without a key that predates the saga: parked", user: &AuthUser{ID: "u1", DateJoined: sagaStart.Add(-time.Hour)}, want: StateNeedsAttention},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true)
			parkStarted(t, h)
			sagaID := h.store.only(t).ID
			if keys := h.auth.keys; len(keys) != 1 || keys[0] != sagaID {
				t.Fatalf("register calls carried the keys %q, want the saga id %q", keys, sagaID)
			}
			h.authAdmin.find = func(email string) (*AuthUser, error) {
				if email != "ada@example.com" {
					t.Errorf("looked up %q, want the saga's normalised email", email)
				}
				if tc.user == nil {
					return nil, nil
				}
				u := *tc.user
				if u.RegistrationKey == ours {
					u.RegistrationKey = sagaID
				}
				return &u, nil
			}
			h.custAdmin.exists = func(string) (bool, string, error) { return tc.hasProfile, "c9", nil }
			pass(t, h)
			pass(t, h)
			sg := h.store.only(t)
			if sg.State != tc.want {
				t.Fatalf("state %s (%s), want %s", sg.State, sg.LastError, tc.want)
			}
			if deleted := len(h.authAdmin.deleted) > 0 || h.auth.count("delete_self") > 0; deleted != tc.deletes {
				t.Fatalf("user deleted: %v, want %v", deleted, tc.deletes)
			}
			if len(h.custAdmin.deleted) > 0 {
				t.Fatal("a profile was deleted")
			}
			if sg.State == StateNeedsAttention && sg.UserID != "u1" {
				t.Fatalf("parked without the user's id (%q): the operator cannot find it", sg.UserID)
			}
		})
	}
}

func TestReconcilerWithoutServiceClientNeverGuesses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, false)
	parkStarted(t, h)
	pass(t, h)
	if sg := h.store.only(t); sg.State != StateNeedsAttention {
		t.Fatalf("state %s", sg.State)
	}
}

func TestReconcilerFinishesACrashedRegistration(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	h.svc.afterStep = func(_ context.Context, step string) error {
		if step == "user_created" {
			return errors.New("crash")
		}
		return nil
	}
	_, _ = h.svc.Register(context.Background(), validRegistration, nil)
	h.svc.afterStep = nil

	pass(t, h) // the crashed worker's lease still holds it
	if sg := h.store.only(t); sg.State != StateUserCreated {
		t.Fatalf("touched under another's lease: %s", sg.State)
	}
	h.clock.advance(h.svc.leaseTTL + time.Second)
	pass(t, h)
	if sg := h.store.only(t); sg.State != StateVerifying || h.auth.count("delete_self") != 1 {
		t.Fatalf("state %s, deletes %d", sg.State, h.auth.count("delete_self"))
	}
	// The verify step finds a profile that landed late, and deletes it.
	h.custAdmin.exists = func(string) (bool, string, error) { return true, "late", nil }
	h.customers.exists = func() (bool, string, error) { return true, "late", nil }
	pass(t, h) // not yet: the grace period runs
	if sg := h.store.only(t); sg.State != StateVerifying {
		t.Fatalf("verified before the grace period: %s", sg.State)
	}
	h.clock.advance(h.svc.verifyGrace() + time.Second)
	pass(t, h)
	if sg := h.store.only(t); sg.State != StateCompensated || sg.TokenSealed != nil {
		t.Fatalf("state %s", sg.State)
	}
}

func TestReconcilerBacksOff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	h.customers.create = func() (CustomerProfile, error) {
		return CustomerProfile{}, upstream(ServiceCustomer, ErrUpstreamUnavailable, true, 0)
	}
	failing := func(string) error { return upstream(ServiceAuth, ErrUpstreamUnavailable, true, 0) }
	h.auth.deleteSelf, h.authAdmin.del = failing, failing
	_, _ = h.svc.Register(context.Background(), validRegistration, nil)
	rc := h.svc.NewReconciler(time.Second, 0)
	var last time.Time
	for i := range 4 {
		sg := h.store.only(t)
		if sg.State != StateCompensating || sg.Attempts != i+1 || !sg.NextAttemptAt.After(last) {
			t.Fatalf("round %d: %+v", i, sg)
		}
		last = sg.NextAttemptAt
		h.clock.t = sg.NextAttemptAt
		if _, err := rc.Pass(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if rc.Backlog() != 1 {
		t.Fatalf("backlog %d", rc.Backlog())
	}
	h.auth.deleteSelf, h.authAdmin.del = nil, nil
	h.clock.t = h.store.only(t).NextAttemptAt
	pass(t, h)
	if sg := h.store.only(t); sg.State != StateVerifying {
		t.Fatalf("after recovery: %s", sg.State)
	}
	h.clock.advance(h.svc.verifyGrace() + time.Second)
	pass(t, h)
	if sg := h.store.only(t); sg.State != StateCompensated {
		t.Fatalf("after the verify step: %s", sg.State)
	}
}

// Finished sagas are deleted once older than the retention; a saga that
// needs attention, an open one and a recent one are kept. No retention
// keeps everything.
func TestReconcilerSweepsFinishedSagasPastTheirRetention(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	ctx := context.Background()
	now := h.clock.now()
	old, recent := now.Add(-31*24*time.Hour), now.Add(-time.Hour)
	for _, sg := range []Saga{
		{ID: "old-completed", State: StateCompleted, UpdatedAt: old},
		{ID: "old-compensated", State: StateCompensated, UpdatedAt: old},
		{ID: "old-failed", State: StateFailed, UpdatedAt: old},
		{ID: "old-needs-attention", State: StateNeedsAttention, UpdatedAt: old},
		{ID: "old-open", State: StateCompensating, UpdatedAt: old, NextAttemptAt: now.Add(time.Hour)},
		{ID: "recent-completed", State: StateCompleted, UpdatedAt: recent},
	} {
		sg.Kind = KindRegister
		if err := h.store.CreateSaga(ctx, &sg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.svc.NewReconciler(time.Second, 0).Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(h.store.sagas); n != 6 {
		t.Fatalf("without a retention %d sagas are left, want all 6", n)
	}
	rc := h.svc.NewReconciler(time.Second, 30*24*time.Hour)
	if _, err := rc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"old-completed", "old-compensated", "old-failed"} {
		if _, ok := h.store.sagas[id]; ok {
			t.Errorf("%s was kept", id)
		}
	}
	for _, id := range []string{"old-needs-attention", "old-open", "recent-completed"} {
		if _, ok := h.store.sagas[id]; !ok {
			t.Errorf("%s was deleted", id)
		}
	}
	// The sagas' sweep (a scan of every saga on the embedded server) runs
	// once an hour, the keys' and leases' once a minute.
	late := Saga{ID: "late-completed", Kind: KindRegister, State: StateCompleted, UpdatedAt: old}
	if err := h.store.CreateSaga(ctx, &late); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		advance time.Duration
		kept    bool
	}{{2 * time.Minute, true}, {sagaSweepEvery, false}} {
		h.clock.advance(step.advance)
		if _, err := rc.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := h.store.sagas[late.ID]; ok != step.kept {
			t.Fatalf("%s after %s: kept %v, want %v", late.ID, step.advance, ok, step.kept)
		}
	}
}

// TestReconcilerCountsItsPasses: every pass is counted, a failed one too
// (the series of the "reconciler not running" alert).
func TestReconcilerCountsItsPasses(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	rc := h.svc.NewReconciler(time.Second, 0)
	if _, err := rc.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.store.down = true
	if _, err := rc.Pass(context.Background()); err == nil {
		t.Fatal("a pass against a store that is down succeeded")
	}
	if got := rc.Passes(); got != 2 {
		t.Fatalf("%d passes counted, want 2", got)
	}
}
