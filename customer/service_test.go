package customer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/customer/customertest"
	"github.com/acme/customer-platform/internal/contract"
)

// memStore is an in-memory Store for the fast tier.
type memStore struct {
	mu       sync.Mutex
	byID     map[string]customer.Customer
	services map[string][]customer.ServiceRecord // by customer id
	keys     map[string]customer.ServiceRecord   // customer id + key
	lastList customer.Filter
}

var _ customer.Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{byID: map[string]customer.Customer{}, services: map[string][]customer.ServiceRecord{}, keys: map[string]customer.ServiceRecord{}}
}

func (m *memStore) withFigures(c customer.Customer) customer.Customer {
	c = c.Clone()
	recs := m.services[c.ID]
	c.TotalServices = len(recs)
	for _, r := range recs {
		if c.LastServiceDate == nil || r.PerformedAt.After(*c.LastServiceDate) {
			t := r.PerformedAt
			c.LastServiceDate = &t
		}
	}
	return c
}

func (m *memStore) Create(_ context.Context, c customer.Customer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.byID {
		if o.UserID == c.UserID {
			return customer.ErrProfileExists
		}
	}
	m.byID[c.ID] = c.Clone()
	return nil
}

func (m *memStore) ByID(_ context.Context, id string) (customer.Customer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.byID[id]
	if !ok {
		return customer.Customer{}, customer.ErrNotFound
	}
	return m.withFigures(c), nil
}

func (m *memStore) ByUserID(_ context.Context, userID string) (customer.Customer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.byID {
		if c.UserID == userID {
			return m.withFigures(c), nil
		}
	}
	return customer.Customer{}, customer.ErrNotFound
}

func (m *memStore) Update(ctx context.Context, cur customer.Customer, ch customer.Changes, now time.Time) (customer.Customer, error) {
	id := cur.ID
	m.mu.Lock()
	c, ok := m.byID[id]
	if !ok {
		m.mu.Unlock()
		return customer.Customer{}, customer.ErrNotFound
	}
	customer.ApplyChanges(ch, &c)
	c.UpdatedAt = now
	m.byID[id] = c
	m.mu.Unlock()
	return m.ByID(ctx, id)
}

func (m *memStore) Delete(_ context.Context, c customer.Customer) error {
	id := c.ID
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[id]; !ok {
		return customer.ErrNotFound
	}
	delete(m.byID, id)
	delete(m.services, id)
	return nil
}

func (m *memStore) match(f customer.Filter) []customer.Customer {
	var out []customer.Customer
	for _, c := range m.byID {
		if f.UserID != "" && c.UserID != f.UserID || f.City != "" && c.City != f.City {
			continue
		}
		out = append(out, m.withFigures(c))
	}
	slices.SortFunc(out, func(a, b customer.Customer) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out
}

func (m *memStore) Count(_ context.Context, f customer.Filter) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastList = f
	return len(m.match(f)), nil
}

func (m *memStore) List(_ context.Context, f customer.Filter, offset, limit int) ([]customer.Customer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := m.match(f)
	return all[min(offset, len(all)):min(offset+limit, len(all))], nil
}

func (m *memStore) AddService(_ context.Context, _ customer.Customer, r customer.ServiceRecord, key string) (customer.ServiceRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.keys[r.CustomerID+"\x00"+key]; ok {
		return old, false, nil
	}
	m.keys[r.CustomerID+"\x00"+key] = r
	m.services[r.CustomerID] = append(m.services[r.CustomerID], r)
	return r, true, nil
}

func (m *memStore) CountServices(_ context.Context, id string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.services[id]), nil
}

func (m *memStore) Services(_ context.Context, id string, offset, limit int) ([]customer.ServiceRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	all := m.services[id]
	return all[min(offset, len(all)):min(offset+limit, len(all))], nil
}

func (m *memStore) Stats(context.Context, time.Time) (customer.Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return customer.Stats{TotalCustomers: len(m.byID)}, nil
}

// actorOf is a caller of role; a service holds every scope.
func actorOf(role string) customer.Actor {
	a := customer.Actor{UserID: contract.NewID(), Role: role, Email: role + "@example.com", FirstName: "F", LastName: "L", Token: "tok-" + role}
	if role == contract.RoleService {
		a.Scopes = customer.ServiceScopes()
	}
	return a
}

func newTestService(store customer.Store, users customer.Users, pub customer.Publisher) *customer.Service {
	clock := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	return customer.NewService(store, users, pub, customer.Options{Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}})
}

func validChanges() customer.Changes {
	return customer.Changes{StreetAddress: ptr("1 Main St"), City: ptr("X"), PostalCode: ptr("12345")}
}

func TestServiceRules(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pub := newMemStore(), &customertest.Publisher{}
	s := newTestService(store, customertest.KnownUsers(), pub)
	owner, other := actorOf(contract.RoleCustomer), actorOf(contract.RoleCustomer)
	employee, admin, service := actorOf(contract.RoleEmployee), actorOf(contract.RoleAdmin), actorOf(contract.RoleService)

	cw, err := s.CreateOwn(ctx, owner, validChanges())
	if err != nil {
		t.Fatal(err)
	}
	id := cw.ID
	if _, err := s.CreateOwn(ctx, owner, validChanges()); !errors.Is(err, customer.ErrProfileExists) {
		t.Fatalf("second create: %v", err)
	}
	for _, a := range []customer.Actor{employee, admin, service} {
		if _, err := s.CreateOwn(ctx, a, validChanges()); !errors.Is(err, customer.ErrForbidden) {
			t.Errorf("%s CreateOwn: %v", a.Role, err)
		}
	}
	for _, a := range []customer.Actor{owner, other, service} {
		if _, err := s.CreateFor(ctx, a, contract.NewID(), validChanges()); !errors.Is(err, customer.ErrForbidden) {
			t.Errorf("%s CreateFor: %v", a.Role, err)
		}
	}
	if _, err := s.Get(ctx, other, id, customer.ReadOptions{}); !errors.Is(err, customer.ErrNotFound) {
		t.Errorf("other Get: %v", err)
	}
	if _, err := s.Get(ctx, owner, "not-a-uuid", customer.ReadOptions{}); !errors.Is(err, customer.ErrNotFound) {
		t.Errorf("bad id: %v", err)
	}
	for _, a := range []customer.Actor{owner, employee, admin, service} {
		if _, err := s.Get(ctx, a, id, customer.ReadOptions{}); err != nil {
			t.Errorf("%s Get: %v", a.Role, err)
		}
	}
	if err := s.Delete(ctx, employee, id); !errors.Is(err, customer.ErrForbidden) {
		t.Errorf("employee Delete: %v", err)
	}
	if err := s.Delete(ctx, other, id); !errors.Is(err, customer.ErrNotFound) {
		t.Errorf("other Delete: %v", err)
	}
	for _, a := range []customer.Actor{owner, other, service} {
		if _, err := s.Verify(ctx, a, id); !errors.Is(err, customer.ErrForbidden) {
			t.Errorf("%s Verify: %v", a.Role, err)
		}
	}
	if _, err := s.IncrementService(ctx, owner, id, customer.ServiceInput{}, ""); !errors.Is(err, customer.ErrForbidden) {
		t.Errorf("owner IncrementService: %v", err)
	}
	if _, _, err := s.CheckExists(ctx, other, owner.UserID); !errors.Is(err, customer.ErrForbidden) {
		t.Errorf("customer checks someone else: %v", err)
	}
	if ok, cid, err := s.CheckExists(ctx, service, owner.UserID); err != nil || !ok || cid != id {
		t.Errorf("service check: %v %v %s", ok, cid, err)
	}
	if ok, _, err := s.CheckExists(ctx, other, ""); err != nil || ok {
		t.Errorf("own check without profile: %v %v", ok, err)
	}
	if _, err := s.Update(ctx, owner, id, customer.Changes{IsVerified: ptr(true)}, false); err == nil {
		t.Error("owner set is_verified")
	}
	if _, err := s.Update(ctx, service, id, customer.Changes{IsVerified: ptr(true)}, false); err == nil {
		t.Error("service set is_verified")
	}
	if _, err := s.List(ctx, other, customer.Filter{City: "X"}, customer.PageRequest{Number: 1}); err != nil || store.lastList.UserID != other.UserID {
		t.Errorf("a customer's listing is not restricted: %+v %v", store.lastList, err)
	}
	if _, err := s.List(ctx, employee, customer.Filter{}, customer.PageRequest{Number: 1}); err != nil || store.lastList.UserID != "" {
		t.Errorf("staff listing restricted: %+v", store.lastList)
	}
	if st, err := s.Stats(ctx, other); !errors.Is(err, customer.ErrNotFound) {
		t.Errorf("self stats without profile: %+v %v", st, err)
	}
	if st, err := s.Stats(ctx, service); err != nil || st.All == nil {
		t.Errorf("service stats: %+v %v", st, err)
	}

	// Writes publish; a retry under the same key neither counts nor publishes.
	if _, err := s.UpdateOwn(ctx, owner, customer.Changes{City: ptr("Y")}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateOwn(ctx, owner, customer.Changes{}, false); err != nil {
		t.Fatal(err)
	}
	in := customer.ServiceInput{ServiceType: "repair"}
	first, err := s.IncrementService(ctx, employee, id, in, "k1")
	if err != nil {
		t.Fatal(err)
	}
	retry, err := s.IncrementService(ctx, admin, id, in, "k1")
	if err != nil || retry.TotalServices != 1 || first.TotalServices != 1 {
		t.Fatalf("retry: %v %d", err, retry.TotalServices)
	}
	if _, err := s.IncrementService(ctx, admin, id, customer.ServiceInput{ServiceType: "other"}, "k1"); !errors.Is(err, customer.ErrIdempotencyMismatch) {
		t.Fatalf("reused key: %v", err)
	}
	if _, err := s.Verify(ctx, employee, id); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOwn(ctx, owner); err != nil {
		t.Fatal(err)
	}
	want := []string{customer.OpCreate, customer.OpUpdate, customer.OpService, customer.OpVerify, customer.OpDelete}
	if !slices.Equal(pub.Ops(), want) {
		t.Fatalf("published %v, want %v", pub.Ops(), want)
	}
}

func TestUserDataViews(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newMemStore()
	var down atomic.Bool
	var calls sync.Map
	var inFlight, peak atomic.Int32
	users := &customertest.Users{
		MeFn: func(_ context.Context, token string) (customer.User, error) {
			if down.Load() {
				return customer.User{}, errors.New("down")
			}
			return customer.User{PhoneNumber: "phone-of-" + token, Email: "stale"}, nil
		},
		UserFn: func(_ context.Context, token, id string) (customer.User, error) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			v, _ := calls.LoadOrStore(id, new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
			if down.Load() {
				return customer.User{}, errors.New("down")
			}
			return customer.User{ID: id, Email: "e-" + id, FirstName: "F", LastName: "L", PhoneNumber: "p"}, nil
		},
	}
	s := customer.NewService(store, users, nil, customer.Options{UserLookups: 4, Logger: slog.New(slog.DiscardHandler)})
	owner, employee := actorOf(contract.RoleCustomer), actorOf(contract.RoleEmployee)
	cw, err := s.CreateOwn(ctx, owner, validChanges())
	if err != nil {
		t.Fatal(err)
	}
	if *cw.User.Email != owner.Email || *cw.User.FirstName != "F" || *cw.User.PhoneNumber != "phone-of-"+owner.Token {
		t.Fatalf("owner view: %+v", cw.User)
	}
	for range 20 {
		if _, err := s.CreateFor(ctx, employee, contract.NewID(), validChanges()); err != nil {
			t.Fatal(err)
		}
	}
	calls.Clear()
	peak.Store(0)
	p, err := s.List(ctx, employee, customer.Filter{}, customer.PageRequest{Number: 1, Size: 100})
	if err != nil || len(p.Items) != 21 {
		t.Fatalf("list: %v %d", err, len(p.Items))
	}
	n := 0
	calls.Range(func(_, v any) bool {
		n++
		if v.(*atomic.Int32).Load() != 1 {
			t.Errorf("a user was fetched %d times", v.(*atomic.Int32).Load())
		}
		return true
	})
	if n != 21 || peak.Load() > 4 {
		t.Fatalf("%d users fetched, peak %d concurrent", n, peak.Load())
	}
	for _, item := range p.Items {
		if item.User.Email == nil || *item.User.Email != "e-"+item.UserID {
			t.Fatalf("staff view: %+v", item.User)
		}
	}
	down.Store(true)
	cw, err = s.Own(ctx, owner, customer.ReadOptions{})
	if err != nil || cw.User.PhoneNumber != nil || *cw.User.Email != owner.Email {
		t.Fatalf("owner view, directory down: %+v %v", cw.User, err)
	}
	got, err := s.Get(ctx, employee, cw.ID, customer.ReadOptions{})
	if err != nil || got.User != (customer.UserData{}) {
		t.Fatalf("staff view, directory down: %+v %v", got.User, err)
	}
}

// TestUserTimeoutBoundsTheWholePage: a directory that never answers leaves
// every user field null instead of holding the answer one timeout per batch.
func TestUserTimeoutBoundsTheWholePage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var withDeadline, calls atomic.Int32
	hang := func(ctx context.Context) error {
		calls.Add(1)
		if _, ok := ctx.Deadline(); ok {
			withDeadline.Add(1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(30 * time.Second):
			return errors.New("not cancelled")
		}
	}
	users := &customertest.Users{
		MeFn:   func(ctx context.Context, _ string) (customer.User, error) { return customer.User{}, hang(ctx) },
		UserFn: func(ctx context.Context, _, _ string) (customer.User, error) { return customer.User{}, hang(ctx) },
	}
	store := newMemStore()
	employee := actorOf(contract.RoleEmployee)
	seed := customer.NewService(store, customertest.KnownUsers(), nil, customer.Options{})
	for range 10 {
		if _, err := seed.CreateFor(ctx, employee, contract.NewID(), validChanges()); err != nil {
			t.Fatal(err)
		}
	}
	s := customer.NewService(store, users, nil, customer.Options{UserLookups: 2, UserTimeout: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	p, err := s.List(ctx, employee, customer.Filter{}, customer.PageRequest{Number: 1})
	if err != nil || len(p.Items) != 10 {
		t.Fatalf("list: %v", err)
	}
	for _, it := range p.Items {
		if it.User != (customer.UserData{}) {
			t.Fatalf("user data without a directory answer: %+v", it.User)
		}
	}
	if withDeadline.Load() != calls.Load() {
		t.Fatalf("%d of %d fetches had a deadline", withDeadline.Load(), calls.Load())
	}
}

// TestCreateOnlyForExistingUsers: a profile is created only for a user the
// auth service confirms. A user it says is gone gets no profile (the owner
// ErrUserNotFound, staff a user_id field error); a directory that cannot
// answer gets none either (ErrUserUnconfirmed), and nothing is published.
// The one directory call also gives the answer its user data.
func TestCreateOnlyForExistingUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gone := func(context.Context) (customer.User, error) {
		return customer.User{}, fmt.Errorf("auth says: %w", customer.ErrUserNotFound)
	}
	down := func(context.Context) (customer.User, error) { return customer.User{}, errors.New("connection refused") }
	hang := func(ctx context.Context) (customer.User, error) {
		<-ctx.Done()
		return customer.User{}, ctx.Err()
	}
	cases := []struct {
		name   string
		role   string
		self   bool                                         // staff creating their own profile
		answer func(context.Context) (customer.User, error) // the directory's answer
		nilDir bool                                         // no directory at all
		want   func(error) bool
	}{
		{name: "owner, user deleted", role: contract.RoleCustomer, answer: gone, want: is(customer.ErrUserNotFound)},
		{name: "owner, auth down", role: contract.RoleCustomer, answer: down, want: is(customer.ErrUserUnconfirmed)},
		{name: "owner, auth hangs", role: contract.RoleCustomer, answer: hang, want: is(customer.ErrUserUnconfirmed)},
		{name: "owner, no directory", role: contract.RoleCustomer, nilDir: true, want: is(customer.ErrUserUnconfirmed)},
		{name: "staff, user deleted", role: contract.RoleEmployee, answer: gone, want: fieldError(customer.FieldUserID)},
		{name: "staff, auth down", role: contract.RoleAdmin, answer: down, want: is(customer.ErrUserUnconfirmed)},
		{name: "staff, own profile, user deleted", role: contract.RoleEmployee, self: true, answer: gone, want: is(customer.ErrUserNotFound)},
		{name: "staff, no directory", role: contract.RoleAdmin, nilDir: true, want: is(customer.ErrUserUnconfirmed)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store, pub := newMemStore(), &customertest.Publisher{}
			var users customer.Users
			if !tc.nilDir {
				users = &customertest.Users{
					MeFn:   func(ctx context.Context, _ string) (customer.User, error) { return tc.answer(ctx) },
					UserFn: func(ctx context.Context, _, _ string) (customer.User, error) { return tc.answer(ctx) },
				}
			}
			s := customer.NewService(store, users, pub, customer.Options{UserTimeout: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			a := actorOf(tc.role)
			var err error
			if a.IsStaff() {
				target := contract.NewID()
				if tc.self {
					target = a.UserID
				}
				_, err = s.CreateFor(ctx, a, target, validChanges())
			} else {
				_, err = s.CreateOwn(ctx, a, validChanges())
			}
			if !tc.want(err) {
				t.Fatalf("err = %v", err)
			}
			if n := len(store.byID); n != 0 || len(pub.Ops()) != 0 {
				t.Fatalf("%d profiles stored, published %v", n, pub.Ops())
			}
		})
	}
}

// TestCreateAsksTheDirectoryOnce: a create asks the auth service once, with
// the caller's token, about the profile's user, before anything is stored;
// the answer's user data comes from that one call. Invalid input asks
// nothing.
func TestCreateAsksTheDirectoryOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newMemStore()
	type ask struct{ method, token, id string }
	var mu sync.Mutex
	var asked []ask
	stored := func() int {
		store.mu.Lock()
		defer store.mu.Unlock()
		return len(store.byID)
	}
	users := &customertest.Users{
		MeFn: func(_ context.Context, token string) (customer.User, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, ask{"me", token, ""})
			if stored() != 0 {
				t.Error("the directory was asked after the insert")
			}
			return customer.User{PhoneNumber: "me-phone"}, nil
		},
		UserFn: func(_ context.Context, token, id string) (customer.User, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, ask{"user", token, id})
			if stored() != 1 {
				t.Error("the directory was asked after the insert")
			}
			return customer.User{ID: id, Email: "u@example.com", FirstName: "U", LastName: "Ser", PhoneNumber: "user-phone"}, nil
		},
	}
	s := customer.NewService(store, users, nil, customer.Options{Logger: slog.New(slog.DiscardHandler)})
	owner, employee := actorOf(contract.RoleCustomer), actorOf(contract.RoleEmployee)

	if _, err := s.CreateOwn(ctx, owner, customer.Changes{City: ptr("X")}); !fieldError(customer.FieldStreetAddress)(err) {
		t.Fatalf("invalid create: %v", err)
	}
	if _, err := s.CreateFor(ctx, employee, "not-a-uuid", validChanges()); !fieldError(customer.FieldUserID)(err) {
		t.Fatalf("invalid user_id: %v", err)
	}
	if len(asked) != 0 {
		t.Fatalf("invalid input asked the directory: %v", asked)
	}

	cw, err := s.CreateOwn(ctx, owner, validChanges())
	if err != nil || *cw.User.PhoneNumber != "me-phone" || *cw.User.Email != owner.Email {
		t.Fatalf("own create: %+v %v", cw.User, err)
	}
	target := strings.ToUpper(contract.NewID())
	cw, err = s.CreateFor(ctx, employee, target, validChanges())
	if err != nil || *cw.User.Email != "u@example.com" || *cw.User.PhoneNumber != "user-phone" {
		t.Fatalf("staff create: %+v %v", cw.User, err)
	}
	want := []ask{{"me", owner.Token, ""}, {"user", employee.Token, strings.ToLower(target)}}
	if !slices.Equal(asked, want) {
		t.Fatalf("asked %v, want %v", asked, want)
	}
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func fieldError(field string) func(error) bool {
	return func(err error) bool {
		ve, ok := errors.AsType[*contract.ValidationError](err)
		return ok && len(ve.Fields[field]) > 0
	}
}

// TestServiceScopes: a service account may do only what its scopes allow,
// refused with ErrMissingScope (an ErrForbidden) before anything is read or
// written; people are judged by their role alone.
func TestServiceScopes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := newMemStore()
	s := newTestService(store, customertest.KnownUsers(), nil)
	owner := actorOf(contract.RoleCustomer)
	cw, err := s.CreateOwn(ctx, owner, validChanges())
	if err != nil {
		t.Fatal(err)
	}
	id := cw.ID
	scoped := func(scopes ...string) customer.Actor {
		a := actorOf(contract.RoleService)
		a.Scopes = scopes
		return a
	}
	ops := map[string]struct {
		needs string
		call  func(customer.Actor) error
	}{
		"Get": {customer.ScopeRead, func(a customer.Actor) error { _, err := s.Get(ctx, a, id, customer.ReadOptions{}); return err }},
		"List": {customer.ScopeRead, func(a customer.Actor) error {
			_, err := s.List(ctx, a, customer.Filter{}, customer.PageRequest{Number: 1})
			return err
		}},
		"Services": {customer.ScopeRead, func(a customer.Actor) error {
			_, err := s.Services(ctx, a, id, customer.PageRequest{Number: 1})
			return err
		}},
		"Stats":       {customer.ScopeRead, func(a customer.Actor) error { _, err := s.Stats(ctx, a); return err }},
		"CheckExists": {customer.ScopeRead, func(a customer.Actor) error { _, _, err := s.CheckExists(ctx, a, owner.UserID); return err }},
		"Update": {customer.ScopeWrite, func(a customer.Actor) error {
			_, err := s.Update(ctx, a, id, customer.Changes{City: ptr("Y")}, false)
			return err
		}},
		"IncrementService": {customer.ScopeWrite, func(a customer.Actor) error {
			_, err := s.IncrementService(ctx, a, id, customer.ServiceInput{}, "")
			return err
		}},
		"Delete": {customer.ScopeDelete, func(a customer.Actor) error { return s.Delete(ctx, a, id) }},
	}
	for _, held := range [][]string{nil, {customer.ScopeRead}, {customer.ScopeWrite}, {customer.ScopeDelete}, {"users:read"}} {
		for name, op := range ops {
			if slices.Contains(held, op.needs) {
				continue
			}
			if err := op.call(scoped(held...)); !errors.Is(err, customer.ErrMissingScope) || !errors.Is(err, customer.ErrForbidden) {
				t.Errorf("%s with scopes %v: %v, want ErrMissingScope", name, held, err)
			}
		}
	}
	if n, _ := store.CountServices(ctx, id); n != 0 {
		t.Fatalf("a refused increment recorded %d services", n)
	}
	if _, err := store.ByID(ctx, id); err != nil {
		t.Fatalf("a refused delete: %v", err)
	}
	for name, op := range ops {
		if name == "Delete" {
			continue
		}
		if err := op.call(scoped(op.needs)); err != nil {
			t.Errorf("%s with %s: %v", name, op.needs, err)
		}
	}
	if err := ops["Delete"].call(scoped(customer.ScopeDelete)); err != nil {
		t.Errorf("Delete with customers:delete: %v", err)
	}
}

// rendezvousStore's Count and List each wait until the other has started:
// a listing that made them one after the other would never finish.
type rendezvousStore struct {
	*memStore
	counting, listing chan struct{}
}

func (r *rendezvousStore) meet(mine, other chan struct{}) error {
	close(mine)
	select {
	case <-other:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("the count and the page read were not sent at once")
	}
}

func (r *rendezvousStore) Count(ctx context.Context, f customer.Filter) (int, error) {
	if err := r.meet(r.counting, r.listing); err != nil {
		return 0, err
	}
	return r.memStore.Count(ctx, f)
}

func (r *rendezvousStore) List(ctx context.Context, f customer.Filter, offset, limit int) ([]customer.Customer, error) {
	if err := r.meet(r.listing, r.counting); err != nil {
		return nil, err
	}
	return r.memStore.List(ctx, f, offset, limit)
}

// A page asked for by number is read while the profiles are counted (each
// reads every profile on the embedded server); the last page, whose number
// comes from the count, after it; a page past the last one is refused.
func TestListCountsAndReadsThePageAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	employee := actorOf(contract.RoleEmployee)
	mem := newMemStore()
	seed := customer.NewService(mem, customertest.KnownUsers(), nil, customer.Options{})
	for range 5 {
		if _, err := seed.CreateFor(ctx, employee, contract.NewID(), validChanges()); err != nil {
			t.Fatal(err)
		}
	}
	store := &rendezvousStore{memStore: mem, counting: make(chan struct{}), listing: make(chan struct{})}
	s := customer.NewService(store, customertest.KnownUsers(), nil, customer.Options{})
	p, err := s.List(ctx, employee, customer.Filter{}, customer.PageRequest{Number: 2, Size: 2})
	if err != nil || p.Total != 5 || p.Number != 2 || len(p.Items) != 2 {
		t.Fatalf("page 2: %+v %v", p, err)
	}
	s = customer.NewService(mem, customertest.KnownUsers(), nil, customer.Options{})
	p, err = s.List(ctx, employee, customer.Filter{}, customer.PageRequest{Last: true, Size: 2})
	if err != nil || p.Number != 3 || len(p.Items) != 1 {
		t.Fatalf("last page: %+v %v", p, err)
	}
	if _, err := s.List(ctx, employee, customer.Filter{}, customer.PageRequest{Number: 4, Size: 2}); !errors.Is(err, customer.ErrInvalidPage) {
		t.Fatalf("page 4 of 3: %v", err)
	}
}
