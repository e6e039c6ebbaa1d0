package bff

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// lateAuth models an auth service that gets the register call but acts on
// it only later (overloaded), after the BFF gave up on the call: the call
// times out with nothing done, and act runs the held request whenever the
// test says, on the BFF's clock. honoursDeadline is our auth service (it
// refuses to insert once the request's deadline has passed); without it,
// the company's Django one, which ignores the header.
type lateAuth struct {
	mu              sync.Mutex
	now             func() time.Time
	honoursDeadline bool
	held            *AuthRegistration
	user            *AuthUser
}

func (a *lateAuth) register(in AuthRegistration) (AuthUser, TokenPair, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.held = &in
	return AuthUser{}, TokenPair{}, &UpstreamError{Service: ServiceAuth, Kind: ErrUpstreamUnavailable, Err: context.DeadlineExceeded}
}

// act runs the held request now: it creates the user unless the deadline
// has passed and the service honours it.
func (a *lateAuth) act() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.honoursDeadline && !a.held.Deadline.IsZero() && !a.now().Before(a.held.Deadline) {
		return // 503 deadline_exceeded, to a caller long gone
	}
	a.user = &AuthUser{ID: "late-user", Email: "ada@example.com", DateJoined: a.now(), RegistrationKey: a.held.RegistrationKey}
}

func (a *lateAuth) find(string) (*AuthUser, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.user == nil {
		return nil, nil
	}
	u := *a.user
	return &u, nil
}

// TestARegisterActedOnAfterTheDeadlineCreatesNothing closes the gap issue
// 14's work left: the auth service acts on a register call later than the
// BFF's auth timeout + grace, after the reconciler found no user and
// settled the saga as failed. The register call carries a deadline (the
// saga's start + the auth timeout), the reconciler looks only after the
// deadline plus the clocks' skew and the insert's allowance, and our auth
// service refuses to insert after the deadline: "no user" is final, no
// orphan appears. The company's Django auth service ignores the deadline:
// there the late user stays without a profile (the documented residual).
func TestARegisterActedOnAfterTheDeadlineCreatesNothing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		honoursDeadline bool
		orphan          bool
	}{
		{name: "our auth service: refuses after the deadline, no orphan", honoursDeadline: true},
		{name: "an auth service that ignores the deadline (Django): the documented residual", orphan: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true)
			auth := &lateAuth{now: h.clock.now, honoursDeadline: tc.honoursDeadline}
			h.auth.register = auth.register
			h.authAdmin.find = auth.find
			if _, err := h.svc.Register(context.Background(), validRegistration, nil); err == nil {
				t.Fatal("want a pending registration")
			}
			sg := h.store.only(t)
			if want := sg.CreatedAt.Add(h.svc.authTimeout); !auth.held.Deadline.Equal(want) {
				t.Fatalf("the register call's deadline %v, want the saga's start + the auth timeout (%v)", auth.held.Deadline, want)
			}
			if auth.held.RegistrationKey != sg.ID {
				t.Fatalf("registration key %q, want the saga id", auth.held.RegistrationKey)
			}
			// The reconciler looks no earlier than the deadline plus the
			// clocks' skew and the insert's allowance.
			if ready := sg.NextAttemptAt; !ready.After(auth.held.Deadline.Add(MaxClockSkew)) {
				t.Fatalf("the reconciler may look at %v, not after the deadline %v + skew %v", ready, auth.held.Deadline, MaxClockSkew)
			}
			pass(t, h)
			if sg := h.store.only(t); sg.State != StateStarted {
				t.Fatalf("resolved before the grace period: %s", sg.State)
			}
			h.clock.advance(h.svc.authGrace() + time.Second)
			pass(t, h)
			if sg := h.store.only(t); sg.State != StateFailed {
				t.Fatalf("state %s (%s), want failed: no user was found", sg.State, sg.LastError)
			}

			auth.act() // the overloaded auth service gets to the request now
			if orphan := auth.user != nil; orphan != tc.orphan {
				t.Fatalf("a user created after the saga settled as failed: %v, want %v", orphan, tc.orphan)
			}
			pass(t, h)
			if sg := h.store.only(t); sg.State != StateFailed || h.customers.creates != 0 {
				t.Fatalf("state %s, profile creates %d", sg.State, h.customers.creates)
			}
		})
	}
}

// TestARegisterRefusedForItsDeadline: the auth service's answer that the
// deadline passed (503 deadline_exceeded) means no user was created by
// that call: the saga fails at once (the client may retry with its key at
// once) and nothing is deleted. Only if the email's user carries this
// saga's key (another copy of the same call, say one a proxy repeated,
// acted in time) is it left to the reconciler.
func TestARegisterRefusedForItsDeadline(t *testing.T) {
	t.Parallel()
	refused := &UpstreamError{Service: ServiceAuth, Kind: ErrUpstreamUnavailable, Status: 503, Code: CodeDeadlineExceeded}
	for _, tc := range []struct {
		name    string
		user    func(sagaID string) *AuthUser
		want    string
		pending bool
	}{
		{name: "no user: failed", user: func(string) *AuthUser { return nil }, want: StateFailed},
		{name: "another registration's user: failed", user: func(string) *AuthUser { return &AuthUser{ID: "u9", RegistrationKey: "saga-b"} }, want: StateFailed},
		{name: "a user with this saga's key: left to the reconciler", user: func(id string) *AuthUser { return &AuthUser{ID: "u1", RegistrationKey: id} }, want: StateStarted, pending: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true)
			var sagaID string
			h.auth.register = func(in AuthRegistration) (AuthUser, TokenPair, error) {
				sagaID = in.RegistrationKey
				return AuthUser{}, TokenPair{}, refused
			}
			h.authAdmin.find = func(string) (*AuthUser, error) { return tc.user(sagaID), nil }
			_, err := h.svc.Register(context.Background(), validRegistration, nil)
			var be *Error
			if pending := errors.As(err, &be) && be.Extra["pending"] == true; pending != tc.pending {
				t.Fatalf("answer %v: pending %v, want %v", err, pending, tc.pending)
			}
			if sg := h.store.only(t); sg.State != tc.want {
				t.Fatalf("state %s (%s), want %s", sg.State, sg.LastError, tc.want)
			}
			if len(h.authAdmin.deleted) > 0 || h.auth.count("delete_self") > 0 {
				t.Fatal("a user was deleted")
			}
		})
	}
	// Any other 503 (a proxy, a crash after the insert) stays unknown.
	h := newHarness(t, true)
	h.auth.register = func(AuthRegistration) (AuthUser, TokenPair, error) {
		return AuthUser{}, TokenPair{}, &UpstreamError{Service: ServiceAuth, Kind: ErrUpstreamUnavailable, Status: 503, Code: "service_unavailable"}
	}
	_, _ = h.svc.Register(context.Background(), validRegistration, nil)
	if sg := h.store.only(t); sg.State != StateStarted {
		t.Fatalf("another 503: state %s, want started (unknown)", sg.State)
	}
}
