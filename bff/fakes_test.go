package bff

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// Hand-written fakes of the ports, with function fields for the behaviour
// a test needs and counters of what was called.

type fakeAuth struct {
	mu         sync.Mutex
	register   func(AuthRegistration) (AuthUser, TokenPair, error)
	keys       []string // the RegistrationKey of each register call
	deleteSelf func(token string) error
	update     func(fields map[string]json.RawMessage) (AuthUser, error)
	calls      []string
}

var _ Auth = (*fakeAuth)(nil)

func (f *fakeAuth) record(c string) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
}

func (f *fakeAuth) Register(_ context.Context, in AuthRegistration) (AuthUser, TokenPair, error) {
	f.record("register")
	f.mu.Lock()
	f.keys = append(f.keys, in.RegistrationKey)
	f.mu.Unlock()
	return f.register(in)
}

func (f *fakeAuth) Login(context.Context, string, string) (AuthUser, TokenPair, error) {
	f.record("login")
	return AuthUser{ID: "u1"}, TokenPair{Access: "a"}, nil
}

func (f *fakeAuth) UpdateProfile(_ context.Context, _ string, fields map[string]json.RawMessage) (AuthUser, error) {
	f.record("update")
	return f.update(fields)
}

func (f *fakeAuth) DeleteSelf(_ context.Context, token string) error {
	f.record("delete_self")
	if f.deleteSelf == nil {
		return nil
	}
	return f.deleteSelf(token)
}

func (f *fakeAuth) count(c string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, x := range f.calls {
		if x == c {
			n++
		}
	}
	return n
}

type fakeAuthAdmin struct {
	find    func(email string) (*AuthUser, error)
	del     func(id string) error
	deleted []string
}

var _ AuthAdmin = (*fakeAuthAdmin)(nil)

func (f *fakeAuthAdmin) FindUserByEmail(_ context.Context, email string) (*AuthUser, error) {
	return f.find(email)
}

func (f *fakeAuthAdmin) DeleteUser(_ context.Context, id string) error {
	if f.del != nil {
		if err := f.del(id); err != nil {
			return err
		}
	}
	f.deleted = append(f.deleted, id)
	return nil
}

type fakeCustomers struct {
	mu      sync.Mutex
	create  func() (CustomerProfile, error)
	exists  func() (bool, string, error)
	profile func() (CustomerProfile, error)
	update  func() (CustomerProfile, error)
	creates int
}

var _ Customers = (*fakeCustomers)(nil)

func (f *fakeCustomers) CreateProfile(context.Context, string, map[string]json.RawMessage) (CustomerProfile, error) {
	f.mu.Lock()
	f.creates++
	f.mu.Unlock()
	return f.create()
}

func (f *fakeCustomers) Profile(context.Context, string) (CustomerProfile, error) {
	if f.profile == nil {
		return CustomerProfile{ID: "c1", UserID: "u1", Raw: json.RawMessage(`{"id":"c1","user_id":"u1"}`)}, nil
	}
	return f.profile()
}

func (f *fakeCustomers) UpdateProfile(context.Context, string, map[string]json.RawMessage) (CustomerProfile, error) {
	return f.update()
}

func (f *fakeCustomers) DeleteProfile(context.Context, string) error { return nil }

func (f *fakeCustomers) ProfileExists(context.Context, string) (bool, string, error) {
	if f.exists == nil {
		return false, "", nil
	}
	return f.exists()
}

type fakeCustomersAdmin struct {
	exists  func(userID string) (bool, string, error)
	deleted []string
}

var _ CustomersAdmin = (*fakeCustomersAdmin)(nil)

func (f *fakeCustomersAdmin) ProfileExistsFor(_ context.Context, userID string) (bool, string, error) {
	return f.exists(userID)
}

func (f *fakeCustomersAdmin) DeleteCustomer(_ context.Context, id string) error {
	f.deleted = append(f.deleted, id)
	return nil
}

type fakeViews struct {
	mu          sync.Mutex
	invalidated []string
}

var _ Views = (*fakeViews)(nil)

func (f *fakeViews) View(context.Context, string, string) ([]byte, CacheStatus, error) {
	return []byte(`{}`), CacheBypass, nil
}

func (f *fakeViews) Invalidate(_ context.Context, userID string) {
	f.mu.Lock()
	f.invalidated = append(f.invalidated, userID)
	f.mu.Unlock()
}

// memStore keeps sagas, leases and idempotency records in memory with the
// same guarded semantics as the Mongo store.
type memStore struct {
	mu     sync.Mutex
	sagas  map[string]Saga
	leases map[string]lease
	keys   map[string]IdempotencyRecord
	down   bool // every call fails
	// hang makes every call wait for its context's end (a hung database).
	hang bool
	// failTransition, when set, may fail a transition before it is applied.
	failTransition func(ch SagaChange) error
	// failCompleteKey fails CompleteKey.
	failCompleteKey bool
}

type lease struct {
	owner   string
	expires time.Time
}

var (
	_ SagaStore        = (*memStore)(nil)
	_ LeaseStore       = (*memStore)(nil)
	_ IdempotencyStore = (*memStore)(nil)
)

var errDown = errors.New("store down")

func newMemStore() *memStore {
	return &memStore{sagas: map[string]Saga{}, leases: map[string]lease{}, keys: map[string]IdempotencyRecord{}}
}

func (m *memStore) lockCtx(ctx context.Context) error {
	m.mu.Lock()
	if m.hang {
		m.mu.Unlock()
		<-ctx.Done()
		return ctx.Err()
	}
	if m.down {
		m.mu.Unlock()
		return errDown
	}
	return nil
}

func (m *memStore) CreateSaga(ctx context.Context, s *Saga) error {
	if err := m.lockCtx(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, dup := m.sagas[s.ID]; dup {
		return errors.New("duplicate saga")
	}
	m.sagas[s.ID] = *s
	return nil
}

func (m *memStore) GetSaga(ctx context.Context, id string) (*Saga, error) {
	if err := m.lockCtx(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	s, ok := m.sagas[id]
	if !ok {
		return nil, ErrSagaNotFound
	}
	return &s, nil
}

func (m *memStore) TransitionSaga(ctx context.Context, id string, version int, ch SagaChange) error {
	if err := m.lockCtx(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if m.failTransition != nil {
		if err := m.failTransition(ch); err != nil {
			return err
		}
	}
	s, ok := m.sagas[id]
	if !ok || s.Version != version {
		return ErrStateChanged
	}
	ApplyChange(&s, ch)
	m.sagas[id] = s
	return nil
}

func (m *memStore) DueSagas(ctx context.Context, now time.Time, limit int) ([]*Saga, error) {
	if err := m.lockCtx(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	var out []*Saga
	for _, s := range m.sagas {
		if !Terminal(s.State) && !s.NextAttemptAt.After(now) && len(out) < limit {
			out = append(out, &s)
		}
	}
	return out, nil
}

func (m *memStore) Stats(ctx context.Context) (SagaStats, error) {
	if err := m.lockCtx(ctx); err != nil {
		return SagaStats{}, err
	}
	defer m.mu.Unlock()
	var st SagaStats
	for _, s := range m.sagas {
		switch {
		case s.State == StateNeedsAttention:
			st.NeedsAttention++
		case !Terminal(s.State):
			st.Open++
			if st.OldestOpen.IsZero() || s.CreatedAt.Before(st.OldestOpen) {
				st.OldestOpen = s.CreatedAt
			}
		}
	}
	return st, nil
}

func (m *memStore) SweepSagas(ctx context.Context, before time.Time) (int64, error) {
	if err := m.lockCtx(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	var n int64
	for id, s := range m.sagas {
		if slices.Contains(SweptStates, s.State) && s.UpdatedAt.Before(before) {
			delete(m.sagas, id)
			n++
		}
	}
	return n, nil
}

func (m *memStore) AcquireLease(ctx context.Context, id, owner string, now, expires time.Time) (bool, error) {
	if err := m.lockCtx(ctx); err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	if l, held := m.leases[id]; held && !l.expires.Before(now) {
		return false, nil
	}
	m.leases[id] = lease{owner: owner, expires: expires}
	return true, nil
}

func (m *memStore) ReleaseLease(ctx context.Context, id, owner string) error {
	if err := m.lockCtx(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if m.leases[id].owner == owner {
		delete(m.leases, id)
	}
	return nil
}

func (m *memStore) SweepLeases(ctx context.Context, before time.Time) (int64, error) {
	if err := m.lockCtx(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	var n int64
	for id, l := range m.leases {
		if l.expires.Before(before) {
			delete(m.leases, id)
			n++
		}
	}
	return n, nil
}

func (m *memStore) InsertKey(ctx context.Context, r *IdempotencyRecord) error {
	if err := m.lockCtx(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if old, dup := m.keys[r.KeyID]; dup && r.CreatedAt.Before(old.ExpiresAt) {
		return ErrKeyExists
	}
	m.keys[r.KeyID] = *r
	return nil
}

func (m *memStore) GetKey(ctx context.Context, keyID string, now time.Time) (*IdempotencyRecord, error) {
	if err := m.lockCtx(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	r, ok := m.keys[keyID]
	if !ok {
		return nil, ErrKeyNotFound
	}
	return &r, nil
}

func (m *memStore) CompleteKey(ctx context.Context, keyID, owner string, status int, answer []byte, now time.Time) error {
	if err := m.lockCtx(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if m.failCompleteKey {
		return errDown
	}
	r, ok := m.keys[keyID]
	if !ok || r.Owner != owner || r.State != KeyInFlight {
		return ErrKeyChanged
	}
	r.State, r.Status, r.Answer = KeyDone, status, slices.Clone(answer)
	m.keys[keyID] = r
	return nil
}

func (m *memStore) DeleteKey(ctx context.Context, keyID, owner string, now time.Time) error {
	if err := m.lockCtx(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if r, ok := m.keys[keyID]; ok && r.Owner == owner && r.State == KeyInFlight {
		delete(m.keys, keyID)
	}
	return nil
}

func (m *memStore) SweepKeys(ctx context.Context, now time.Time) (int64, error) {
	if err := m.lockCtx(ctx); err != nil {
		return 0, err
	}
	defer m.mu.Unlock()
	var n int64
	for id, r := range m.keys {
		if !r.ExpiresAt.After(now) {
			delete(m.keys, id)
			n++
		}
	}
	return n, nil
}

func (m *memStore) only(t *testing.T) Saga {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sagas) != 1 {
		t.Fatalf("%d sagas, want 1", len(m.sagas))
	}
	for _, s := range m.sagas {
		return s
	}
	return Saga{}
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is a Service over the fakes.
type harness struct {
	svc       *Service
	store     *memStore
	auth      *fakeAuth
	authAdmin *fakeAuthAdmin
	customers *fakeCustomers
	custAdmin *fakeCustomersAdmin
	views     *fakeViews
	clock     *clock
}

var testUser = AuthUser{ID: "u1", Email: "ada@example.com", DateJoined: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}

func newHarness(t *testing.T, withServiceClient bool) *harness {
	t.Helper()
	h := &harness{
		store: newMemStore(),
		auth: &fakeAuth{register: func(AuthRegistration) (AuthUser, TokenPair, error) {
			return testUser, TokenPair{Access: "access-token", Refresh: "refresh-token"}, nil
		}},
		customers: &fakeCustomers{create: func() (CustomerProfile, error) {
			return CustomerProfile{ID: "c1", UserID: "u1", Raw: json.RawMessage(`{"id":"c1","user_id":"u1"}`)}, nil
		}},
		views: &fakeViews{},
		clock: &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)},
	}
	secrets, err := NewSecrets([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Auth: h.auth, Customers: h.customers, Views: h.views,
		Sagas: h.store, Leases: h.store, Keys: h.store, Secrets: secrets,
		AuthTimeout: time.Second, CustomerTimeout: time.Second, RetryBase: time.Second,
		Now:    h.clock.now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if withServiceClient {
		h.authAdmin = &fakeAuthAdmin{find: func(string) (*AuthUser, error) { return nil, nil }}
		h.custAdmin = &fakeCustomersAdmin{exists: func(string) (bool, string, error) { return false, "", nil }}
		o.AuthAdmin, o.CustomersAdmin = h.authAdmin, h.custAdmin
	}
	if h.svc, err = NewService(o); err != nil {
		t.Fatal(err)
	}
	return h
}

func upstream(service string, kind error, notSent bool, status int) *UpstreamError {
	return &UpstreamError{Service: service, Kind: kind, NotSent: notSent, Status: status}
}

var validRegistration = Registration{
	Auth:    AuthRegistration{Email: "Ada@Example.com", FirstName: "Ada", LastName: "Lovelace", Password1: "pw", Password2: "pw"},
	Profile: map[string]json.RawMessage{"city": json.RawMessage(`"Portland"`)},
}
