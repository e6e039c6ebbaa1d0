package bff

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRegisterCompletes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	res, err := h.svc.Register(context.Background(), validRegistration, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.User.ID != "u1" || string(res.Profile) != `{"id":"c1","user_id":"u1"}` || res.Tokens.Access != "access-token" {
		t.Fatalf("result: %+v", res)
	}
	sg := h.store.only(t)
	if sg.State != StateCompleted || sg.UserID != "u1" || sg.CustomerID != "c1" || sg.TokenSealed != nil || sg.EmailSealed != nil {
		t.Fatalf("saga: %+v", sg)
	}
	if sg.EmailHash != h.svc.secrets.EmailHash("ada@example.com") {
		t.Fatal("email hash is not of the normalised email")
	}
	if len(h.store.leases) != 0 {
		t.Fatal("lease not released")
	}
	b, _ := json.Marshal(res)
	if !strings.HasPrefix(string(b), `{"user":{"id":"u1"`) || !strings.Contains(string(b), `"tokens":{"access":"access-token","refresh":"refresh-token"}`) {
		t.Fatalf("json: %s", b)
	}
}

func TestRegisterAuthFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		err       error
		wantState string
		pending   bool
	}{
		{"refused (400)", &UpstreamError{Service: ServiceAuth, Kind: ErrUpstreamInvalid, Status: 400, Fields: map[string][]string{"email": {"taken"}}}, StateFailed, false},
		{"never sent", upstream(ServiceAuth, ErrUpstreamUnavailable, true, 0), StateFailed, false},
		{"timeout: in doubt", upstream(ServiceAuth, ErrUpstreamUnavailable, false, 0), StateStarted, true},
		{"5xx: in doubt", upstream(ServiceAuth, ErrUpstreamUnavailable, false, 502), StateStarted, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true)
			h.auth.register = func(AuthRegistration) (AuthUser, TokenPair, error) { return AuthUser{}, TokenPair{}, tc.err }
			_, err := h.svc.Register(context.Background(), validRegistration, nil)
			if tc.pending {
				var be *Error
				if !errors.As(err, &be) || be.Code != CodeRegistrationFailed || be.Extra["pending"] != true {
					t.Fatalf("error: %v", err)
				}
			} else if !errors.Is(err, tc.err.(*UpstreamError).Kind) {
				t.Fatalf("error: %v, want the upstream's", err)
			}
			sg := h.store.only(t)
			if sg.State != tc.wantState || h.customers.creates != 0 {
				t.Fatalf("saga state %s, creates %d", sg.State, h.customers.creates)
			}
			if tc.pending && !sg.NextAttemptAt.Equal(sg.CreatedAt.Add(h.svc.authGrace())) {
				t.Fatalf("next attempt %v, want after the auth grace", sg.NextAttemptAt)
			}
		})
	}
}

func TestRegisterProfileFailures(t *testing.T) {
	t.Parallel()
	profileExists := func() (bool, string, error) { return true, "c1", nil }
	for _, tc := range []struct {
		name        string
		create      []error // per attempt; nil: success
		exists      func() (bool, string, error)
		deleteFails bool
		wantState   string
		wantErr     bool
		compensated bool
		checks      bool
	}{
		{name: "never sent twice: delete without checking", create: []error{upstream(ServiceCustomer, ErrUpstreamUnavailable, true, 0), upstream(ServiceCustomer, ErrUpstreamUnavailable, true, 0)},
			wantState: StateCompensated, wantErr: true, compensated: true},
		{name: "never sent, then created on the retry", create: []error{upstream(ServiceCustomer, ErrUpstreamUnavailable, true, 0), nil},
			wantState: StateCompleted},
		{name: "5xx then 409: an attempt did write", create: []error{upstream(ServiceCustomer, ErrUpstreamUnavailable, false, 502), upstream(ServiceCustomer, ErrUpstreamConflict, false, 409)},
			wantState: StateCompleted},
		{name: "timeout, profile exists: finish forward", create: []error{upstream(ServiceCustomer, ErrUpstreamUnavailable, false, 0)},
			exists: profileExists, wantState: StateCompleted, checks: true},
		{name: "timeout, no profile: delete and verify later", create: []error{upstream(ServiceCustomer, ErrUpstreamUnavailable, false, 0)},
			wantState: StateVerifying, wantErr: true, compensated: true, checks: true},
		{name: "timeout, check fails too: delete and verify later", create: []error{upstream(ServiceCustomer, ErrUpstreamUnavailable, false, 0)},
			exists: func() (bool, string, error) { return false, "", errors.New("down") }, wantState: StateVerifying, wantErr: true, compensated: true},
		{name: "400 slipped through: delete", create: []error{&UpstreamError{Service: ServiceCustomer, Kind: ErrUpstreamInvalid, Status: 400, Fields: map[string][]string{"city": {"bad"}}}},
			wantState: StateCompensated, wantErr: true, compensated: true},
		{name: "user cannot be deleted: pending", create: []error{upstream(ServiceCustomer, ErrUpstreamUnavailable, true, 0), upstream(ServiceCustomer, ErrUpstreamUnavailable, true, 0)},
			deleteFails: true, wantState: StateCompensating, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, true)
			attempt := 0
			h.customers.create = func() (CustomerProfile, error) {
				err := tc.create[min(attempt, len(tc.create)-1)]
				attempt++
				if err != nil {
					return CustomerProfile{}, err
				}
				return CustomerProfile{ID: "c1", UserID: "u1", Raw: json.RawMessage(`{"id":"c1"}`)}, nil
			}
			checked := false
			h.customers.exists = func() (bool, string, error) {
				checked = true
				if tc.exists != nil {
					return tc.exists()
				}
				return false, "", nil
			}
			if tc.deleteFails {
				h.auth.deleteSelf = func(string) error { return upstream(ServiceAuth, ErrUpstreamUnavailable, true, 0) }
				h.authAdmin.del = func(string) error { return upstream(ServiceAuth, ErrUpstreamUnavailable, true, 0) }
			}
			res, err := h.svc.Register(context.Background(), validRegistration, nil)
			sg := h.store.only(t)
			if sg.State != tc.wantState {
				t.Fatalf("saga state %s, want %s", sg.State, tc.wantState)
			}
			if checked != tc.checks && tc.exists == nil {
				t.Fatalf("checked before deleting: %v, want %v", checked, tc.checks)
			}
			if !tc.wantErr {
				if err != nil || res == nil {
					t.Fatalf("want success, got %v", err)
				}
				if h.auth.count("delete_self") != 0 {
					t.Fatal("a finished registration deleted its user")
				}
				return
			}
			var be *Error
			if !errors.As(err, &be) || be.Code != CodeRegistrationFailed || be.Extra["compensated"] != tc.compensated {
				t.Fatalf("error: %v", err)
			}
			if tc.compensated && h.auth.count("delete_self") != 1 {
				t.Fatalf("user deleted %d times with its own token", h.auth.count("delete_self"))
			}
			if !tc.compensated && !sg.NextAttemptAt.After(h.clock.now()) {
				t.Fatal("pending compensation not scheduled")
			}
		})
	}
}

func TestRegisterStoreDownCreatesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	h.store.down = true
	_, err := h.svc.Register(context.Background(), validRegistration, nil)
	var be *Error
	if !errors.As(err, &be) || be.Code != CodeStoreUnavailable {
		t.Fatalf("error: %v", err)
	}
	if h.auth.count("register") != 0 {
		t.Fatal("the auth user was created without a saga record")
	}
}

func TestAfterStepStopsLikeACrash(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	h.svc.afterStep = func(_ context.Context, step string) error {
		if step == "user_created" {
			return errors.New("boom")
		}
		return nil
	}
	if _, err := h.svc.Register(context.Background(), validRegistration, nil); err == nil {
		t.Fatal("want the hook's error")
	}
	if sg := h.store.only(t); sg.State != StateUserCreated || h.customers.creates != 0 {
		t.Fatalf("state %s, creates %d", sg.State, h.customers.creates)
	}
	if len(h.store.leases) != 1 {
		t.Fatal("a crash releases no lease")
	}
}

func TestDeleteAccount(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	d, err := h.svc.DeleteAccount(context.Background(), "u1", "tok")
	if err != nil || !d.Done {
		t.Fatalf("delete: %+v %v", d, err)
	}
	if h.store.only(t).State != StateCompleted || len(h.views.invalidated) == 0 {
		t.Fatal("saga not completed or view not invalidated")
	}

	h = newHarness(t, true)
	h.auth.deleteSelf = func(string) error { return upstream(ServiceAuth, ErrUpstreamUnavailable, true, 0) }
	h.authAdmin.del = func(string) error { return upstream(ServiceAuth, ErrUpstreamUnavailable, true, 0) }
	d, err = h.svc.DeleteAccount(context.Background(), "u1", "tok")
	if err != nil || d.Done || !d.ProfileDeleted || d.AccountDeleted {
		t.Fatalf("delete with auth down: %+v %v", d, err)
	}
	if h.store.only(t).State != StateProfileDeleted {
		t.Fatal("want the saga parked after the profile")
	}
}

func TestUpdateMe(t *testing.T) {
	t.Parallel()
	okUser := func(map[string]json.RawMessage) (AuthUser, error) { return testUser, nil }
	okProfile := func() (CustomerProfile, error) { return CustomerProfile{ID: "c1"}, nil }
	invalid := &UpstreamError{Service: ServiceCustomer, Kind: ErrUpstreamInvalid, Fields: map[string][]string{"postal_code": {"bad"}}}
	p := Patch{User: map[string]json.RawMessage{"first_name": json.RawMessage(`"A"`)}, Profile: map[string]json.RawMessage{"postal_code": json.RawMessage(`"x"`)}}

	h := newHarness(t, false)
	h.auth.update, h.customers.update = okUser, okProfile
	if err := h.svc.UpdateMe(context.Background(), "u1", "tok", p); err != nil || len(h.views.invalidated) != 1 {
		t.Fatalf("both: %v, invalidated %v", err, h.views.invalidated)
	}

	h = newHarness(t, false)
	h.auth.update = okUser
	h.customers.update = func() (CustomerProfile, error) { return CustomerProfile{}, invalid }
	err := h.svc.UpdateMe(context.Background(), "u1", "tok", p)
	var be *Error
	if !errors.As(err, &be) || be.Code != CodePartialUpdate || be.Extra["errors"] == nil ||
		strings.Join(be.Extra["applied"].([]string), ",") != "user" || len(h.views.invalidated) != 1 {
		t.Fatalf("partial: %v %+v", err, be)
	}

	h = newHarness(t, false)
	h.auth.update = func(map[string]json.RawMessage) (AuthUser, error) {
		return AuthUser{}, &UpstreamError{Service: ServiceAuth, Kind: ErrUpstreamInvalid, Fields: map[string][]string{"email": {"taken"}}}
	}
	h.customers.update = func() (CustomerProfile, error) { return CustomerProfile{}, invalid }
	err = h.svc.UpdateMe(context.Background(), "u1", "tok", p)
	if !errors.As(err, &be) || len(be.Fields) != 2 || len(h.views.invalidated) != 0 {
		t.Fatalf("both invalid: %v", err)
	}
}

func TestBackoffGrowsAndIsBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, false)
	prev := time.Duration(0)
	for n := 1; n <= 12; n++ {
		d := h.svc.backoff(n)
		if d > time.Duration(float64(maxBackoff)*1.2) || (n < 6 && d < prev/2) {
			t.Fatalf("backoff(%d) = %v after %v", n, d, prev)
		}
		prev = d
	}
}
