package bff

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"
)

// AuthUser is the auth service's user JSON.
type AuthUser struct {
	ID          string    `json:"id"`
	Email       string    `json:"email"`
	FirstName   string    `json:"first_name"`
	LastName    string    `json:"last_name"`
	PhoneNumber string    `json:"phone_number"`
	UserRole    string    `json:"user_role"`
	DateJoined  time.Time `json:"date_joined"`
	// RegistrationKey is the Idempotency-Key the user was registered with,
	// as the auth service's user lookups report it: the BFF sends its saga
	// id, so a saga can prove it created a user. "" when the auth service
	// does not report it (unknown, never "not ours"). Never sent to clients.
	RegistrationKey string `json:"-"`
}

// TokenPair is the access and refresh token the auth service issues.
type TokenPair struct {
	Access  string `json:"access"`
	Refresh string `json:"refresh"`
}

// CustomerProfile is the customer service's profile: the ids the BFF needs
// and the JSON as the service answered it, passed on unchanged.
type CustomerProfile struct {
	ID     string
	UserID string
	Raw    json.RawMessage
}

// AuthRegistration is the auth part of a registration.
type AuthRegistration struct {
	Email       string `json:"email"`
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	PhoneNumber string `json:"phone_number"`
	Password1   string `json:"password1"`
	Password2   string `json:"password2"`
	// RegistrationKey is sent as the register call's Idempotency-Key header
	// (the saga id); the auth service stores it with the user.
	RegistrationKey string `json:"-"`
	// Deadline is sent as the register call's Registration-Deadline header
	// (the saga's start + the auth timeout): our auth service creates no
	// user after it, so the reconciler's "no user" after the grace is
	// final. The company's Django auth service ignores it.
	Deadline time.Time `json:"-"`
}

// Auth is what the BFF needs of the auth service on behalf of a user.
type Auth interface {
	Register(ctx context.Context, in AuthRegistration) (AuthUser, TokenPair, error)
	Login(ctx context.Context, email, password string) (AuthUser, TokenPair, error)
	// UpdateProfile sends the user fields (raw JSON values by name).
	UpdateProfile(ctx context.Context, token string, fields map[string]json.RawMessage) (AuthUser, error)
	// DeleteSelf deletes the token's own account.
	DeleteSelf(ctx context.Context, token string) error
}

// AuthAdmin is what the BFF does with its service account. It is nil when
// no service client is configured.
type AuthAdmin interface {
	// FindUserByEmail returns the user with that email (with its
	// RegistrationKey when the auth service reports it), or nil when none.
	FindUserByEmail(ctx context.Context, email string) (*AuthUser, error)
	// DeleteUser deletes the user; an UpstreamError of kind
	// ErrUpstreamNotFound when there is no such user.
	DeleteUser(ctx context.Context, id string) error
}

// Customers is what the BFF needs of the customer service on behalf of a
// user (the token's owner).
type Customers interface {
	CreateProfile(ctx context.Context, token string, fields map[string]json.RawMessage) (CustomerProfile, error)
	Profile(ctx context.Context, token string) (CustomerProfile, error)
	UpdateProfile(ctx context.Context, token string, fields map[string]json.RawMessage) (CustomerProfile, error)
	DeleteProfile(ctx context.Context, token string) error
	// ProfileExists asks whether the token's owner has a profile.
	ProfileExists(ctx context.Context, token string) (exists bool, customerID string, err error)
}

// CustomersAdmin is what the BFF does at the customer service with its
// service account. It is nil when no service client is configured.
type CustomersAdmin interface {
	ProfileExistsFor(ctx context.Context, userID string) (exists bool, customerID string, err error)
	DeleteCustomer(ctx context.Context, customerID string) error
}

// SagaStore keeps saga records.
type SagaStore interface {
	CreateSaga(ctx context.Context, s *Saga) error
	// GetSaga returns ErrSagaNotFound when there is no such saga.
	GetSaga(ctx context.Context, id string) (*Saga, error)
	// TransitionSaga applies ch to the saga if it is at version (and moves
	// it to version+1), and returns ErrStateChanged otherwise: of several
	// writers at one version exactly one wins (a fence, see the package
	// documentation). Any other error leaves the outcome unknown: read the
	// saga back.
	TransitionSaga(ctx context.Context, id string, version int, ch SagaChange) error
	// DueSagas lists up to limit non-terminal sagas whose next attempt is
	// due, oldest due first. Its cost follows the open sagas, not all of them.
	DueSagas(ctx context.Context, now time.Time, limit int) ([]*Saga, error)
	// Stats counts the open sagas and those that need attention, and
	// finds the oldest open one.
	Stats(ctx context.Context) (SagaStats, error)
	// SweepSagas deletes the sagas in one of SweptStates last changed
	// before before, and returns how many.
	SweepSagas(ctx context.Context, before time.Time) (int64, error)
}

// LeaseStore holds the leases that give one worker at a time the right to
// advance a saga.
type LeaseStore interface {
	// AcquireLease removes the lease of id if it expired before now, then
	// claims it for owner until expires; false when someone else holds it.
	AcquireLease(ctx context.Context, id, owner string, now, expires time.Time) (bool, error)
	// ReleaseLease deletes owner's lease of id (none: no error).
	ReleaseLease(ctx context.Context, id, owner string) error
	// SweepLeases deletes the leases that expired before before (orphaned
	// by a crash or a failed release) and returns how many.
	SweepLeases(ctx context.Context, before time.Time) (int64, error)
}

// SagaStats is what the reconciler reports about the saga records.
type SagaStats struct {
	Open           int64     // not finished
	NeedsAttention int64     // parked for an operator
	OldestOpen     time.Time // created_at of the oldest open saga; zero when none
}

// Telemetry records what the sagas do; bffd implements it with
// OpenTelemetry. NopTelemetry records nothing.
type Telemetry interface {
	// Start starts a span as a child of ctx's; link, when not empty, is a
	// W3C traceparent the span links to. end records err (nil: success).
	Start(ctx context.Context, name, link string, attrs ...slog.Attr) (_ context.Context, end func(err error))
	// Traceparent is the W3C traceparent of ctx's span, or "".
	Traceparent(ctx context.Context) string
	// Outcome counts a finished (or left pending) saga by kind and outcome.
	Outcome(ctx context.Context, kind, outcome string)
	// Attempt counts one reconciler attempt at a saga by kind and result
	// (AttemptAdvanced, AttemptRetry, AttemptFailed).
	Attempt(ctx context.Context, kind, result string)
}

// Results counted by Telemetry.Attempt.
const (
	AttemptAdvanced = "advanced" // the saga moved to a later state
	AttemptRetry    = "retry"    // nothing could be done now; retried later
	AttemptFailed   = "error"    // the attempt failed (the store, a crash)
)

// Outcomes counted by Telemetry.Outcome.
const (
	OutcomeCompleted      = "completed"
	OutcomeCompensated    = "compensated"
	OutcomePending        = "pending"
	OutcomeFailed         = "failed"
	OutcomeNeedsAttention = "needs_attention"
)

// NopTelemetry records nothing.
type NopTelemetry struct{}

var _ Telemetry = NopTelemetry{}

// Start returns ctx and a no-op end.
func (NopTelemetry) Start(ctx context.Context, _, _ string, _ ...slog.Attr) (context.Context, func(error)) {
	return ctx, func(error) {}
}

// Traceparent returns "".
func (NopTelemetry) Traceparent(context.Context) string { return "" }

// Outcome does nothing.
func (NopTelemetry) Outcome(context.Context, string, string) {}

// Attempt does nothing.
func (NopTelemetry) Attempt(context.Context, string, string) {}
