package bff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	attention atomic.Int64
	oldest    atomic.Int64 // unix nanoseconds of the oldest open saga; 0: none
	passes    atomic.Int64
	// lastSweep and lastSagaSweep are when the leases and keys, and the
	// finished sagas, were last swept; only Pass touches them.
	lastSweep, lastSagaSweep time.Time
}

// sweepEvery is how often expired leases and idempotency keys are deleted,
// and sagaSweepEvery how often the finished sagas past their retention:
// that sweep reads every saga on the embedded server, and a retention is
// counted in days, so an hour late costs nothing.
const (
	sweepEvery     = time.Minute
	sagaSweepEvery = time.Hour
)

// NewReconciler returns a reconciler that looks for due sagas every
// interval (with ±20% jitter) and deletes the finished ones (completed,
// compensated, failed) once they are older than retention (0: never).
func (s *Service) NewReconciler(interval, retention time.Duration) *Reconciler {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &Reconciler{s: s, interval: interval, retention: max(retention, 0), batch: 100}
}

// Passes is the number of passes run so far, failed ones included: the
// series of the "reconciler not running" alert (bff.reconciler.passes).
func (rc *Reconciler) Passes() int64 { return rc.passes.Load() }

// Backlog is the number of open sagas seen by the last pass.
func (rc *Reconciler) Backlog() int64 { return rc.backlog.Load() }

// NeedsAttention is the number of sagas parked for an operator, as seen by
// the last pass.
func (rc *Reconciler) NeedsAttention() int64 { return rc.attention.Load() }

// OldestOpenAge is how old the oldest open saga was at the last pass (0:
// none). A saga settles within MaxUnresolved(interval) of a crash while the
// services are up; an age well above that is a stuck saga.
func (rc *Reconciler) OldestOpenAge() time.Duration {
	n := rc.oldest.Load()
	if n == 0 {
		return 0
	}
	return max(rc.s.now().Sub(time.Unix(0, n)), 0)
}

// MaxUnresolved is the longest a registration stays unresolved after a
// crash of the replica running it, while the services and the store
// answer: the dead attempt's lease, then the next pass of a reconciler
// (interval + 20 % jitter), then one attempt. After it a retry with the
// same Idempotency-Key gets the final outcome.
func (s *Service) MaxUnresolved(interval time.Duration) time.Duration {
	return s.leaseTTL + interval*6/5 + s.attemptBudget()
}

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

// Pass works on every due saga once; once a minute it sweeps the expired
// leases and idempotency keys, once an hour the finished sagas past their
// retention. It returns
// how many sagas it advanced. Passes must not run concurrently.
func (rc *Reconciler) Pass(ctx context.Context) (int, error) {
	defer rc.passes.Add(1)
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
		var moved bool
		held, err := s.withLease(ctx, sg.ID, func(ctx context.Context) error {
			var err error
			moved, err = rc.work(ctx, sg.ID)
			return err
		})
		switch {
		case err != nil:
			errs = append(errs, err)
			s.tel.Attempt(ctx, sg.Kind, AttemptFailed)
		case !held:
		case moved:
			advanced++
			s.tel.Attempt(ctx, sg.Kind, AttemptAdvanced)
		default:
			s.tel.Attempt(ctx, sg.Kind, AttemptRetry)
		}
	}
	if st, err := s.sagas.Stats(ctx); err == nil {
		rc.backlog.Store(st.Open)
		rc.attention.Store(st.NeedsAttention)
		var oldest int64
		if !st.OldestOpen.IsZero() {
			oldest = st.OldestOpen.UnixNano()
		}
		rc.oldest.Store(oldest)
	}
	return advanced, errors.Join(errs...)
}

// sweep deletes expired leases and idempotency keys and, once every
// sagaSweepEvery, old finished sagas. Failures are logged: the next sweep
// tries again.
func (rc *Reconciler) sweep(ctx context.Context, now time.Time) {
	s := rc.s
	// Leases orphaned by a crash (between the lease and the saga record)
	// or by a failed release; a clock skew's margin past their expiry.
	if n, err := s.leases.SweepLeases(ctx, now.Add(-MaxClockSkew)); err != nil {
		s.log.WarnContext(ctx, "lease sweep failed", "error", err.Error())
	} else if n > 0 {
		s.log.InfoContext(ctx, "expired saga leases removed", "count", n)
	}
	if n, err := s.keys.SweepKeys(ctx, now); err != nil {
		s.log.WarnContext(ctx, "idempotency key sweep failed", "error", err.Error())
	} else if n > 0 {
		s.log.InfoContext(ctx, "expired idempotency keys removed", "count", n)
	}
	if rc.retention == 0 || now.Sub(rc.lastSagaSweep) < sagaSweepEvery {
		return
	}
	n, err := s.sagas.SweepSagas(ctx, now.Add(-rc.retention))
	if err != nil { // tried again at the next pass
		s.log.WarnContext(ctx, "saga sweep failed", "error", err.Error())
		return
	}
	rc.lastSagaSweep = now
	if n > 0 {
		s.log.InfoContext(ctx, "finished sagas past their retention removed", "count", n, "retention", rc.retention.String())
	}
}

// work advances one saga under its lease, as far as it can go now, and
// reports whether it moved to another state.
func (rc *Reconciler) work(ctx context.Context, id string) (moved bool, err error) {
	s := rc.s
	sg, err := s.sagas.GetSaga(ctx, id) // fresh, under the lease
	if err != nil {
		return false, err
	}
	if Terminal(sg.State) || sg.NextAttemptAt.After(s.now()) {
		return false, nil
	}
	first := sg.State
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
	return sg.State != first, err
}

// reconcileRegister takes one step of a register saga. No 201 was
// answered for an open saga (a 201 needs the completed record), so going
// back is allowed; an unknown answer never leads to a deletion.
func (r *run) reconcileRegister(ctx context.Context) error {
	switch r.saga.State {
	case StateStarted:
		return r.resolveStarted(ctx)
	case StateUserCreated:
		// The BFF stopped between the user and the profile (or could not
		// record the end). Its client got no 201: finish with what exists.
		exists, id, known := r.checkProfile(ctx)
		switch {
		case known && exists:
			return r.finish(ctx, StateCompleted, SagaChange{CustomerID: id}, OutcomeCompleted)
		case known:
			return r.transition(ctx, StateCompensating, SagaChange{LastError: "profile not created"})
		case !r.canAsk():
			return r.attention(ctx, "profile cannot be checked: token expired and no service client")
		}
		r.retryLater(ctx, "profile check failed")
		return nil
	case StateCompensating:
		// Going back is decided: delete the user, then verify that no
		// profile appeared (a create still in flight), which removes it.
		if !r.canAct() {
			return r.attention(ctx, "user cannot be deleted: token expired and no service client")
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

// canAsk reports whether the customer service can be asked about the
// saga's user: with a valid own token or the service account.
func (r *run) canAsk() bool {
	return r.ownToken() != "" || (r.s.customersAdmin != nil && r.saga.UserID != "")
}

// canAct reports whether the saga's user can still be acted on: with a
// valid own token or the service account.
func (r *run) canAct() bool { return r.ownToken() != "" || r.s.authAdmin != nil }

// verify is the last step of a compensation: no profile may have appeared
// for the deleted user (a create still in flight when it was checked).
func (r *run) verify(ctx context.Context) error {
	exists, id, known := r.checkProfile(ctx)
	if !known {
		if !r.canAsk() {
			return r.attention(ctx, "compensation not verified: token expired and no service client")
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
// The register call carried the saga id as its Idempotency-Key, and the
// auth service reports it with the user: the saga adopts (and may undo)
// only a user that carries its own id. A user with another key is
// someone else's, and the email can hold one user only, so this saga
// created nothing. A user without a key (an auth service that does not
// store it) cannot be told apart: the saga is parked, nothing is deleted.
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
	switch {
	case u == nil:
		return r.finish(ctx, StateFailed, SagaChange{LastError: "no user was created"}, OutcomeFailed)
	case u.RegistrationKey == "":
		// Parked with the user's id, for the operator to look at.
		r.saga.UserID = u.ID
		return r.attentionWith(ctx, "a user with the email exists and the auth service does not say which registration created it", SagaChange{UserID: u.ID})
	case u.RegistrationKey != r.saga.ID:
		return r.finish(ctx, StateFailed, SagaChange{LastError: "the email belongs to another registration's user"}, OutcomeFailed)
	}
	// Ours. Record it; the next step finishes (a profile exists) or undoes it.
	return r.transition(ctx, StateUserCreated, SagaChange{UserID: u.ID})
}

// MaxClockSkew is the tolerance between the BFF's and the auth service's
// clocks, and between the BFF replicas' (a saga's lease).
const MaxClockSkew = 2 * time.Second

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
	return r.attentionWith(ctx, why, SagaChange{})
}

// attentionWith parks the saga with ch's fields recorded too.
func (r *run) attentionWith(ctx context.Context, why string, ch SagaChange) error {
	r.log.ErrorContext(ctx, "saga needs attention", "saga_id", r.saga.ID, "kind", r.saga.Kind, "state", r.saga.State, "user_id", r.saga.UserID, "reason", why)
	ch.LastError = why
	return r.finish(ctx, StateNeedsAttention, ch, OutcomeNeedsAttention)
}
