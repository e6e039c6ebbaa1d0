package bff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"
)

// Reconciler finishes or compensates the sagas left in between: after a
// crash of a BFF between steps, or while a service was down during
// compensation. Every replica runs one; leases keep them from working on
// the same saga, and from touching a saga whose live request still runs.
type Reconciler struct {
	s         *Service
	interval  time.Duration
	retention time.Duration // of finished sagas; 0 keeps them
	batch     int
	backlog   atomic.Int64
	lastSweep time.Time // of expired keys and old sagas; only Pass touches it
}

// sweepEvery is how often expired idempotency keys and finished sagas past
// their retention are deleted.
const sweepEvery = time.Minute

// NewReconciler returns a reconciler that looks for due sagas every
// interval (with ±20% jitter) and deletes the finished ones (completed,
// compensated, failed) once they are older than retention (0: never).
func (s *Service) NewReconciler(interval, retention time.Duration) *Reconciler {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &Reconciler{s: s, interval: interval, retention: max(retention, 0), batch: 100}
}

// Backlog is the number of open sagas seen by the last pass.
func (rc *Reconciler) Backlog() int64 { return rc.backlog.Load() }

// Run passes until ctx is cancelled.
func (rc *Reconciler) Run(ctx context.Context) {
	for {
		d := time.Duration(float64(rc.interval) * (0.8 + 0.4*rand.Float64()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		if _, err := rc.Pass(ctx); err != nil && ctx.Err() == nil {
			rc.s.log.WarnContext(ctx, "reconciler pass failed", "error", err.Error())
		}
	}
}

// Pass works on every due saga once, and once a minute sweeps the expired
// idempotency keys and the finished sagas past their retention. It returns
// how many sagas it advanced. Passes must not run concurrently.
func (rc *Reconciler) Pass(ctx context.Context) (int, error) {
	s := rc.s
	now := s.now()
	if now.Sub(rc.lastSweep) >= sweepEvery {
		rc.lastSweep = now
		rc.sweep(ctx, now)
	}
	due, err := s.sagas.DueSagas(ctx, now, rc.batch)
	if err != nil {
		return 0, fmt.Errorf("due sagas: %w", err)
	}
	advanced := 0
	var errs []error
	for _, sg := range due {
		if ctx.Err() != nil {
			break
		}
		held, err := s.withLease(ctx, sg.ID, func() error { return rc.work(ctx, sg.ID) })
		if err != nil {
			errs = append(errs, err)
		}
		if held && err == nil {
			advanced++
		}
	}
	if n, err := s.sagas.CountOpen(ctx); err == nil {
		rc.backlog.Store(n)
	}
	return advanced, errors.Join(errs...)
}

// sweep deletes expired idempotency keys and old finished sagas. Failures
// are logged: the next sweep tries again.
func (rc *Reconciler) sweep(ctx context.Context, now time.Time) {
	s := rc.s
	if n, err := s.keys.SweepKeys(ctx, now); err != nil {
		s.log.WarnContext(ctx, "idempotency key sweep failed", "error", err.Error())
	} else if n > 0 {
		s.log.InfoContext(ctx, "expired idempotency keys removed", "count", n)
	}
	if rc.retention == 0 {
		return
	}
	if n, err := s.sagas.SweepSagas(ctx, now.Add(-rc.retention)); err != nil {
		s.log.WarnContext(ctx, "saga sweep failed", "error", err.Error())
	} else if n > 0 {
		s.log.InfoContext(ctx, "finished sagas past their retention removed", "count", n, "retention", rc.retention.String())
	}
}

// work advances one saga under its lease, as far as it can go now.
func (rc *Reconciler) work(ctx context.Context, id string) (err error) {
	s := rc.s
	sg, err := s.sagas.GetSaga(ctx, id) // fresh, under the lease
	if err != nil {
		return err
	}
	if Terminal(sg.State) || sg.NextAttemptAt.After(s.now()) {
		return nil
	}
	ctx, end := s.tel.Start(ctx, "bff.reconcile."+sg.Kind, sg.Traceparent,
		slog.String("saga.id", sg.ID), slog.String("saga.state", sg.State), slog.Int("saga.attempts", sg.Attempts))
	defer func() { end(err) }()
	r := &run{s: s, saga: sg, log: s.log.With("reconciler", true)}
	for range 6 { // each step moves to a later state or stops
		before := sg.State
		switch sg.Kind {
		case KindRegister:
			err = r.reconcileRegister(ctx)
		case KindDeleteAccount:
			err = r.deleteAccount(ctx)
		default:
			err = r.attention(ctx, "unknown saga kind")
		}
		if err != nil || Terminal(sg.State) || sg.State == before || sg.NextAttemptAt.After(s.now()) {
			break
		}
	}
	return err
}

// reconcileRegister takes one step of a register saga.
func (r *run) reconcileRegister(ctx context.Context) error {
	switch r.saga.State {
	case StateStarted:
		return r.resolveStarted(ctx)
	case StateUserCreated:
		// The BFF stopped between the user and the profile (or could not
		// record the end). Its client got no 201: finish with what exists.
		exists, id, known := r.checkProfile(ctx)
		if known && exists {
			return r.finish(ctx, StateCompleted, SagaChange{CustomerID: id}, OutcomeCompleted)
		}
		return r.transition(ctx, StateCompensating, SagaChange{LastError: "profile not created"})
	case StateCompensating:
		if !r.canAct() {
			return r.attention(ctx, "user cannot be deleted: token expired and no service client")
		}
		exists, id, known := r.checkProfile(ctx)
		if known && exists {
			// A create landed after all: the registration is whole.
			return r.finish(ctx, StateCompleted, SagaChange{CustomerID: id}, OutcomeCompleted)
		}
		if !r.deleteUser(ctx) {
			r.retryLater(ctx, "compensation: user not deleted")
			return nil
		}
		return r.transition(ctx, StateVerifying, SagaChange{NextAttemptAt: r.s.now().Add(r.s.verifyGrace())})
	case StateVerifying:
		return r.verify(ctx)
	}
	return nil
}

// canAct reports whether the saga's user can still be acted on: with a
// valid own token or the service account.
func (r *run) canAct() bool { return r.ownToken() != "" || r.s.authAdmin != nil }

// verify is the last step of a compensation: no profile may have appeared
// for the deleted user (a create still in flight when it was checked).
func (r *run) verify(ctx context.Context) error {
	exists, id, known := r.checkProfile(ctx)
	if !known {
		if r.ownToken() == "" && r.s.customersAdmin == nil {
			r.log.WarnContext(ctx, "saga: compensation not verified: token expired and no service client", "saga_id", r.saga.ID)
			return r.finish(ctx, StateCompensated, SagaChange{LastError: "not verified"}, OutcomeCompensated)
		}
		r.retryLater(ctx, "verify: customer service did not answer")
		return nil
	}
	if exists {
		r.log.WarnContext(ctx, "saga: a profile appeared after compensation; deleting it", "saga_id", r.saga.ID, "customer_id", id)
		if !r.deleteProfile(ctx) {
			r.retryLater(ctx, "verify: late profile not deleted")
			return nil
		}
	}
	return r.finish(ctx, StateCompensated, SagaChange{}, OutcomeCompensated)
}

// resolveStarted settles a saga whose register call never reported back.
// It deletes a user only when it can prove the user came from this saga.
func (r *run) resolveStarted(ctx context.Context) error {
	now := r.s.now()
	if ready := r.saga.CreatedAt.Add(r.s.authGrace()); now.Before(ready) {
		return r.transition(ctx, StateStarted, SagaChange{NextAttemptAt: ready})
	}
	if r.s.authAdmin == nil {
		return r.attention(ctx, "register call unresolved and no service client to look the user up")
	}
	email, err := r.s.secrets.Open(r.saga.ID, sealEmail, r.saga.EmailSealed)
	if err != nil {
		return r.attention(ctx, "sealed email cannot be opened")
	}
	u, err := r.s.authAdmin.FindUserByEmail(ctx, string(email))
	if err != nil {
		r.retryLater(ctx, "lookup by email failed")
		return nil
	}
	if u == nil {
		return r.finish(ctx, StateFailed, SagaChange{LastError: "no user was created"}, OutcomeFailed)
	}
	// A user with that email exists. Is it ours?
	var exists bool
	if r.s.customersAdmin != nil {
		var id string
		var cerr error
		exists, id, cerr = r.s.customersAdmin.ProfileExistsFor(ctx, u.ID)
		if cerr != nil {
			r.retryLater(ctx, "profile check failed")
			return nil
		}
		if exists {
			// It has a profile: whoever created it, that registration is whole.
			return r.finish(ctx, StateCompleted, SagaChange{CustomerID: id}, OutcomeCompleted)
		}
	}
	others, err := r.s.sagas.SagasWithUser(ctx, u.ID)
	if err != nil {
		r.retryLater(ctx, "saga lookup failed")
		return nil
	}
	others = slices.DeleteFunc(others, func(id string) bool { return id == r.saga.ID })
	switch {
	case len(others) > 0:
		return r.attention(ctx, "the user is recorded by another saga")
	case u.DateJoined.Before(r.saga.CreatedAt.Add(-clockSkew)):
		return r.attention(ctx, "the user predates the saga")
	case u.DateJoined.After(r.saga.CreatedAt.Add(r.s.authTimeout + clockSkew)):
		return r.attention(ctx, "the user joined after the saga's register call")
	case r.s.customersAdmin == nil:
		return r.attention(ctx, "no service client to check the user's profile")
	}
	// Joined during our register call, no profile, no other saga: ours.
	return r.transition(ctx, StateUserCreated, SagaChange{UserID: u.ID})
}

// clockSkew is the tolerance between the BFF's and the auth service's clocks.
const clockSkew = 2 * time.Second

// finish moves the saga to a terminal state and counts the outcome.
func (r *run) finish(ctx context.Context, to string, ch SagaChange, outcome string) error {
	if err := r.transition(ctx, to, ch); err != nil {
		return err
	}
	r.s.tel.Outcome(ctx, r.saga.Kind, outcome)
	return nil
}

// attention parks a saga the reconciler cannot settle safely: nothing is
// deleted, an operator looks at it (log line and metric).
func (r *run) attention(ctx context.Context, why string) error {
	r.log.ErrorContext(ctx, "saga needs attention", "saga_id", r.saga.ID, "kind", r.saga.Kind, "state", r.saga.State, "user_id", r.saga.UserID, "reason", why)
	return r.finish(ctx, StateNeedsAttention, SagaChange{LastError: why}, OutcomeNeedsAttention)
}
