package bff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

// The scenarios of issue 14, one test each (the exhaustive fault suite is
// in faults_test.go).

// statusOf is the status the HTTP adapter answers for err (see
// bff/httpapi/errors.go), for tests that play the handler.
func statusOf(err error) int {
	if err == nil {
		return 201
	}
	if be, ok := errors.AsType[*Error](err); ok {
		switch be.Code {
		case CodeInvalid:
			return 400
		case CodeKeyReused:
			return 422
		case CodeKeyInFlight:
			return 409
		case CodeRegistrationFailed:
			if ue, ok := errors.AsType[*UpstreamError](be.Cause); ok && errors.Is(ue, ErrUpstreamInvalid) {
				return 400
			}
		}
		return 503
	}
	if ue, ok := errors.AsType[*UpstreamError](err); ok {
		switch ue.Kind {
		case ErrUpstreamInvalid:
			return 400
		case ErrUpstreamUnauthorized:
			return 401
		case ErrUpstreamThrottled:
			return 429
		case ErrUpstreamForbidden:
			return 403
		case ErrUpstreamConflict:
			return 409
		case ErrUpstreamNotFound:
			return 404
		}
	}
	return 503
}

// answer is what a client got.
type answer struct {
	status   int
	body     []byte
	err      error
	replayed bool
}

// keyed plays the registration handler with an Idempotency-Key: claim,
// run, record; or the replay, or the claim's error.
func keyed(s *Service, key string, fp Fingerprint, reg Registration) answer {
	ctx := context.Background()
	claim, replay, err := s.BeginIdempotent(ctx, key, fp)
	if err != nil {
		return answer{status: statusOf(err), err: err}
	}
	if replay != nil {
		return answer{status: replay.Status, body: replay.Body, replayed: true}
	}
	res, err := s.Register(ctx, reg, claim)
	a := answer{status: statusOf(err), err: err}
	if err == nil {
		a.body, _ = json.Marshal(res)
	} else {
		a.body, _ = json.Marshal(map[string]any{"error": err.Error()})
	}
	s.CompleteIdempotent(ctx, claim, a.status, a.body, a.status < 500 && Final(err))
	return a
}

func regFingerprint(t testing.TB, reg Registration) Fingerprint {
	return fingerprint(t, fmt.Sprintf(`{"email":%q,"password1":%q}`, reg.Auth.Email, reg.Auth.Password1))
}

// Scenario 1: the profile was created but recording completed failed. The
// client is not told 201 (a 201 is only sent once completed is recorded),
// and the reconciler, finding the customer service unreachable, retries
// instead of compensating; once it answers, the registration is completed.
// Before: the client got 201 and the reconciler deleted the user on the
// unknown answer.
func TestScenario1ACompletedRegistrationIsNeverUndone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	h.store.failTransition = func(ch SagaChange) error {
		if ch.State == StateCompleted {
			return errDown
		}
		return nil
	}
	res, err := h.svc.Register(context.Background(), validRegistration, nil)
	if res != nil || codeOf(err) != CodeRegistrationPending {
		t.Fatalf("answer %+v, %v: want 503 registration_pending, never a 201 that is not recorded", res, err)
	}
	h.store.failTransition = nil
	down := func() (bool, string, error) {
		return false, "", upstream(ServiceCustomer, ErrUpstreamUnavailable, true, 0)
	}
	h.customers.exists = down
	h.custAdmin.exists = func(string) (bool, string, error) { return down() }
	for range 5 {
		h.clock.advance(maxBackoff + time.Minute)
		pass(t, h)
	}
	if sg := h.store.only(t); sg.State != StateUserCreated || h.auth.count("delete_self") != 0 || len(h.authAdmin.deleted) != 0 {
		t.Fatalf("state %s, deletes %d/%v: an unknown profile check led to a deletion", sg.State, h.auth.count("delete_self"), h.authAdmin.deleted)
	}
	h.customers.exists = func() (bool, string, error) { return true, "c1", nil }
	h.custAdmin.exists = func(string) (bool, string, error) { return true, "c1", nil }
	h.clock.advance(maxBackoff + time.Minute)
	pass(t, h)
	if sg := h.store.only(t); sg.State != StateCompleted || sg.CustomerID != "c1" {
		t.Fatalf("state %s", sg.State)
	}

	// And a 201 that was answered: the saga is completed before, and
	// nothing touches it afterwards.
	h = newHarness(t, true)
	if res, err := h.svc.Register(context.Background(), validRegistration, nil); err != nil || res == nil {
		t.Fatal(err)
	}
	if sg := h.store.only(t); sg.State != StateCompleted {
		t.Fatalf("answered 201 with the saga %s", sg.State)
	}
}

// Scenario 1, the live path: the create timed out and the check cannot
// answer: nothing is deleted, the saga stays user_created for the
// reconciler, the client is told it is pending.
func TestScenario1UnknownCheckDeletesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	h.customers.create = func() (CustomerProfile, error) {
		return CustomerProfile{}, upstream(ServiceCustomer, ErrUpstreamUnavailable, false, 0)
	}
	down := func() (bool, string, error) {
		return false, "", upstream(ServiceCustomer, ErrUpstreamUnavailable, true, 0)
	}
	h.customers.exists = down
	h.custAdmin.exists = func(string) (bool, string, error) { return down() }
	_, err := h.svc.Register(context.Background(), validRegistration, nil)
	if codeOf(err) != CodeRegistrationPending || h.auth.count("delete_self") != 0 || len(h.authAdmin.deleted) != 0 {
		t.Fatalf("error %v, deletes %d", err, h.auth.count("delete_self"))
	}
	if sg := h.store.only(t); sg.State != StateUserCreated {
		t.Fatalf("state %s", sg.State)
	}
}

// Scenario 3: only an explicit "user not found" means the user is gone. A
// rejected token (expired inside the verifier's leeway, a rotated key)
// falls back to the service account, or leaves the deletion pending.
// Before: any 401 counted as deleted, and DELETE /me answered 204 with
// the auth user left behind.
func TestScenario3OnlyUserNotFoundMeansDeleted(t *testing.T) {
	t.Parallel()
	rejected := &UpstreamError{Service: ServiceAuth, Kind: ErrUpstreamUnauthorized, Status: 401, Code: "token_not_valid"}
	gone := &UpstreamError{Service: ServiceAuth, Kind: ErrUpstreamUnauthorized, Status: 401, Code: CodeUserNotFound}

	h := newHarness(t, true)
	h.auth.deleteSelf = func(string) error { return rejected }
	d, err := h.svc.DeleteAccount(context.Background(), "u1", "tok")
	if err != nil || !d.Done || len(h.authAdmin.deleted) != 1 {
		t.Fatalf("with a service client: %+v %v, admin deletes %v", d, err, h.authAdmin.deleted)
	}

	h = newHarness(t, false)
	h.auth.deleteSelf = func(string) error { return rejected }
	d, err = h.svc.DeleteAccount(context.Background(), "u1", "tok")
	if err != nil || d.Done || d.AccountDeleted || h.store.only(t).State != StateProfileDeleted {
		t.Fatalf("without a service client: %+v %v: want the deletion pending", d, err)
	}

	h = newHarness(t, false)
	h.auth.deleteSelf = func(string) error { return gone }
	if d, err = h.svc.DeleteAccount(context.Background(), "u1", "tok"); err != nil || !d.Done {
		t.Fatalf("user_not_found: %+v %v, want done", d, err)
	}

	// Compensation after a key rotation: the user is deleted by the
	// service account, not assumed gone.
	h = newHarness(t, true)
	h.customers.create = func() (CustomerProfile, error) {
		return CustomerProfile{}, &UpstreamError{Service: ServiceCustomer, Kind: ErrUpstreamInvalid, Status: 400}
	}
	h.auth.deleteSelf = func(string) error { return rejected }
	if _, err := h.svc.Register(context.Background(), validRegistration, nil); codeOf(err) != CodeRegistrationFailed || len(h.authAdmin.deleted) != 1 {
		t.Fatalf("compensation: %v, admin deletes %v", err, h.authAdmin.deleted)
	}
}

// Scenario 4: only a final outcome is stored for a key. A 429 (or any
// transient answer) is not replayed: the retry runs again. A pending
// answer is not frozen: the retry gets 409 while the saga is open and
// then the outcome. Before: both were stored and replayed for 24 h.
func TestScenario4OnlyFinalAnswersAreStored(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	fp := regFingerprint(t, validRegistration)
	throttled := true
	h.auth.register = func(AuthRegistration) (AuthUser, TokenPair, error) {
		if throttled {
			return AuthUser{}, TokenPair{}, &UpstreamError{Service: ServiceAuth, Kind: ErrUpstreamThrottled, Status: 429, RetryAfter: time.Second}
		}
		return testUser, TokenPair{Access: "access-token"}, nil
	}
	if a := keyed(h.svc, "k429", fp, validRegistration); a.status != 429 {
		t.Fatalf("first: %d", a.status)
	}
	throttled = false
	if a := keyed(h.svc, "k429", fp, validRegistration); a.status != 201 || a.replayed {
		t.Fatalf("retry after a 429: %d replayed=%v, want it run again", a.status, a.replayed)
	}

	// A pending answer below 500 (the customer service refused the data,
	// the user could not be deleted yet).
	h = newHarness(t, true)
	h.customers.create = func() (CustomerProfile, error) {
		return CustomerProfile{}, &UpstreamError{Service: ServiceCustomer, Kind: ErrUpstreamInvalid, Status: 400}
	}
	failing := func(string) error { return upstream(ServiceAuth, ErrUpstreamUnavailable, true, 0) }
	h.auth.deleteSelf, h.authAdmin.del = failing, failing
	a := keyed(h.svc, "kp", fp, validRegistration)
	if a.status != 400 {
		t.Fatalf("first: %d %s", a.status, a.body)
	}
	if a := keyed(h.svc, "kp", fp, validRegistration); a.status != 409 || a.replayed {
		t.Fatalf("retry while pending: %d replayed=%v, want 409", a.status, a.replayed)
	}
	h.auth.deleteSelf, h.authAdmin.del = nil, nil
	h.clock.advance(h.svc.leaseTTL + maxBackoff)
	pass(t, h)
	if sg := h.store.only(t); sg.State != StateVerifying {
		t.Fatalf("state %s", sg.State)
	}
	// Compensated: nothing is left, the retry runs again (and is refused
	// again, now finally).
	if a := keyed(h.svc, "kp", fp, validRegistration); a.status != 400 || a.replayed {
		t.Fatalf("retry after compensation: %d replayed=%v", a.status, a.replayed)
	}
	if a := keyed(h.svc, "kp", fp, validRegistration); a.status != 400 || !a.replayed {
		t.Fatalf("final refusal: %d replayed=%v, want it replayed", a.status, a.replayed)
	}
}

// Scenario 5: a hung database blocks neither a request nor the
// reconciler: every store call is bounded.
func TestScenario5StoreCallsAreBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	// The bound NewService put around the store (every call, the held
	// ones too), shortened for the test.
	if h.svc.sagas != SagaStore(h.svc.gated) || h.svc.keys != IdempotencyStore(h.svc.gated) || h.svc.leases != LeaseStore(h.svc.gated) {
		t.Fatal("the service's stores are not its one bounded store")
	}
	h.svc.gated.timeout = 50 * time.Millisecond
	h.store.hang = true
	done := make(chan error, 3)
	go func() { _, err := h.svc.Register(context.Background(), validRegistration, nil); done <- err }()
	go func() {
		_, _, err := h.svc.BeginIdempotent(context.Background(), "k", regFingerprint(t, validRegistration))
		done <- err
	}()
	go func() { _, err := h.svc.NewReconciler(time.Second, time.Hour).Pass(context.Background()); done <- err }()
	for range 3 {
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("a hung store answered")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a call to a hung store did not return")
		}
	}
}

// Scenario 5, fencing: the live request stalls past its lease, the
// reconciler takes the saga over and compensates it; when the request
// resumes and creates the profile, its completion loses to the takeover
// and it does not answer 201. Before: it answered 201 for an undone
// registration.
func TestScenario5TakeoverFencesTheStaleAttempt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	h.svc.afterStep = func(_ context.Context, step string) error {
		if step == "user_created" {
			h.clock.advance(h.svc.leaseTTL + time.Second)
			if _, err := h.svc.NewReconciler(time.Second, 0).Pass(context.Background()); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	res, err := h.svc.Register(context.Background(), validRegistration, nil)
	if res != nil || err == nil {
		t.Fatalf("a 201 for a registration taken over and undone: %+v", res)
	}
	if sg := h.store.only(t); sg.State != StateVerifying {
		t.Fatalf("state %s", sg.State)
	}
}

// Scenario 6: a lease belongs to one attempt. An attempt that outlived its
// lease does not release the lease of the attempt that took over, even on
// the same replica. Before: one owner per replica, so it did.
func TestScenario6LeasePerAttempt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	ctx := context.Background()
	_, err := h.svc.withLease(ctx, "s", func(context.Context) error {
		h.clock.advance(h.svc.leaseTTL + time.Second)
		held, err := h.svc.withLease(ctx, "s", func(context.Context) error {
			return nil
		})
		if !held || err != nil {
			t.Fatalf("takeover: %v %v", held, err)
		}
		// The second attempt holds it now (acquired and released; take it again and keep it).
		ok, err := h.store.AcquireLease(ctx, "s", "reconciler-attempt", h.clock.now(), h.clock.now().Add(time.Minute))
		if !ok || err != nil {
			t.Fatalf("acquire: %v %v", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := h.store.leases["s"]; !ok || l.owner != "reconciler-attempt" {
		t.Fatalf("the stale attempt released another attempt's lease: %+v", h.store.leases)
	}
}

// Scenario 7: a lease orphaned by a crash between the lease and the saga,
// or by a failed release, is swept.
func TestScenario7OrphanedLeasesAreSwept(t *testing.T) {
	t.Parallel()
	h := newHarness(t, true)
	ctx := context.Background()
	now := h.clock.now()
	_, _ = h.store.AcquireLease(ctx, "never-written", "crashed", now, now.Add(h.svc.leaseTTL))
	h.store.down = true
	_, _ = h.svc.Register(ctx, validRegistration, nil) // the lease insert fails: nothing held
	h.store.down = false
	h.clock.advance(h.svc.leaseTTL + MaxClockSkew + time.Second)
	_, _ = h.store.AcquireLease(ctx, "live", "someone", h.clock.now(), h.clock.now().Add(time.Minute))
	pass(t, h)
	if _, ok := h.store.leases["never-written"]; ok {
		t.Fatal("the orphaned lease was not swept")
	}
	if _, ok := h.store.leases["live"]; !ok {
		t.Fatal("a live lease was swept")
	}
}

// Scenario 9: a retry with the same key is told the outcome, however it was
// reached and whichever replica answers: 409 with a Retry-After while the
// saga is open, then the 201 (the recorded answer with its tokens, or
// sign_in_required when the reconciler finished it).
func TestScenario9RetriesGetTheOutcome(t *testing.T) {
	t.Parallel()
	fp := regFingerprint(t, validRegistration)

	// The replica died after the profile was created.
	h := newHarness(t, true)
	h.customers.exists = func() (bool, string, error) { return true, "c1", nil }
	h.custAdmin.exists = func(string) (bool, string, error) { return true, "c1", nil }
	h.svc.afterStep = func(_ context.Context, step string) error {
		if step == "profile_created" {
			return errors.New("crash")
		}
		return nil
	}
	if a := keyed(h.svc, "k", fp, validRegistration); a.status == 201 {
		t.Fatal("the crashed request answered 201")
	}
	h.svc.afterStep = nil
	a := keyed(h.svc, "k", fp, validRegistration)
	var be *Error
	if a.status != 409 || !errors.As(a.err, &be) || be.RetryAfter < h.svc.leaseTTL-time.Second {
		t.Fatalf("retry while the dead attempt's lease holds: %d %v, want 409 with a Retry-After until the lease ends", a.status, a.err)
	}
	crash := h.clock.now()
	rc := h.svc.NewReconciler(time.Second, 0)
	for a.status == 409 {
		if h.clock.now().Sub(crash) > h.svc.MaxUnresolved(time.Second) {
			t.Fatalf("still unresolved after %v (MaxUnresolved %v)", h.clock.now().Sub(crash), h.svc.MaxUnresolved(time.Second))
		}
		h.clock.advance(time.Second)
		if _, err := rc.Pass(context.Background()); err != nil {
			t.Fatal(err)
		}
		a = keyed(h.svc, "k", fp, validRegistration)
	}
	var got map[string]any
	if a.status != 201 || json.Unmarshal(a.body, &got) != nil || got["sign_in_required"] != true || got["user"].(map[string]any)["id"] != "u1" {
		t.Fatalf("retry after the reconciler completed it: %d %s", a.status, a.body)
	}
	// Another replica on the same store answers the same.
	other, err := NewService(Options{Auth: h.auth, Customers: h.customers, Sagas: h.store, Leases: h.store, Keys: h.store,
		Secrets: h.svc.secrets, Now: h.clock.now, Logger: h.svc.log})
	if err != nil {
		t.Fatal(err)
	}
	if b := keyed(other, "k", fp, validRegistration); b.status != 201 || string(b.body) != string(a.body) {
		t.Fatalf("other replica: %d %s", b.status, b.body)
	}
	if h.auth.count("register") != 1 {
		t.Fatal("a retry registered again")
	}

	// The request completed but its answer could not be stored: the retry
	// gets that answer, tokens included, from the saga.
	h = newHarness(t, true)
	h.store.failCompleteKey = true
	first := keyed(h.svc, "k", fp, validRegistration)
	h.store.failCompleteKey = false
	again := keyed(h.svc, "k", fp, validRegistration)
	if first.status != 201 || again.status != 201 || string(again.body) != string(first.body) || !again.replayed {
		t.Fatalf("first %d %s, retry %d %s", first.status, first.body, again.status, again.body)
	}
}
