package bff

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Options are the Service's dependencies and settings.
type Options struct {
	Auth      Auth
	AuthAdmin AuthAdmin // nil without a service client
	Customers Customers
	// CustomersAdmin is nil without a service client.
	CustomersAdmin CustomersAdmin
	// Views is told to forget a user's merged view after each write; nil:
	// no cache to invalidate.
	Views Views

	Sagas  SagaStore
	Leases LeaseStore
	Keys   IdempotencyStore

	Secrets   *Secrets
	Telemetry Telemetry    // nil: NopTelemetry
	Logger    *slog.Logger // nil: slog.Default

	// AuthTimeout and CustomerTimeout are the upstream call timeouts; they
	// set how long a saga in doubt is left alone before it is resolved.
	AuthTimeout     time.Duration
	CustomerTimeout time.Duration
	// StoreTimeout bounds every call to the BFF's own store (default 2s).
	StoreTimeout time.Duration
	// StoreSlots bounds the store calls in flight (default
	// DefaultStoreSlots); StoreTimeout starts once a call holds a slot.
	// StoreWait bounds the wait for a slot (default DefaultStoreWait): a
	// call that waited longer fails with ErrStoreBusy, unsent.
	StoreSlots int
	StoreWait  time.Duration
	// LeaseTTL bounds how long a crashed worker's lease blocks its saga
	// (default: DefaultLeaseTTL). An attempt at a saga stops making calls
	// a margin before its lease expires.
	LeaseTTL time.Duration
	// RetryBase is the first backoff delay of a failed saga step (default 1s).
	RetryBase time.Duration
	Now       func() time.Time

	// AfterStep, when set, is called after each saga step (saga_created,
	// user_created, profile_created, profile_deleted); an error stops the
	// saga there as a crash would. For tests.
	AfterStep func(ctx context.Context, step string) error
}

// Service runs the BFF's sagas and account operations.
type Service struct {
	auth           Auth
	authAdmin      AuthAdmin
	customers      Customers
	customersAdmin CustomersAdmin
	views          Views
	sagas          SagaStore
	leases         LeaseStore
	keys           IdempotencyStore
	// gated is the bounded stores that sagas, leases and keys are, for
	// hold, which gives its call the raw stores once it holds a slot.
	gated        *bounded
	secrets      *Secrets
	tel          Telemetry
	log          *slog.Logger
	authTimeout  time.Duration
	customerTO   time.Duration
	storeTimeout time.Duration
	leaseTTL     time.Duration
	retryBase    time.Duration
	// profileRetryDelay is the pause before the second profile create.
	profileRetryDelay time.Duration
	now               func() time.Time
	afterStep         func(ctx context.Context, step string) error
}

// NewService checks the options and returns the service.
func NewService(o Options) (*Service, error) {
	if o.Auth == nil || o.Customers == nil || o.Sagas == nil || o.Leases == nil || o.Keys == nil || o.Secrets == nil {
		return nil, errors.New("bff: Auth, Customers, Sagas, Leases, Keys and Secrets are required")
	}
	s := &Service{
		auth: o.Auth, authAdmin: o.AuthAdmin, customers: o.Customers, customersAdmin: o.CustomersAdmin,
		views: o.Views, sagas: o.Sagas, leases: o.Leases, keys: o.Keys, secrets: o.Secrets,
		tel: o.Telemetry, log: o.Logger,
		authTimeout: o.AuthTimeout, customerTO: o.CustomerTimeout, storeTimeout: o.StoreTimeout, leaseTTL: o.LeaseTTL,
		retryBase: o.RetryBase, now: o.Now, afterStep: o.AfterStep,
		profileRetryDelay: 100 * time.Millisecond,
	}
	if s.tel == nil {
		s.tel = NopTelemetry{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.storeTimeout <= 0 {
		s.storeTimeout = DefaultStoreTimeout
	}
	if o.StoreSlots <= 0 {
		o.StoreSlots = DefaultStoreSlots
	}
	if o.StoreWait <= 0 {
		o.StoreWait = DefaultStoreWait
	}
	b := &bounded{raw: rawStores{sagas: o.Sagas, leases: o.Leases, keys: o.Keys}, timeout: s.storeTimeout, gate: newGate(o.StoreSlots, o.StoreWait)}
	s.sagas, s.leases, s.keys, s.gated = b, b, b, b
	if s.authTimeout <= 0 {
		s.authTimeout = 3 * time.Second
	}
	if s.customerTO <= 0 {
		s.customerTO = 3 * time.Second
	}
	if s.leaseTTL <= 0 {
		s.leaseTTL = DefaultLeaseTTL(s.authTimeout, s.customerTO, s.storeTimeout)
	}
	if s.retryBase <= 0 {
		s.retryBase = time.Second
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// DefaultStoreTimeout bounds each call to the BFF's store by default.
const DefaultStoreTimeout = 2 * time.Second

// DefaultStoreSlots is how many store calls a replica has in flight at
// most by default, and DefaultStoreWait how long a call waits for a slot.
// The embedded FerretDB serialises its writes, so more calls in flight
// only queue inside it, each against its own timeout: 64 concurrent
// registrations on two cores had some of their store calls time out
// inside the database with eight slots, none with four
// (TestRegistrationBurst). Four calls keep a MongoDB busy enough for a
// replica (each is one or two round trips of about a millisecond: some
// thousands of calls a second, far more than the registrations its
// password hashing allows); the wait is bounded by what a client waits
// for a registration anyway.
const (
	DefaultStoreSlots = 4
	DefaultStoreWait  = 10 * time.Second
)

// DefaultLeaseTTL is long enough for the upstream calls of a registration
// (the register call, two profile-create attempts, the check, the profile
// fetch and two deletes, each bounded by its timeout), two store calls at
// their bound, plus a margin. Whatever the TTL, an attempt stops before
// its lease expires (the calls it makes then fail, and the saga is left
// for the reconciler, as after a crash).
func DefaultLeaseTTL(authTimeout, customerTimeout, storeTimeout time.Duration) time.Duration {
	return 3*authTimeout + 4*customerTimeout + 2*storeTimeout + 5*time.Second
}

// authGrace is how long after its start a saga whose register call may
// still be running at the auth service is left alone: past the call's
// deadline (the start + the auth timeout, after which our auth service
// inserts no user), the clocks' skew, and the allowance of an insert that
// started just before the deadline. After it, a lookup that finds no user
// is final against our auth service.
func (s *Service) authGrace() time.Duration { return s.authTimeout + MaxClockSkew + insertAllowance }

// insertAllowance is how long an insert the auth service started before
// the register call's deadline may take to land (a single-document write).
const insertAllowance = time.Second

// verifyGrace is how long after a compensation the reconciler checks again
// that no profile appeared: longer than any profile create still in flight.
func (s *Service) verifyGrace() time.Duration { return 2*s.customerTO + time.Second }

// HasServiceClient reports whether a service client is configured.
func (s *Service) HasServiceClient() bool { return s.authAdmin != nil || s.customersAdmin != nil }

// detach keeps a saga's work going when the client goes away: the steps
// are bounded by their own timeouts, and a half-done saga is worse than a
// late answer nobody reads.
func detach(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

func (s *Service) invalidate(ctx context.Context, userID string) {
	if s.views != nil && userID != "" {
		s.views.Invalidate(ctx, userID)
	}
}
