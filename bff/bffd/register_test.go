package bffd_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/faultproxy"
	"github.com/acme/customer-platform/internal/testenv"
)

const (
	registerPath = "/api/auth/register/"
	createPath   = "/api/v1/customers/profile/create/"
)

// registered checks a 201 registration answer and returns the user id and
// the access token.
func registered(t *testing.T, a testenv.Answer, email string) (userID, access string) {
	t.Helper()
	if a.Status != http.StatusCreated {
		t.Fatalf("register: %s, want 201", a)
	}
	body := a.Map(t)
	user, _ := body["user"].(map[string]any)
	profile, _ := body["profile"].(map[string]any)
	tokens, _ := body["tokens"].(map[string]any)
	if user == nil || profile == nil || tokens == nil {
		t.Fatalf("register answer lacks user, profile or tokens: %s", a.Body)
	}
	userID, _ = user["id"].(string)
	access, _ = tokens["access"].(string)
	if userID == "" || access == "" || tokens["refresh"] == "" || user["email"] != strings.ToLower(email) ||
		profile["user_id"] != userID || profile["city"] != "Portland" {
		t.Fatalf("register answer inconsistent: %s", a.Body)
	}
	return userID, access
}

// failed checks a registration_failed answer.
func failed(t *testing.T, a testenv.Answer, status int, compensated bool) map[string]any {
	t.Helper()
	body := a.Map(t)
	if a.Status != status || body["code"] != bff.CodeRegistrationFailed || body["compensated"] != compensated {
		t.Fatalf("register: %s, want %d registration_failed with compensated=%v", a, status, compensated)
	}
	if strings.Contains(string(a.Body), "127.0.0.1") || strings.Contains(string(a.Body), "customerhttp") {
		t.Fatalf("internal detail leaked: %s", a.Body)
	}
	return body
}

// noAccount checks that email left no user and userID no profile.
func (s *stack) noAccount(t *testing.T, email, userID string) {
	t.Helper()
	if u := s.users(t, email); len(u) != 0 {
		t.Fatalf("auth user left behind: %v", u)
	}
	if userID != "" {
		if p := s.profiles(t, userID); len(p) != 0 {
			t.Fatalf("profile left behind: %v", p)
		}
	}
}

// onlyUserID returns the id of the one auth user with email.
func (s *stack) onlyUserID(t *testing.T, email string) string {
	t.Helper()
	u := s.users(t, email)
	if len(u) != 1 {
		t.Fatalf("%d users with %s, want 1", len(u), email)
	}
	return u[0]["_id"].(string)
}

func TestRegisterSuccess(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(nil, nil)
	email := "Ada@Example.com"
	userID, access := registered(t, b.register(registration(email), nil), email)

	if n := len(s.profiles(t, userID)); n != 1 {
		t.Fatalf("%d profiles, want 1", n)
	}
	s.onlyUserID(t, email)
	sagas := s.sagas(t)
	if len(sagas) != 1 || sagas[0]["state"] != bff.StateCompleted || sagas[0]["user_id"] != userID || sagas[0]["customer_id"] == nil {
		t.Fatalf("saga: %v", sagas)
	}
	for _, secret := range []string{"email_sealed", "token_sealed"} {
		if _, ok := sagas[0][secret]; ok {
			t.Fatalf("completed saga still holds %s", secret)
		}
	}
	if e, _ := sagas[0]["email_hash"].(string); e == "" || strings.Contains(e, "@") {
		t.Fatalf("email hash %q", e)
	}

	me := call(t, http.MethodGet, b.url+"/api/bff/me/", nil, testenv.Bearer(access))
	body := me.Map(t)
	if me.Status != 200 || me.Header.Get("X-Cache") != "BYPASS" || body["user"].(map[string]any)["id"] != userID ||
		body["profile"].(map[string]any)["user_id"] != userID {
		t.Fatalf("GET /me: %s (X-Cache %q)", me, me.Header.Get("X-Cache"))
	}
}

func TestRegisterValidationCreatesNothing(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(nil, nil)
	bad := registration("not-an-email")
	bad["password2"] = "something-else-entirely"
	bad["postal_code"] = "ABCDE"
	delete(bad, "city")
	bad["is_verified"] = true
	bad["favourite_colour"] = "blue"
	bad["business_type"] = 7
	a := b.register(bad, nil)
	if a.Status != http.StatusBadRequest {
		t.Fatalf("register: %s, want 400", a)
	}
	fields := a.Map(t)
	for _, f := range []string{"email", "password2", "postal_code", "city", "is_verified", "favourite_colour", "business_type"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("no error for %s in %s", f, a.Body)
		}
	}
	weak := registration("weak@example.com")
	weak["password1"], weak["password2"] = "12345678", "12345678"
	if a := b.register(weak, nil); a.Status != http.StatusBadRequest || !strings.Contains(string(a.Body), "password1") {
		t.Fatalf("numeric password: %s", a)
	}
	for _, body := range []string{"", "[1,2]", "{", `{"email": "a@b.co"} trailing`} {
		if a := b.register(body, nil); a.Status != http.StatusBadRequest {
			t.Fatalf("body %q: %s, want 400", body, a)
		}
	}
	if a := b.register(registration("big@example.com"), map[string]string{"Idempotency-Key": strings.Repeat("k", 300)}); a.Status != http.StatusBadRequest {
		t.Fatalf("long idempotency key: %s", a)
	}
	s.noAccount(t, "not-an-email", "")
	s.noAccount(t, "weak@example.com", "")
	if n := len(s.sagas(t)); n != 0 {
		t.Fatalf("%d sagas written for bad input", n)
	}
}

func TestRegisterAuthAnswers(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(nil, nil)

	t.Run("taken email comes back verbatim", func(t *testing.T) {
		registered(t, b.register(registration("taken@example.com"), nil), "taken@example.com")
		a := b.register(registration("TAKEN@example.com"), nil)
		if a.Status != http.StatusBadRequest || a.Map(t)["email"] == nil {
			t.Fatalf("second registration: %s", a)
		}
		s.onlyUserID(t, "taken@example.com")
	})

	t.Run("auth down", func(t *testing.T) {
		s.authProxy.Refuse()
		defer func() { _ = s.authProxy.Pass() }()
		a := b.register(registration("down@example.com"), nil)
		if a.Status != http.StatusServiceUnavailable || a.Map(t)["code"] != "upstream_unavailable" {
			t.Fatalf("auth down: %s", a)
		}
		_ = s.authProxy.Pass()
		s.noAccount(t, "down@example.com", "")
	})

	t.Run("auth 5xx", func(t *testing.T) {
		s.authProxy.SetRules(faultproxy.Rule{Method: "POST", Path: registerPath, Action: faultproxy.Fail, Status: 500})
		s.authProxy.CutOpen()
		a := b.register(registration("five@example.com"), nil)
		body := failed(t, a, http.StatusServiceUnavailable, false)
		if body["pending"] != true {
			t.Fatalf("auth 5xx: %s", a)
		}
		_ = s.authProxy.Pass()
		// The reconciler resolves the saga once the call cannot be running:
		// no user with that email, so nothing to undo.
		testenv.Eventually(t, 15*time.Second, testenv.Holds("the saga is resolved", func() bool { return s.settled(t) }))
		if st := s.sagaStates(t); st[bff.StateFailed] == 0 {
			t.Fatalf("saga states %v, want one failed", st)
		}
		s.noAccount(t, "five@example.com", "")
	})

	t.Run("auth 5xx after creating the user", func(t *testing.T) {
		s.authProxy.SetRules(faultproxy.Rule{Method: "POST", Path: registerPath, Action: faultproxy.FailAfter, Status: 502})
		s.authProxy.CutOpen()
		a := b.register(registration("after@example.com"), nil)
		failed(t, a, http.StatusServiceUnavailable, false)
		_ = s.authProxy.Pass()
		// The user exists but the saga never learnt its id: the reconciler
		// finds it by email, proves it is the saga's, and deletes it.
		testenv.Eventually(t, 15*time.Second, testenv.Holds("the orphan user is removed", func() bool {
			return len(s.users(t, "after@example.com")) == 0 && s.settled(t)
		}))
	})
}

func TestRegisterCustomerFailures(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(nil, nil)
	cases := []struct {
		name        string
		fault       func()
		status      int
		compensated bool // false: finished forward (201)
	}{
		{"customer down", func() { s.custProxy.Refuse() }, 503, true},
		{"customer 5xx", func() {
			s.custProxy.SetRules(faultproxy.Rule{Method: "POST", Path: createPath, Action: faultproxy.Fail, Status: 500})
		}, 503, true},
		{"customer 4xx that slipped through validation", func() {
			s.custProxy.SetRules(faultproxy.Rule{Method: "POST", Path: createPath, Action: faultproxy.Fail, Status: 400})
		}, 400, true},
		{"timeout before the write", func() {
			s.custProxy.SetRules(faultproxy.Rule{Method: "POST", Path: createPath, Action: faultproxy.Hang})
		}, 503, true},
		{"connection cut before the answer, after the write", func() {
			s.custProxy.SetRules(faultproxy.Rule{Method: "POST", Path: createPath, Action: faultproxy.DropAfter})
		}, 201, false},
		{"5xx after the write", func() {
			s.custProxy.SetRules(faultproxy.Rule{Method: "POST", Path: createPath, Action: faultproxy.FailAfter, Status: 502})
		}, 201, false},
		{"timeout after the write", func() {
			s.custProxy.SetRules(faultproxy.Rule{Method: "POST", Path: createPath, Action: faultproxy.DelayResponse, Delay: 1500 * time.Millisecond})
		}, 201, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			email := fmt.Sprintf("customer-fault-%d@example.com", i)
			tc.fault()
			s.custProxy.CutOpen()
			a := b.register(registration(email), nil)
			_ = s.custProxy.Pass()
			if !tc.compensated {
				userID, _ := registered(t, a, email)
				if n := len(s.profiles(t, userID)); n != 1 {
					t.Fatalf("%d profiles, want 1", n)
				}
				return
			}
			failed(t, a, tc.status, true)
			s.noAccount(t, email, "")
		})
	}
	// Every saga ends terminal, and nothing is left half-registered.
	testenv.Eventually(t, 15*time.Second, testenv.Holds("every saga settles", func() bool { return s.settled(t) }))
	for i, tc := range cases {
		email := fmt.Sprintf("customer-fault-%d@example.com", i)
		users := s.users(t, email)
		if tc.compensated && len(users) != 0 || !tc.compensated && len(users) != 1 {
			t.Errorf("%s: %d users", tc.name, len(users))
		}
	}
}

// A create that was still in flight when the BFF checked lands after the
// user was deleted: the reconciler's verify step removes that profile.
func TestRegisterLateProfileIsRemoved(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(nil, nil)
	s.custProxy.SetRules(faultproxy.Rule{Method: "POST", Path: createPath, Action: faultproxy.DelayRequest, Delay: 900 * time.Millisecond})
	a := b.register(registration("late@example.com"), nil)
	failed(t, a, http.StatusServiceUnavailable, true)
	s.noAccount(t, "late@example.com", "")
	var userID string
	for _, sg := range s.sagas(t) {
		userID, _ = sg["user_id"].(string)
	}
	if userID == "" {
		t.Fatal("the saga did not record the user id")
	}
	// The late create lands, and then the verify step removes it.
	testenv.Eventually(t, 15*time.Second, testenv.Holds("the late profile is removed and the saga compensated", func() bool {
		st := s.sagaStates(t)
		return st[bff.StateCompensated] == 1 && len(s.profiles(t, userID)) == 0
	}))
}

// Compensation fails while the auth service is down; the reconciler
// completes it once the service is back.
func TestRegisterCompensationCompletedByReconciler(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(nil, func(_ context.Context, step string) error {
		if step == "user_created" {
			s.custProxy.Refuse()
			s.authProxy.Refuse()
		}
		return nil
	})
	a := b.register(registration("pending@example.com"), nil)
	body := failed(t, a, http.StatusServiceUnavailable, false)
	if body["pending"] != true {
		t.Fatalf("answer: %s", a)
	}
	userID := s.onlyUserID(t, "pending@example.com")
	time.Sleep(500 * time.Millisecond) // the reconciler tries and fails meanwhile
	if len(s.users(t, "pending@example.com")) != 1 {
		t.Fatal("the user vanished while the auth service was down")
	}
	if err := s.authProxy.Pass(); err != nil {
		t.Fatal(err)
	}
	if err := s.custProxy.Pass(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, testenv.Holds("the reconciler completes the compensation", func() bool {
		return len(s.users(t, "pending@example.com")) == 0 && s.settled(t)
	}))
	s.noAccount(t, "pending@example.com", userID)
	if st := s.sagaStates(t); st[bff.StateCompensated] != 1 {
		t.Fatalf("saga states %v", st)
	}
}

var errCrash = errors.New("simulated crash")

// The BFF dies between creating the user and the profile; the restarted
// BFF's reconciler finishes the job (no half-registered customer).
func TestRegisterCrashBetweenSteps(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b1 := s.startBFF(nil, func(_ context.Context, step string) error {
		if step == "user_created" {
			return errCrash
		}
		return nil
	})
	a := b1.register(registration("crash@example.com"), nil)
	if a.Status != http.StatusInternalServerError {
		t.Fatalf("crashed registration: %s", a)
	}
	if err := b1.stop(); err != nil {
		t.Fatal(err)
	}
	userID := s.onlyUserID(t, "crash@example.com")
	if st := s.sagaStates(t); st[bff.StateUserCreated] != 1 {
		t.Fatalf("saga states after the crash %v, want user_created", st)
	}
	s.startBFF(nil, nil)
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the restarted BFF settles the saga", func() bool { return s.settled(t) }))
	s.noAccount(t, "crash@example.com", userID)
}

func TestRegisterConcurrentSameEmail(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(nil, nil)
	const n = 6
	answers := make([]testenv.Answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i] = b.register(registration("same@example.com"), nil) })
	}
	wg.Wait()
	created := 0
	for _, a := range answers {
		switch a.Status {
		case http.StatusCreated:
			created++
		case http.StatusBadRequest:
			if a.Map(t)["email"] == nil {
				t.Fatalf("loser: %s", a)
			}
		default:
			t.Fatalf("unexpected answer: %s", a)
		}
	}
	if created != 1 {
		t.Fatalf("%d registrations succeeded, want 1", created)
	}
	userID := s.onlyUserID(t, "same@example.com")
	if n := len(s.profiles(t, userID)); n != 1 {
		t.Fatalf("%d profiles, want 1", n)
	}
}
