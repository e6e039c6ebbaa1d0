package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/customer/customertest"
	customermongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/contract"
)

// directory is a user directory that knows a set of users and can be
// taken down.
type directory struct {
	mu    sync.Mutex
	users map[string]bool
	down  bool
}

func (d *directory) answer(id string) (customer.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.down:
		return customer.User{}, errors.New("auth service unreachable")
	case !d.users[id]:
		return customer.User{}, fmt.Errorf("auth: %w", customer.ErrUserNotFound)
	}
	return customer.User{ID: id, Email: "known@example.com", FirstName: "Kno", LastName: "Wn", PhoneNumber: "+1 555 0123"}, nil
}

func (d *directory) set(id string, exists bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[id] = exists
}

// TestNoProfileForADeletedUser: the token of a deleted user (still valid
// for minutes) creates no profile: the owner is answered 401 user_not_found
// as the auth service answers that token, staff a 400 naming user_id; with
// the auth service unreachable the answer is 503 and nothing is stored
// either. A user the auth service knows gets their profile.
func TestNoProfileForADeletedUser(t *testing.T) {
	t.Parallel()
	dir := &directory{users: map[string]bool{}}
	tokenUser := map[string]string{} // token -> user id, for Me
	var tmu sync.Mutex
	h := newHarnessWith(t, &customertest.Users{
		MeFn: func(_ context.Context, token string) (customer.User, error) {
			tmu.Lock()
			id := tokenUser[token]
			tmu.Unlock()
			return dir.answer(id)
		},
		UserFn: func(_ context.Context, _, id string) (customer.User, error) { return dir.answer(id) },
	})
	person := func(role string, exists bool) person {
		p := newPerson(t, role)
		tmu.Lock()
		tokenUser[p.Token] = p.ID
		tmu.Unlock()
		dir.set(p.ID, exists)
		return p
	}
	employee := person(contract.RoleEmployee, true)
	deleted := person(contract.RoleCustomer, false)
	profiles := func() int64 { return h.count(customermongo.CustomersCollection, nil) }

	r := h.do(http.MethodPost, apiPath("profile/create/"), deleted.Token, validProfile())
	h.expect(r, http.StatusUnauthorized, "own create, user deleted")
	if b := r.json(t); b["code"] != "user_not_found" || b["detail"] != "User not found" || r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("own create, user deleted: %s %v", r.Body, r.Header)
	}

	staffBody := withFields(validProfile(), "user_id", strings.ToUpper(deleted.ID))
	r = h.do(http.MethodPost, apiPath(""), employee.Token, staffBody)
	h.expect(r, http.StatusBadRequest, "staff create, user deleted")
	want := fmt.Sprintf(`{"user_id":["Invalid pk \"%s\" - object does not exist."]}`, strings.ToUpper(deleted.ID))
	if string(r.Body) != want {
		t.Fatalf("staff create, user deleted: %s, want %s", r.Body, want)
	}

	// The auth service down: no answer either way, so no profile.
	alive := person(contract.RoleCustomer, true)
	dir.mu.Lock()
	dir.down = true
	dir.mu.Unlock()
	for _, c := range []struct {
		what, path, token string
		body              map[string]any
	}{
		{"own create, auth down", "profile/create/", alive.Token, validProfile()},
		{"staff create, auth down", "", employee.Token, withFields(validProfile(), "user_id", alive.ID)},
	} {
		r = h.do(http.MethodPost, apiPath("%s", c.path), c.token, c.body)
		h.expect(r, http.StatusServiceUnavailable, c.what)
		if b := r.json(t); b["code"] != "upstream_unavailable" || strings.Contains(string(r.Body), "unreachable") {
			t.Fatalf("%s: %s", c.what, r.Body)
		}
	}
	if n, pub := profiles(), h.pub.Changes(); n != 0 || len(pub) != 0 {
		t.Fatalf("%d profiles stored, %d changes published", n, len(pub))
	}

	// Back up: the living user gets their profile, the deleted one still none.
	dir.mu.Lock()
	dir.down = false
	dir.mu.Unlock()
	h.createProfile(alive, nil)
	h.expect(h.do(http.MethodPost, apiPath("profile/create/"), deleted.Token, validProfile()), http.StatusUnauthorized, "own create, user deleted, again")
	if n := profiles(); n != 1 {
		t.Fatalf("%d profiles, want the living user's only", n)
	}
	r = h.do(http.MethodPost, apiPath("check_profile_exists/"), employee.Token, map[string]any{"user_id": deleted.ID})
	if b := r.json(t); b["exists"] != false {
		t.Fatalf("the deleted user has a profile: %s", r.Body)
	}
}
