package auth_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/contract"
)

// fakeStore is an in-memory auth.Store.
type fakeStore struct {
	mu        sync.Mutex
	users     map[string]auth.User
	blacklist map[string]bool
	setHash   func(id, old, new string)
}

var _ auth.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{users: map[string]auth.User{}, blacklist: map[string]bool{}}
}

func (s *fakeStore) CreateUser(_ context.Context, u auth.User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.users {
		if x.Email == u.Email {
			return auth.ErrEmailTaken
		}
	}
	s.users[u.ID] = u
	return nil
}

func (s *fakeStore) UserByID(_ context.Context, id string) (auth.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return auth.User{}, auth.ErrNotFound
	}
	return u, nil
}

func (s *fakeStore) UserByEmail(_ context.Context, email string) (auth.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.Email == email {
			return u, nil
		}
	}
	return auth.User{}, auth.ErrNotFound
}

func (s *fakeStore) UpdateUser(_ context.Context, id string, upd auth.ProfileUpdate) (auth.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return auth.User{}, auth.ErrNotFound
	}
	if upd.FirstName != nil {
		u.FirstName = *upd.FirstName
	}
	s.users[id] = u
	return u, nil
}

func (s *fakeStore) SetPasswordHash(_ context.Context, id, old, new string) error {
	if s.setHash != nil {
		s.setHash(id, old, new)
	}
	return nil
}

func (s *fakeStore) DeleteUser(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[id]; !ok {
		return auth.ErrNotFound
	}
	delete(s.users, id)
	return nil
}

func (s *fakeStore) ListUsers(_ context.Context, q auth.ListQuery) ([]auth.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []auth.User
	for _, u := range s.users {
		if (q.Role == "" || u.Role == q.Role) && u.ID > q.After {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b auth.User) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(len(out), q.Limit)], nil
}

func (s *fakeStore) BlacklistToken(_ context.Context, jti, _ string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blacklist[jti] {
		return auth.ErrTokenBlacklisted
	}
	s.blacklist[jti] = true
	return nil
}

func (s *fakeStore) Blacklisted(_ context.Context, jti string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blacklist[jti], nil
}

func (s *fakeStore) SweepBlacklist(context.Context, time.Time) (int64, error) { return 0, nil }

// fakeHasher: the "hash" of p is "h:"+p.
type fakeHasher struct {
	mu      sync.Mutex
	dummies int
	err     error
	onHash  func() // called by Hash, e.g. to let a clock run
}

var _ auth.Hasher = (*fakeHasher)(nil)

func (h *fakeHasher) Hash(_ context.Context, p string) (string, error) {
	if h.onHash != nil {
		h.onHash()
	}
	if h.err != nil {
		return "", h.err
	}
	return "h:" + p, nil
}

func (h *fakeHasher) Verify(_ context.Context, p, enc string) (bool, bool, error) {
	if enc == "old:"+p {
		return true, true, nil
	}
	return enc == "h:"+p, false, nil
}

func (h *fakeHasher) VerifyDummy(context.Context, string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dummies++
	return nil
}

type fakeTokens struct{}

var _ auth.Tokens = fakeTokens{}

func (f fakeTokens) Rotate(u auth.User, _ string, now time.Time) (auth.TokenPair, error) {
	return f.Pair(u, now)
}

func (fakeTokens) Pair(u auth.User, _ time.Time) (auth.TokenPair, error) {
	return auth.TokenPair{Access: "a:" + u.ID, Refresh: "r:" + u.ID}, nil
}

func (fakeTokens) Service(id string, _ []string, now time.Time) (auth.ServiceToken, error) {
	return auth.ServiceToken{Access: "s:" + id, ExpiresAt: now.Add(time.Minute)}, nil
}

func (fakeTokens) ParseRefresh(tok string, _ time.Time) (auth.RefreshClaims, error) {
	if len(tok) > 2 && tok[:2] == "r:" {
		return auth.RefreshClaims{JTI: "jti-" + tok[2:], UserID: tok[2:]}, nil
	}
	return auth.RefreshClaims{}, auth.ErrTokenInvalid
}

// fakeLimiter records calls; its function fields decide the answers.
type fakeLimiter struct {
	allow    func(bucket, key string) (time.Duration, error)
	locked   time.Duration
	failures int
	resets   int
}

var _ auth.Limiter = (*fakeLimiter)(nil)

func (l *fakeLimiter) Allow(_ context.Context, b, k string) (time.Duration, error) {
	if l.allow == nil {
		return 0, nil
	}
	return l.allow(b, k)
}
func (l *fakeLimiter) LockedOut(context.Context, string) (time.Duration, error) { return l.locked, nil }
func (l *fakeLimiter) LoginFailed(context.Context, string) error                { l.failures++; return nil }
func (l *fakeLimiter) LoginSucceeded(context.Context, string) error             { l.resets++; return nil }

type fakePublisher struct{ ops []string }

func (p *fakePublisher) UserChanged(_ context.Context, id, op string) {
	p.ops = append(p.ops, op+":"+id)
}

type fixture struct {
	svc     *auth.Service
	store   *fakeStore
	hasher  *fakeHasher
	limiter *fakeLimiter
	pub     *fakePublisher
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	rules, err := auth.NewPasswordRules()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: newFakeStore(), hasher: &fakeHasher{}, limiter: &fakeLimiter{}, pub: &fakePublisher{}}
	clients, _ := auth.ParseClients("bff:secret", "")
	f.svc, err = auth.NewService(auth.Deps{Store: f.store, Hasher: f.hasher, Tokens: fakeTokens{}, Rules: rules,
		Limiter: f.limiter, Publisher: f.pub, Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func ptr(s string) *string { return &s }

func validRegistration(email string) auth.RegisterInput {
	return auth.RegisterInput{Email: ptr(email), FirstName: ptr("Zed"), LastName: ptr("Quux"),
		Password1: ptr("Tr1cky-Wombat-Lantern"), Password2: ptr("Tr1cky-Wombat-Lantern")}
}

func TestRegisterThrottledCreatesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.limiter.allow = func(b, _ string) (time.Duration, error) {
		if b == auth.BucketRegisterEmail {
			return 42 * time.Second, nil
		}
		return 0, nil
	}
	_, err := f.svc.Register(context.Background(), validRegistration("a@example.com"), "10.0.0.1")
	te, ok := errors.AsType[*auth.ThrottledError](err)
	if !ok || te.RetryAfter != 42*time.Second {
		t.Fatalf("err = %v, want a 42s ThrottledError", err)
	}
	if len(f.store.users) != 0 {
		t.Fatal("a throttled registration stored a user")
	}
}

func TestLimiterFailureLetsRequestsThrough(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.limiter.allow = func(string, string) (time.Duration, error) { return 0, errors.New("redis down") }
	if _, err := f.svc.Register(context.Background(), validRegistration("b@example.com"), "10.0.0.1"); err != nil {
		t.Fatalf("register with the limiter down: %v", err)
	}
}

func TestLoginPaths(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	reg, err := f.svc.Register(ctx, validRegistration("c@example.com"), "")
	if err != nil {
		t.Fatal(err)
	}
	login := func(email, pw string) error {
		_, err := f.svc.Login(ctx, auth.LoginInput{Email: ptr(email), Password: ptr(pw)}, "10.0.0.1")
		return err
	}
	if err := login("nobody@example.com", "whatever"); !errors.Is(err, auth.ErrInvalidCredentials) || f.hasher.dummies != 1 || f.limiter.failures != 1 {
		t.Fatalf("unknown email: err %v, dummy hashes %d, failures %d", err, f.hasher.dummies, f.limiter.failures)
	}
	if err := login("C@Example.com", "wrong"); !errors.Is(err, auth.ErrInvalidCredentials) || f.limiter.failures != 2 {
		t.Fatalf("wrong password: %v", err)
	}
	if err := login(" c@example.com", "Tr1cky-Wombat-Lantern"); err != nil || f.limiter.resets != 1 {
		t.Fatalf("good login: %v (resets %d)", err, f.limiter.resets)
	}
	f.limiter.locked = 90 * time.Second
	if err := login("c@example.com", "Tr1cky-Wombat-Lantern"); err == nil {
		t.Fatal("a locked-out email logged in")
	} else if te, ok := errors.AsType[*auth.ThrottledError](err); !ok || te.RetryAfter != 90*time.Second {
		t.Fatalf("locked out: %v", err)
	}
	f.limiter.locked = 0

	// A legacy hash is upgraded on login.
	u := reg.User
	u.PasswordHash = "old:Legacy-Pass"
	f.store.users[u.ID] = u
	var rehashed []string
	f.store.setHash = func(id, old, new string) { rehashed = append(rehashed, id, old, new) }
	if err := login("c@example.com", "Legacy-Pass"); err != nil {
		t.Fatal(err)
	}
	if len(rehashed) != 3 || rehashed[0] != u.ID || rehashed[1] != "old:Legacy-Pass" || rehashed[2] != "h:Legacy-Pass" {
		t.Fatalf("rehash: %q", rehashed)
	}
	// An account with an unusable password never logs in, and still costs a hash.
	u.PasswordHash = "!unusable"
	f.store.users[u.ID] = u
	before := f.hasher.dummies
	if err := login("c@example.com", "!unusable"); !errors.Is(err, auth.ErrInvalidCredentials) || f.hasher.dummies != before+1 {
		t.Fatalf("unusable password: %v", err)
	}
}

func TestHasherBusyIsReported(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.hasher.err = auth.ErrBusy
	_, err := f.svc.Register(context.Background(), validRegistration("d@example.com"), "")
	if !errors.Is(err, auth.ErrBusy) || len(f.store.users) != 0 {
		t.Fatalf("err = %v, users %d", err, len(f.store.users))
	}
}

func TestRefreshRotationRules(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	reg, _ := f.svc.Register(ctx, validRegistration("e@example.com"), "")
	if _, err := f.svc.Refresh(ctx, ptr(reg.Tokens.Refresh)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, ptr(reg.Tokens.Refresh)); !errors.Is(err, auth.ErrTokenBlacklisted) {
		t.Fatalf("reuse: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, ptr("bogus")); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("bogus: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, nil); err == nil {
		t.Fatal("missing refresh accepted")
	}
}

func TestPermissionsAndChangeFeed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	reg, _ := f.svc.Register(ctx, validRegistration("f@example.com"), "")
	self := auth.Principal{UserID: reg.User.ID, Role: contract.RoleCustomer}
	service := auth.Principal{UserID: "bff", Role: contract.RoleService, Scopes: auth.KnownScopes()}
	employee := auth.Principal{UserID: contract.NewID(), Role: contract.RoleEmployee}
	if _, err := f.svc.Profile(ctx, service); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("service profile: %v", err)
	}
	if err := f.svc.DeleteSelf(ctx, service); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("service self-delete: %v", err)
	}
	if _, err := f.svc.GetUser(ctx, self, reg.User.ID); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("customer get user: %v", err)
	}
	if err := f.svc.DeleteUser(ctx, employee, reg.User.ID); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("employee delete: %v", err)
	}
	if _, err := f.svc.CreateUser(ctx, service, auth.CreateUserInput{Email: ptr("g@example.com"), Role: ptr("admin")}); !errors.Is(err, auth.ErrForbidden) {
		t.Fatalf("service sets role: %v", err)
	}
	if _, err := f.svc.UpdateProfile(ctx, self, auth.ProfileUpdate{FirstName: ptr("Zoe")}); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteUser(ctx, service, reg.User.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{"update:" + reg.User.ID, "delete:" + reg.User.ID}
	if len(f.pub.ops) != 2 || f.pub.ops[0] != want[0] || f.pub.ops[1] != want[1] {
		t.Fatalf("published %q, want %q", f.pub.ops, want)
	}
}

func TestEnsureAdmin(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if created, err := f.svc.EnsureAdmin(ctx, "Admin@Example.com", "Correct-Horse-Battery-9"); err != nil || !created {
		t.Fatalf("first: %v %v", created, err)
	}
	if created, err := f.svc.EnsureAdmin(ctx, "admin@example.com", "Correct-Horse-Battery-9"); err != nil || created {
		t.Fatalf("second: %v %v", created, err)
	}
	if _, err := f.svc.EnsureAdmin(ctx, "x@example.com", "password"); err == nil {
		t.Fatal("a common bootstrap password was accepted")
	}
	u, err := f.store.UserByEmail(ctx, "admin@example.com")
	if err != nil || u.Role != contract.RoleAdmin {
		t.Fatalf("admin: %+v %v", u, err)
	}
}

func TestServiceTokenCredentials(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if st, err := f.svc.ServiceToken(ctx, auth.ServiceTokenInput{ClientID: ptr("bff"), ClientSecret: ptr("secret")}, ""); err != nil || st.Access != "s:bff" {
		t.Fatalf("good: %v %v", st, err)
	}
	if _, err := f.svc.ServiceToken(ctx, auth.ServiceTokenInput{ClientID: ptr("bff"), ClientSecret: ptr("nope")}, ""); !errors.Is(err, auth.ErrInvalidClient) {
		t.Fatalf("bad: %v", err)
	}
}

// TestRegistrationKeyStoredAndNotReplayed: the key is stored with the user
// and read back by staff; a second registration of the email, with the same
// key or another, is the email error and changes nothing.
func TestRegistrationKeyStoredAndNotReplayed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	in := validRegistration("k@example.com")
	in.RegistrationKey = ptr("saga-1")
	res, err := f.svc.Register(ctx, in, "10.0.0.1")
	if err != nil || res.User.RegistrationKey != "saga-1" {
		t.Fatalf("register: %+v, %v", res.User, err)
	}
	svc := auth.Principal{UserID: "bff", Role: contract.RoleService, Scopes: []string{auth.ScopeUsersRead}}
	if u, err := f.svc.GetUser(ctx, svc, res.User.ID); err != nil || u.RegistrationKey != "saga-1" {
		t.Fatalf("GetUser: %+v, %v", u, err)
	}
	for _, key := range []*string{ptr("saga-1"), ptr("saga-2"), nil} {
		again := validRegistration("K@example.com")
		again.RegistrationKey = key
		_, err := f.svc.Register(ctx, again, "10.0.0.1")
		if ve, ok := errors.AsType[*contract.ValidationError](err); !ok || len(ve.Fields) != 1 || ve.Fields["email"][0] != auth.MsgEmailTaken {
			t.Fatalf("second registration with key %v: %v", key, err)
		}
	}
	if users, err := f.svc.FindByEmail(ctx, svc, ptr("k@example.com")); err != nil || len(users) != 1 || users[0].ID != res.User.ID || users[0].RegistrationKey != "saga-1" {
		t.Fatalf("FindByEmail after the second registrations: %+v, %v", users, err)
	}
	if len(f.store.users) != 1 {
		t.Fatalf("%d users stored", len(f.store.users))
	}
	in = validRegistration("bad-key@example.com")
	in.RegistrationKey = ptr("")
	if _, err := f.svc.Register(ctx, in, "10.0.0.1"); err == nil || len(f.store.users) != 1 {
		t.Fatalf("an empty key: %v, %d users", err, len(f.store.users))
	}
}
