package bff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The exhaustive fault suite of issue 14: for registration and for account
// deletion, every crash point (the process dies before or after each
// upstream call and each store write) times every upstream fault (each
// kind at each call), each run against a fresh world, recovered by fresh
// Services on the same store (as after a restart) until nothing is open,
// then the invariants checked over the whole state. Not a sample: the
// number of cases is the product, and the test asserts it.

// faultKind is what one upstream call does wrong.
type faultKind int

const (
	faultRefused      faultKind = iota // connection refused: nothing happened
	fault5xx                           // the service failed: nothing happened
	fault429                           // throttled: nothing happened
	fault401                           // the token was rejected: nothing happened
	faultTimeoutAfter                  // the service acted, the answer came too late
	faultDropAfter                     // the service acted, the connection was cut before the answer
	faultReplayed                      // the service acted, the call was replayed (a transport, a proxy) and the replay's answer came back
	numFaultKinds
)

func (k faultKind) String() string {
	return [...]string{"refused", "5xx", "429", "401", "timeout-after-act", "dropped-after-act", "replayed-after-act"}[k]
}

func (k faultKind) acts() bool {
	return k == faultTimeoutAfter || k == faultDropAfter || k == faultReplayed
}

func (k faultKind) err(service string) error {
	switch k {
	case faultRefused:
		return &UpstreamError{Service: service, Kind: ErrUpstreamUnavailable, NotSent: true, Err: errors.New("connection refused")}
	case fault5xx:
		return &UpstreamError{Service: service, Kind: ErrUpstreamUnavailable, Status: 503}
	case fault429:
		return &UpstreamError{Service: service, Kind: ErrUpstreamThrottled, Status: 429, RetryAfter: time.Second}
	case fault401:
		return &UpstreamError{Service: service, Kind: ErrUpstreamUnauthorized, Status: 401, Code: "token_not_valid"}
	case faultTimeoutAfter:
		return &UpstreamError{Service: service, Kind: ErrUpstreamUnavailable, Err: context.DeadlineExceeded}
	default:
		return &UpstreamError{Service: service, Kind: ErrUpstreamUnavailable, Err: errors.New("connection reset by peer")}
	}
}

// crashed is the panic that models the process dying.
type crashed struct{}

// plan is one case: one fault (at one upstream call, or at one store
// write) and the crash at one point (-1: none), counted over the whole
// case (request, recovery, retries).
type plan struct {
	faultAt   int // upstream call index, -1: none
	fault     faultKind
	writeAt   int  // store write index, -1: none
	writeLost bool // the write was applied but its answer lost; else it failed
	crashAt   int  // event point: 2i is before event i, 2i+1 after it
	calls     int  // upstream calls seen
	writes    int  // store writes seen
	points    int  // crash points seen
	crashedAt string
}

// point is a crash point: the process dies here if the plan says so.
func (p *plan) point(what string) {
	n := p.points
	p.points++
	if n == p.crashAt {
		p.crashedAt = what
		panic(crashed{})
	}
}

// call runs one upstream call: the crash points around it, and the fault.
func (p *plan) call(service, what string, act func() error) error {
	p.point("before " + what)
	n := p.calls
	p.calls++
	var err error
	switch {
	case n != p.faultAt:
		err = act()
	case p.fault == faultReplayed:
		_ = act()
		err = act() // the replay's answer is the one the caller gets
	case p.fault.acts():
		_ = act()
		err = p.fault.err(service)
	default:
		err = p.fault.err(service)
	}
	p.point("after " + what)
	return err
}

// write runs one store write with the crash points around it, and the
// store fault: the write fails, or is applied and its answer lost.
func (p *plan) write(what string, fn func() error) error {
	p.point("before " + what)
	n := p.writes
	p.writes++
	var err error
	switch {
	case n != p.writeAt:
		err = fn()
	case p.writeLost:
		_ = fn()
		err = fmt.Errorf("%s: %w", what, context.DeadlineExceeded)
	default:
		err = fmt.Errorf("%s: %w", what, errDown)
	}
	p.point("after " + what)
	return err
}

// world models the auth and customer services faithfully: users by id and
// email (with the registration key), access tokens (five minutes), and
// profiles by user id. The customer service confirms the token's user
// before creating a profile (issue 14, scenario 8): a deleted user's
// token gets 401 user_not_found. (The model is sequential: the real
// service's check-to-insert race is not in it.)
type world struct {
	mu       sync.Mutex
	p        *plan
	now      func() time.Time
	users    map[string]*worldUser
	byEmail  map[string]string
	tokens   map[string]worldToken
	profiles map[string]string // user id -> customer id
	deleted  []string          // user ids, in order
	seq      int
	noKeys   bool // an auth service that does not store the key (Django)
}

type worldUser struct {
	ID, Email, Key string
	Joined         time.Time
}

type worldToken struct {
	userID string
	issued time.Time
}

const tokenLife = 5 * time.Minute

func newWorld(p *plan, now func() time.Time) *world {
	return &world{p: p, now: now, users: map[string]*worldUser{}, byEmail: map[string]string{},
		tokens: map[string]worldToken{}, profiles: map[string]string{}}
}

func (w *world) id(prefix string) string { w.seq++; return fmt.Sprintf("%s%d", prefix, w.seq) }

func (w *world) issue(userID string) string {
	t := w.id("token-")
	w.tokens[t] = worldToken{userID: userID, issued: w.now()}
	return t
}

// owner resolves a token as a JWT verifier does (no user lookup): the
// subject, or 401 token_not_valid once expired.
func (w *world) owner(service, token string) (string, error) {
	t, ok := w.tokens[token]
	if !ok || w.now().Sub(t.issued) > tokenLife {
		return "", &UpstreamError{Service: service, Kind: ErrUpstreamUnauthorized, Status: 401, Code: "token_not_valid"}
	}
	return t.userID, nil
}

// as runs act under the world's lock as the token's user: what a JWT
// verifier lets through (owner).
func (w *world) as(service, token string, act func(uid string) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	uid, err := w.owner(service, token)
	if err != nil {
		return err
	}
	return act(uid)
}

func (w *world) userJSON(u *worldUser) AuthUser {
	out := AuthUser{ID: u.ID, Email: u.Email, DateJoined: u.Joined}
	if !w.noKeys {
		out.RegistrationKey = u.Key
	}
	return out
}

func (w *world) profile(uid string) CustomerProfile {
	id := w.profiles[uid]
	return CustomerProfile{ID: id, UserID: uid, Raw: json.RawMessage(fmt.Sprintf(`{"id":%q,"user_id":%q}`, id, uid))}
}

func (w *world) deleteUser(id string) {
	u := w.users[id]
	delete(w.users, id)
	delete(w.byEmail, u.Email)
	w.deleted = append(w.deleted, id)
}

// The ports over the world.

type worldAuth struct {
	w *world
	p *plan // the replica's faults and crash point; nil: the world's
}

func (a worldAuth) plan() *plan {
	if a.p != nil {
		return a.p
	}
	return a.w.p
}

func (a worldAuth) Register(_ context.Context, in AuthRegistration) (u AuthUser, tp TokenPair, err error) {
	w := a.w
	err = a.plan().call(ServiceAuth, "auth register", func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		email := strings.ToLower(in.Email)
		if _, taken := w.byEmail[email]; taken {
			return &UpstreamError{Service: ServiceAuth, Kind: ErrUpstreamInvalid, Status: 400,
				Fields: map[string][]string{"email": {"user with this email already exists."}}}
		}
		nu := &worldUser{ID: w.id("user-"), Email: email, Key: in.RegistrationKey, Joined: w.now()}
		w.users[nu.ID], w.byEmail[email] = nu, nu.ID
		u, tp = w.userJSON(nu), TokenPair{Access: w.issue(nu.ID), Refresh: "refresh"}
		u.RegistrationKey = "" // the user's own answers do not carry it
		return nil
	})
	if err != nil {
		return AuthUser{}, TokenPair{}, err
	}
	return u, tp, nil
}

func (a worldAuth) Login(context.Context, string, string) (AuthUser, TokenPair, error) {
	return AuthUser{}, TokenPair{}, errors.New("not modelled")
}

func (a worldAuth) UpdateProfile(context.Context, string, map[string]json.RawMessage) (AuthUser, error) {
	return AuthUser{}, errors.New("not modelled")
}

func (a worldAuth) DeleteSelf(_ context.Context, token string) error {
	w := a.w
	return a.plan().call(ServiceAuth, "auth delete self", func() error {
		return w.as(ServiceAuth, token, func(uid string) error {
			if _, ok := w.users[uid]; !ok {
				return &UpstreamError{Service: ServiceAuth, Kind: ErrUpstreamUnauthorized, Status: 401, Code: CodeUserNotFound}
			}
			w.deleteUser(uid)
			return nil
		})
	})
}

func (a worldAuth) FindUserByEmail(_ context.Context, email string) (found *AuthUser, err error) {
	w := a.w
	err = a.plan().call(ServiceAuth, "auth find user", func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if id, ok := w.byEmail[strings.ToLower(email)]; ok {
			u := w.userJSON(w.users[id])
			found = &u
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

func (a worldAuth) DeleteUser(_ context.Context, id string) error {
	w := a.w
	return a.plan().call(ServiceAuth, "auth delete user", func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, ok := w.users[id]; !ok {
			return &UpstreamError{Service: ServiceAuth, Kind: ErrUpstreamNotFound, Status: 404}
		}
		w.deleteUser(id)
		return nil
	})
}

type worldCustomers struct {
	w *world
	p *plan
}

func (c worldCustomers) plan() *plan {
	if c.p != nil {
		return c.p
	}
	return c.w.p
}

func (c worldCustomers) CreateProfile(_ context.Context, token string, _ map[string]json.RawMessage) (p CustomerProfile, err error) {
	w := c.w
	err = c.plan().call(ServiceCustomer, "customer create", func() error {
		return w.as(ServiceCustomer, token, func(uid string) error {
			// As the customer service does: the user is confirmed at the auth
			// service before the insert (a deleted user's token creates nothing).
			if _, ok := w.users[uid]; !ok {
				return &UpstreamError{Service: ServiceCustomer, Kind: ErrUpstreamUnauthorized, Status: 401, Code: CodeUserNotFound}
			}
			if _, ok := w.profiles[uid]; ok {
				return &UpstreamError{Service: ServiceCustomer, Kind: ErrUpstreamConflict, Status: 409}
			}
			w.profiles[uid] = w.id("customer-")
			p = w.profile(uid)
			return nil
		})
	})
	if err != nil {
		return CustomerProfile{}, err
	}
	return p, nil
}

func (c worldCustomers) Profile(_ context.Context, token string) (p CustomerProfile, err error) {
	w := c.w
	err = c.plan().call(ServiceCustomer, "customer profile", func() error {
		return w.as(ServiceCustomer, token, func(uid string) error {
			if _, ok := w.profiles[uid]; !ok {
				return &UpstreamError{Service: ServiceCustomer, Kind: ErrUpstreamNotFound, Status: 404}
			}
			p = w.profile(uid)
			return nil
		})
	})
	if err != nil {
		return CustomerProfile{}, err
	}
	return p, nil
}

func (c worldCustomers) UpdateProfile(context.Context, string, map[string]json.RawMessage) (CustomerProfile, error) {
	return CustomerProfile{}, errors.New("not modelled")
}

func (c worldCustomers) DeleteProfile(_ context.Context, token string) error {
	w := c.w
	return c.plan().call(ServiceCustomer, "customer delete", func() error {
		return w.as(ServiceCustomer, token, func(uid string) error {
			if _, ok := w.profiles[uid]; !ok {
				return &UpstreamError{Service: ServiceCustomer, Kind: ErrUpstreamNotFound, Status: 404}
			}
			delete(w.profiles, uid)
			return nil
		})
	})
}

func (c worldCustomers) ProfileExists(_ context.Context, token string) (exists bool, id string, err error) {
	w := c.w
	err = c.plan().call(ServiceCustomer, "customer check", func() error {
		return w.as(ServiceCustomer, token, func(uid string) error {
			id, exists = w.profiles[uid]
			return nil
		})
	})
	return exists, id, err
}

func (c worldCustomers) ProfileExistsFor(_ context.Context, uid string) (exists bool, id string, err error) {
	w := c.w
	err = c.plan().call(ServiceCustomer, "customer check for", func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		id, exists = w.profiles[uid]
		return nil
	})
	return exists, id, err
}

func (c worldCustomers) DeleteCustomer(_ context.Context, id string) error {
	w := c.w
	return c.plan().call(ServiceCustomer, "customer delete by id", func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		for uid, cid := range w.profiles {
			if cid == id {
				delete(w.profiles, uid)
				return nil
			}
		}
		return &UpstreamError{Service: ServiceCustomer, Kind: ErrUpstreamNotFound, Status: 404}
	})
}

var (
	_ Auth           = worldAuth{}
	_ AuthAdmin      = worldAuth{}
	_ Customers      = worldCustomers{}
	_ CustomersAdmin = worldCustomers{}
)

// stores is every store port in one: the memStore, or the real store.
type stores interface {
	SagaStore
	LeaseStore
	IdempotencyStore
}

// crashStore is a store with the crash points around every write.
type crashStore struct {
	stores
	p *plan
}

func (c crashStore) CreateSaga(ctx context.Context, s *Saga) error {
	return c.p.write("create saga", func() error { return c.stores.CreateSaga(ctx, s) })
}

func (c crashStore) TransitionSaga(ctx context.Context, id string, v int, ch SagaChange) error {
	return c.p.write("transition to "+ch.State, func() error { return c.stores.TransitionSaga(ctx, id, v, ch) })
}

func (c crashStore) SweepSagas(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := c.p.write("sweep sagas", func() (err error) { n, err = c.stores.SweepSagas(ctx, before); return err })
	return n, err
}

func (c crashStore) AcquireLease(ctx context.Context, id, owner string, now, exp time.Time) (bool, error) {
	var ok bool
	err := c.p.write("acquire lease", func() (err error) { ok, err = c.stores.AcquireLease(ctx, id, owner, now, exp); return err })
	return ok, err
}

func (c crashStore) ReleaseLease(ctx context.Context, id, owner string) error {
	return c.p.write("release lease", func() error { return c.stores.ReleaseLease(ctx, id, owner) })
}

func (c crashStore) SweepLeases(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := c.p.write("sweep leases", func() (err error) { n, err = c.stores.SweepLeases(ctx, before); return err })
	return n, err
}

func (c crashStore) InsertKey(ctx context.Context, r *IdempotencyRecord) error {
	return c.p.write("insert key", func() error { return c.stores.InsertKey(ctx, r) })
}

func (c crashStore) CompleteKey(ctx context.Context, keyID, owner string, status int, answer []byte, now time.Time) error {
	return c.p.write("complete key", func() error { return c.stores.CompleteKey(ctx, keyID, owner, status, answer, now) })
}

func (c crashStore) DeleteKey(ctx context.Context, keyID, owner string, now time.Time) error {
	return c.p.write("delete key", func() error { return c.stores.DeleteKey(ctx, keyID, owner, now) })
}

func (c crashStore) SweepKeys(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := c.p.write("sweep keys", func() (err error) { n, err = c.stores.SweepKeys(ctx, now); return err })
	return n, err
}

// faultCase is one run: the world, the store, the clock, and a fresh
// Service after every crash.
type faultCase struct {
	p       *plan
	w       *world
	store   *memStore
	clock   *clock
	secrets *Secrets
	svc     *Service
	rc      *Reconciler
	restart int
}

const suiteInterval = time.Second

func newFaultCase(p *plan, secrets *Secrets) *faultCase {
	fc := &faultCase{p: p, store: newMemStore(), clock: &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}, secrets: secrets}
	fc.w = newWorld(p, fc.clock.now)
	fc.boot()
	return fc
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// boot starts a fresh Service on the same store, as after a restart.
func (fc *faultCase) boot() {
	st := crashStore{stores: fc.store, p: fc.p}
	svc, err := NewService(Options{
		Auth: worldAuth{w: fc.w}, AuthAdmin: worldAuth{w: fc.w}, Customers: worldCustomers{w: fc.w}, CustomersAdmin: worldCustomers{w: fc.w},
		Sagas: st, Leases: st, Keys: st, Secrets: fc.secrets, Logger: discard, Now: fc.clock.now,
		AuthTimeout: time.Second, CustomerTimeout: time.Second, RetryBase: suiteInterval,
	})
	if err != nil {
		panic(err)
	}
	svc.profileRetryDelay = 0
	fc.svc, fc.rc = svc, svc.NewReconciler(suiteInterval, 0)
	fc.restart++
}

// guard runs fn; a crash restarts the Service and reports true.
func (fc *faultCase) guard(fn func()) (died bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crashed); !ok {
				panic(r)
			}
			died = true
			fc.boot()
		}
	}()
	fn()
	return false
}

// settle runs the reconciler (one pass per interval) until no saga is
// open, and returns how long it took; false if it never settled.
func (fc *faultCase) settle() (time.Duration, bool) {
	start := fc.clock.now()
	for range 2000 {
		fc.store.mu.Lock()
		open := 0
		for _, s := range fc.store.sagas {
			if !Terminal(s.State) {
				open++
			}
		}
		fc.store.mu.Unlock()
		if open == 0 {
			return fc.clock.now().Sub(start), true
		}
		fc.clock.advance(suiteInterval)
		fc.guard(func() { _, _ = fc.rc.Pass(context.Background()) })
	}
	return fc.clock.now().Sub(start), false
}

// states lists the sagas' states.
func (fc *faultCase) states() []string {
	fc.store.mu.Lock()
	defer fc.store.mu.Unlock()
	var out []string
	for _, s := range fc.store.sagas {
		out = append(out, s.Kind+":"+s.State)
	}
	sort.Strings(out)
	return out
}

// worldChecked is the world's invariants, where a parked saga may keep the user it
// could not prove its own (never a ghost profile).
func (fc *faultCase) worldChecked(parked bool) []string {
	var out []string
	for _, b := range fc.w.invariants() {
		if parked && strings.HasPrefix(b, "orphan user") {
			continue
		}
		out = append(out, b)
	}
	return out
}

// invariants are the invariants over the services' state: no orphan user
// (a user without a profile), no ghost profile (a profile without its
// user), at most one of each per email (the model keys them so).
func (w *world) invariants() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var bad []string
	for id := range w.users {
		if _, ok := w.profiles[id]; !ok {
			bad = append(bad, "orphan user "+id)
		}
	}
	for uid := range w.profiles {
		if _, ok := w.users[uid]; !ok {
			bad = append(bad, "ghost profile of "+uid)
		}
	}
	if len(w.byEmail) != len(w.users) {
		bad = append(bad, "users and emails disagree")
	}
	return bad
}

func (fc *faultCase) userOf(email string) string {
	fc.w.mu.Lock()
	defer fc.w.mu.Unlock()
	return fc.w.byEmail[email]
}

func (fc *faultCase) wasDeleted(id string) bool {
	fc.w.mu.Lock()
	defer fc.w.mu.Unlock()
	return slices.Contains(fc.w.deleted, id)
}

func (fc *faultCase) needsAttention() int {
	fc.store.mu.Lock()
	defer fc.store.mu.Unlock()
	n := 0
	for _, s := range fc.store.sagas {
		if s.State == StateNeedsAttention {
			n++
		}
	}
	return n
}

func userIDOf(body []byte) string {
	var v struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	_ = json.Unmarshal(body, &v)
	return v.User.ID
}

// registerCase runs one registration case and returns what is wrong.
// noKeys: the auth service does not store the registration key (the
// company's Django service): a saga that cannot prove authorship is parked
// (needs_attention) with whatever user it may have created, and nothing
// else may go wrong.
func registerCase(p *plan, secrets *Secrets, reg Registration, fp Fingerprint, noKeys bool) []string {
	fc := newFaultCase(p, secrets)
	fc.w.noKeys = noKeys
	email := strings.ToLower(reg.Auth.Email)
	const key = "client-key"
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }

	// The request.
	var first answer
	died := fc.guard(func() { first = keyed(fc.svc, key, fp, reg) })
	if first.status == 201 {
		if uid := userIDOf(first.body); uid == "" || fc.userOf(email) != uid {
			fail("answered 201 for user %q, which the auth service does not hold", uid)
		}
	}
	// Recovery.
	took, ok := fc.settle()
	if !ok {
		fail("never settled: %v", fc.states())
	}
	if died && p.calls <= p.faultAt && took > fc.svc.MaxUnresolved(suiteInterval)+suiteInterval {
		fail("settled %v after the crash, more than MaxUnresolved %v", took, fc.svc.MaxUnresolved(suiteInterval))
	}
	parked := fc.needsAttention()
	bad = append(bad, fc.worldChecked(parked > 0)...)
	if parked > 0 && !noKeys {
		fail("%d sagas need attention although the auth service proves authorship", parked)
	}
	// The client retries with its key until it gets an answer that is
	// not "later" (a 409, a 5xx, no answer because the replica died): the
	// answer agrees with the state.
	ask := func() answer {
		var a answer
		for range 5 {
			died := fc.guard(func() { a = keyed(fc.svc, key, fp, reg) })
			if !died && a.status != 409 && a.status < 500 {
				return a
			}
			if !died && fc.needsAttention() > 0 && codeOf(a.err) == CodeRegistrationPending {
				return a // parked: the operator settles it
			}
			// Come back when told to (Retry-After), as a client does.
			wait := suiteInterval
			if be, ok := errors.AsType[*Error](a.err); ok && be.RetryAfter > 0 {
				wait = be.RetryAfter
			}
			fc.clock.advance(wait)
			fc.settle()
		}
		fail("no final answer after 5 retries: %d %s %v", a.status, a.body, a.err)
		return a
	}
	retry := ask()
	if _, ok := fc.settle(); !ok {
		fail("never settled after the retry: %v", fc.states())
	}
	uid := fc.userOf(email)
	switch {
	case retry.status == 201:
		if got := userIDOf(retry.body); got == "" || got != uid {
			fail("retry answered 201 for %q, the user is %q", got, uid)
		}
	case uid != "" && retry.status != 409 && retry.status < 500:
		fail("retry answered %d %s, but the email is registered (%s)", retry.status, retry.body, uid)
	}
	if first.status == 201 && (retry.status != 201 || userIDOf(retry.body) != userIDOf(first.body)) {
		fail("answered 201 first, then %d %s", retry.status, retry.body)
	}
	// And once more: a final answer is replayed as it was.
	again := ask()
	if retry.status == 201 && (again.status != 201 || string(again.body) != string(retry.body) || !again.replayed) {
		fail("the 201 is not replayed: %d %s", again.status, again.body)
	}
	if _, ok := fc.settle(); !ok {
		fail("never settled after the last retry: %v", fc.states())
	}
	bad = append(bad, fc.worldChecked(fc.needsAttention() > 0)...)
	// Nothing answered 201 is ever undone.
	for _, a := range []answer{first, retry, again} {
		if a.status == 201 && fc.wasDeleted(userIDOf(a.body)) {
			fail("user %s was answered 201 and later deleted", userIDOf(a.body))
		}
	}
	return bad
}

// deleteCase runs one account deletion case: a registered user deletes
// their account.
func deleteCase(p *plan, secrets *Secrets) []string {
	fc := newFaultCase(p, secrets)
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	// The registered account (not part of the plan's counts).
	w := fc.w
	w.mu.Lock()
	u := &worldUser{ID: w.id("user-"), Email: "ada@example.com", Joined: fc.clock.now()}
	w.users[u.ID], w.byEmail[u.Email] = u, u.ID
	w.profiles[u.ID] = w.id("customer-")
	token := w.issue(u.ID)
	w.mu.Unlock()

	var (
		d   Deletion
		err error
	)
	died := fc.guard(func() { d, err = fc.svc.DeleteAccount(context.Background(), u.ID, token) })
	if !died && err == nil && d.Done {
		w.mu.Lock()
		_, user := w.users[u.ID]
		_, prof := w.profiles[u.ID]
		w.mu.Unlock()
		if user || prof {
			fail("answered 204 with the user (%v) or the profile (%v) left", user, prof)
		}
	}
	if _, ok := fc.settle(); !ok {
		fail("never settled: %v", fc.states())
	}
	bad = append(bad, fc.w.invariants()...)
	if n := fc.needsAttention(); n > 0 {
		fail("%d sagas need attention", n)
	}
	if !died && (err == nil || fc.sagaWritten()) && fc.userOf(u.Email) != "" {
		fail("the deletion was accepted (%+v, %v) but the account is still there", d, err)
	}
	return bad
}

func (fc *faultCase) sagaWritten() bool {
	fc.store.mu.Lock()
	defer fc.store.mu.Unlock()
	return len(fc.store.sagas) > 0
}

// enumerate runs every case of one operation: first the fault plans alone
// until the numbers of calls and writes are known (a fault can add
// calls), then every fault plan times every crash point up to the longest
// run seen.
func enumerate(t *testing.T, name string, run func(p *plan) []string) {
	t.Helper()
	start := time.Now()
	type cs struct {
		faultAt   int
		fault     faultKind
		writeAt   int
		writeLost bool
		crashAt   int
	}
	newPlan := func(c cs) *plan {
		return &plan{faultAt: c.faultAt, fault: c.fault, writeAt: c.writeAt, writeLost: c.writeLost, crashAt: c.crashAt}
	}
	// Discover the calls, writes and crash points of the fault-only runs,
	// to a fixed point.
	calls, writes, points := 0, 0, 0
	pointsOf := map[cs]int{} // the crash points of each fault-only run
	probe := func(c cs) {
		p := newPlan(c)
		_ = run(p)
		calls, writes, points = max(calls, p.calls), max(writes, p.writes), max(points, p.points)
		pointsOf[c] = p.points
	}
	faults := func() []cs {
		out := []cs{{faultAt: -1, writeAt: -1}}
		for i := range calls {
			for k := range numFaultKinds {
				out = append(out, cs{faultAt: i, fault: k, writeAt: -1})
			}
		}
		for i := range writes {
			out = append(out, cs{faultAt: -1, writeAt: i}, cs{faultAt: -1, writeAt: i, writeLost: true})
		}
		return out
	}
	probed := map[cs]bool{}
	for {
		before := len(probed)
		for _, c := range faults() {
			c.crashAt = -1
			if !probed[c] {
				probed[c] = true
				probe(c)
			}
		}
		if len(probed) == before {
			break
		}
	}
	var cases []cs
	for _, f := range faults() {
		for c := -1; c < points; c++ {
			f.crashAt = c
			cases = append(cases, f)
		}
	}
	var (
		mu       sync.Mutex
		failures []string
		ran      int
		wg       sync.WaitGroup
		next     = make(chan cs)
		crashes  int
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for c := range next {
				p := newPlan(c)
				bad := run(p)
				// A crash point its fault's run reaches must crash it: the
				// count of cases is only worth what the cases exercise.
				f := c
				f.crashAt = -1
				if c.crashAt >= 0 && c.crashAt < pointsOf[f] && p.crashedAt == "" {
					bad = append(bad, fmt.Sprintf("crash point %d of %d not reached", c.crashAt, pointsOf[f]))
				}
				mu.Lock()
				ran++
				if p.crashedAt != "" {
					crashes++
				}
				if len(bad) > 0 && len(failures) < 30 {
					fault := "no fault"
					switch {
					case c.faultAt >= 0:
						fault = fmt.Sprintf("%s at call %d", c.fault, c.faultAt)
					case c.writeAt >= 0 && c.writeLost:
						fault = fmt.Sprintf("store write %d applied, answer lost", c.writeAt)
					case c.writeAt >= 0:
						fault = fmt.Sprintf("store write %d failed", c.writeAt)
					}
					crash := "no crash"
					if p.crashedAt != "" {
						crash = fmt.Sprintf("crash %s (point %d)", p.crashedAt, c.crashAt)
					}
					failures = append(failures, fmt.Sprintf("%s, %s: %s", fault, crash, strings.Join(bad, "; ")))
				}
				mu.Unlock()
			}
		})
	}
	for _, c := range cases {
		next <- c
	}
	close(next)
	wg.Wait()
	want := (1 + int(numFaultKinds)*calls + 2*writes) * (1 + points)
	t.Logf("%s: %d cases = (1 + %d upstream fault kinds × %d calls + 2 store fault kinds × %d writes) × (1 + %d crash points); %d crashed; %v",
		name, ran, numFaultKinds, calls, writes, points, crashes, time.Since(start).Round(time.Millisecond))
	if ran != want {
		t.Errorf("%s: ran %d cases, want the product %d", name, ran, want)
	}
	for _, f := range failures {
		t.Error(f)
	}
}

func suiteSecrets(t *testing.T) *Secrets {
	s, err := NewSecrets([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFaultSuiteRegister(t *testing.T) {
	t.Parallel()
	secrets := suiteSecrets(t)
	fp := regFingerprint(t, validRegistration)
	enumerate(t, "register", func(p *plan) []string { return registerCase(p, secrets, validRegistration, fp, false) })
}

// Against an auth service that does not store the registration key (the
// company's Django one): the same cases; a saga in doubt is parked, and
// nothing is deleted that the saga cannot prove its own.
func TestFaultSuiteRegisterWithoutRegistrationKeys(t *testing.T) {
	t.Parallel()
	secrets := suiteSecrets(t)
	fp := regFingerprint(t, validRegistration)
	enumerate(t, "register, auth without keys", func(p *plan) []string {
		return registerCase(p, secrets, validRegistration, fp, true)
	})
}

func TestFaultSuiteDeleteAccount(t *testing.T) {
	t.Parallel()
	secrets := suiteSecrets(t)
	enumerate(t, "delete account", func(p *plan) []string { return deleteCase(p, secrets) })
}
