package bff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

// Saga kinds.
const (
	KindRegister      = "register"
	KindDeleteAccount = "delete_account"
)

// Saga states; docs/design.md ("Sagas, states and leases") draws the state
// machines.
const (
	StateStarted        = "started"
	StateUserCreated    = "user_created"
	StateCompensating   = "compensating"
	StateVerifying      = "verifying"
	StateProfileDeleted = "profile_deleted"
	StateCompleted      = "completed"
	StateCompensated    = "compensated"
	StateFailed         = "failed"
	StateNeedsAttention = "needs_attention"
)

// OpenStates are the states the reconciler works on.
var OpenStates = []string{StateStarted, StateUserCreated, StateCompensating, StateVerifying, StateProfileDeleted}

// SweptStates are the finished states whose sagas are deleted once older
// than the retention; a saga that needs attention is kept for an operator.
var SweptStates = []string{StateCompleted, StateCompensated, StateFailed}

// Terminal reports whether a saga in state is finished.
func Terminal(state string) bool { return !slices.Contains(OpenStates, state) }

// Sealed fields of a saga.
const (
	sealEmail = "email"
	sealToken = "token"
)

// Saga is the durable record of one multi-step operation. It never holds a
// password or a plain token: what it must keep of the caller is sealed
// (docs/design.md, "Sagas, states and leases").
type Saga struct {
	ID               string
	Kind             string
	State            string
	UserID           string
	CustomerID       string
	EmailHash        string
	EmailSealed      []byte    // the email, sealed; wiped when terminal
	TokenSealed      []byte    // the user's access token, sealed; wiped when terminal
	TokenExpiresAt   time.Time // when that token stops working
	IdempotencyKeyID string
	// AnswerSealed is the 201 answered to a request with an
	// Idempotency-Key, sealed as the idempotency record's answer (under the
	// request's fingerprint): written with the completed transition, so a
	// retry gets it even when the record could not be completed.
	AnswerSealed []byte
	// Version counts the saga's transitions: each is fenced on it.
	Version       int
	Attempts      int
	NextAttemptAt time.Time
	LastError     string // a short classification, never upstream text
	Traceparent   string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// SagaChange is one guarded transition: the new state and the fields it
// sets. Zero-valued optional fields are left as they are.
type SagaChange struct {
	State          string
	At             time.Time // the new updated_at
	UserID         string
	CustomerID     string
	TokenSealed    []byte
	TokenExpiresAt time.Time
	WipeSecrets    bool // remove the sealed email and token
	AnswerSealed   []byte
	Attempts       int // set when SetAttempts
	SetAttempts    bool
	NextAttemptAt  time.Time
	LastError      string
}

// ApplyChange mirrors a transition on a saga read before it (for stores
// that roll a transition forward): ch applied and the version counted.
func ApplyChange(s *Saga, ch SagaChange) {
	ch.apply(s)
	s.Version++
}

// apply mirrors a successful transition on the in-memory saga.
func (ch SagaChange) apply(s *Saga) {
	s.State = ch.State
	s.UpdatedAt = ch.At
	if ch.UserID != "" {
		s.UserID = ch.UserID
	}
	if ch.CustomerID != "" {
		s.CustomerID = ch.CustomerID
	}
	if ch.TokenSealed != nil {
		s.TokenSealed = ch.TokenSealed
		s.TokenExpiresAt = ch.TokenExpiresAt
	}
	if ch.WipeSecrets {
		s.TokenSealed, s.EmailSealed = nil, nil
	}
	if ch.AnswerSealed != nil {
		s.AnswerSealed = ch.AnswerSealed
	}
	if ch.SetAttempts {
		s.Attempts = ch.Attempts
	}
	if !ch.NextAttemptAt.IsZero() {
		s.NextAttemptAt = ch.NextAttemptAt
	}
	if ch.LastError != "" {
		s.LastError = ch.LastError
	}
}

// errCrashed is what a run returns when the AfterStep test hook stopped it:
// like a crash, nothing more is written (the lease is not released either).
type errCrashed struct{ err error }

func (e *errCrashed) Error() string { return "saga stopped by test hook: " + e.err.Error() }
func (e *errCrashed) Unwrap() error { return e.err }

// run is one worker's hold on one saga: the live request's or the
// reconciler's. Only the holder of the saga's lease creates a run.
type run struct {
	s     *Service
	saga  *Saga
	claim *KeyClaim // the live request's Idempotency-Key, when any
	token string    // the user's access token, when known (never stored plain)
	log   *slog.Logger
}

// transition moves the saga from its current state to to, fenced on its
// version: a worker that lost its lease (someone took the saga over) loses.
func (r *run) transition(ctx context.Context, to string, ch SagaChange) error {
	ch.State = to
	ch.At = r.s.now()
	if Terminal(to) {
		ch.WipeSecrets = true
	}
	if err := r.s.sagas.TransitionSaga(ctx, r.saga.ID, r.saga.Version, ch); err != nil {
		return fmt.Errorf("saga %s: %s -> %s: %w", r.saga.ID, r.saga.State, to, err)
	}
	r.log.InfoContext(ctx, "saga transition", "saga_id", r.saga.ID, "kind", r.saga.Kind, "from", r.saga.State, "to", to)
	ApplyChange(r.saga, ch)
	return nil
}

// commit is a transition whose outcome must be known before anything
// depends on it (an answer of 201, a deletion): when the write fails it
// reads the saga back (the write may have landed) and tries again, a few
// times. It returns nil only when the saga is in state to.
func (r *run) commit(ctx context.Context, to string, ch SagaChange) error {
	var err error
	for range 3 {
		if err = r.transition(ctx, to, ch); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		sg, gerr := r.s.sagas.GetSaga(ctx, r.saga.ID)
		switch {
		case gerr != nil:
			continue
		case sg.State == to && sg.Version == r.saga.Version+1:
			// It landed (ours, or an equal decision by whoever took over).
			*r.saga = *sg
			return nil
		case sg.Version != r.saga.Version:
			return fmt.Errorf("saga %s: %w", r.saga.ID, ErrStateChanged)
		}
	}
	return err
}

// retryLater records a failed attempt and schedules the next one with
// exponential backoff; the state stays.
func (r *run) retryLater(ctx context.Context, reason string) {
	attempts := r.saga.Attempts + 1
	ch := SagaChange{
		Attempts:      attempts,
		SetAttempts:   true,
		NextAttemptAt: r.s.now().Add(r.s.backoff(attempts)),
		LastError:     reason,
	}
	if err := r.transition(ctx, r.saga.State, ch); err != nil {
		r.log.WarnContext(ctx, "saga: could not schedule the next attempt", "saga_id", r.saga.ID, "error", err.Error())
	}
}

// after runs the AfterStep test hook.
func (r *run) after(ctx context.Context, step string) error {
	if r.s.afterStep == nil {
		return nil
	}
	if err := r.s.afterStep(ctx, step); err != nil {
		return &errCrashed{err: err}
	}
	return nil
}

// ownToken returns the user's access token: the one in memory, or the
// sealed one while it is still valid.
func (r *run) ownToken() string {
	if r.token != "" {
		return r.token
	}
	if len(r.saga.TokenSealed) == 0 || !r.s.now().Before(r.saga.TokenExpiresAt) {
		return ""
	}
	b, err := r.s.secrets.Open(r.saga.ID, sealToken, r.saga.TokenSealed)
	if err != nil {
		r.log.Warn("saga: sealed token cannot be opened (server secret changed?)", "saga_id", r.saga.ID)
		return ""
	}
	r.token = string(b)
	return r.token
}

// backoff is the delay before attempt n+1: base * 2^n, at most maxBackoff,
// with ±20% jitter.
func (s *Service) backoff(n int) time.Duration {
	d := s.retryBase
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

const maxBackoff = 5 * time.Minute

// withLease runs fn while holding the saga's lease. It returns false
// (and does not run fn) when someone else holds it. The lease belongs to
// this one attempt (its own random owner id), and fn's context ends
// before the lease does (attemptBudget): once another worker may take the
// saga over, this attempt makes no more calls.
func (s *Service) withLease(ctx context.Context, id string, fn func(ctx context.Context) error) (bool, error) {
	owner := contract.NewID()
	var (
		ok      bool
		claimed time.Time // on the process's clock, as context deadlines are
	)
	err := s.hold(ctx, func(ctx context.Context, now time.Time, raw rawStores) (err error) {
		// The lease runs from when the call could be sent (not from
		// before its wait for a slot), and so does the attempt's budget.
		claimed = time.Now()
		ok, err = raw.leases.AcquireLease(ctx, id, owner, now, now.Add(s.leaseTTL))
		return err
	})
	if err != nil || !ok {
		return false, err
	}
	actx, cancel := context.WithDeadline(ctx, claimed.Add(s.attemptBudget()))
	err = fn(actx)
	cancel()
	if _, crashed := errors.AsType[*errCrashed](err); crashed {
		return true, err
	}
	// Released even when the caller gave up; the store bounds the call.
	if rerr := s.leases.ReleaseLease(context.WithoutCancel(ctx), id, owner); rerr != nil {
		s.log.WarnContext(ctx, "saga lease not released (it expires by itself and is swept)", "saga_id", id, "error", rerr.Error())
	}
	return true, err
}

// attemptBudget is how long one attempt at a saga may run: its lease, less
// a margin for the clocks of the replicas.
func (s *Service) attemptBudget() time.Duration {
	return s.leaseTTL - min(2*MaxClockSkew, s.leaseTTL/4)
}
