package probe

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/acme/customer-platform/internal/testenv"
)

// probeAPI6BusinessFlows: the registration flow replayed — the same
// Idempotency-Key again, concurrently, with another body, and the same
// email without a key — never creates a second user or profile.
func probeAPI6BusinessFlows(t *testing.T, s *suite) {
	userOf := func(a testenv.Answer) string {
		var v struct {
			User struct{ ID string } `json:"user"`
		}
		_ = json.Unmarshal(a.Body, &v)
		return v.User.ID
	}

	// A replay answers the first outcome and creates nothing.
	email, pw := s.newEmail("replay"), "Probe-Quartz-Replay-2291"
	body, key, addr := registration(email, pw), "probe-replay-"+randomHex(), s.newAddr()
	first := s.call(t, http.MethodPost, s.bff+"/api/bff/register/", body, with(from(addr), "Idempotency-Key", key))
	if first.Status != http.StatusCreated {
		t.Fatalf("first registration: %s", first)
	}
	for i := range 3 {
		a := s.call(t, http.MethodPost, s.bff+"/api/bff/register/", body, with(from(addr), "Idempotency-Key", key))
		if a.Status != http.StatusCreated || userOf(a) != userOf(first) || a.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay %d: %s (Idempotent-Replayed %q), want the first 201 replayed", i, a, a.Header.Get("Idempotent-Replayed"))
		}
	}
	if id := s.userByEmail(t, email); id != userOf(first) || !s.profileExists(t, id) {
		t.Errorf("after the replays the email holds user %q (answered %q)", id, userOf(first))
	}

	// The key with another body is refused, and that body creates nothing.
	other := s.newEmail("replay-other")
	a := s.call(t, http.MethodPost, s.bff+"/api/bff/register/", registration(other, pw), with(from(addr), "Idempotency-Key", key))
	wantError(t, "a key reused with another body", a, http.StatusUnprocessableEntity)
	if id := s.userByEmail(t, other); id != "" {
		t.Errorf("a key reused with another body created user %s", id)
	}

	// The same email again without a key: the contract's 400, no second user.
	a = s.call(t, http.MethodPost, s.bff+"/api/bff/register/", body, from(addr))
	wantFieldError(t, "the same email registered again", a, "email", "user with this email already exists.")

	// Concurrent replays of a fresh key: one registration.
	email, key = s.newEmail("replay-concurrent"), "probe-concurrent-"+randomHex()
	body, addr = registration(email, pw), s.newAddr()
	answers, errs := make([]testenv.Answer, 5), make([]error, 5)
	raw, err := json.Marshal(body)
	testenv.Must(t, err, "encode the registration")
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			answers[i], errs[i] = post(s.bff+"/api/bff/register/", raw, with(from(addr), "Idempotency-Key", key))
		})
	}
	wg.Wait()
	created := ""
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatalf("concurrent replay %d: %v", i, errs[i])
		}
		switch a.Status {
		case http.StatusCreated:
			if created != "" && userOf(a) != created {
				t.Errorf("concurrent replay %d answered user %s, another answered %s", i, userOf(a), created)
			}
			created = userOf(a)
		case http.StatusConflict:
			wantError(t, "a concurrent replay while in flight", a, http.StatusConflict)
		default:
			t.Errorf("concurrent replay %d: %s, want 201 or 409", i, a)
		}
	}
	if created == "" {
		a := s.call(t, http.MethodPost, s.bff+"/api/bff/register/", body, with(from(addr), "Idempotency-Key", key))
		if a.Status != http.StatusCreated {
			t.Fatalf("the registration after its concurrent replays: %s", a)
		}
		created = userOf(a)
	}
	if id := s.userByEmail(t, email); id != created || !s.profileExists(t, id) {
		t.Errorf("after concurrent replays the email holds user %q with a profile %v, answered %q", id, id != "" && s.profileExists(t, id), created)
	}
}

// post sends a JSON body (for goroutines, which may not fail the test).
func post(u string, body []byte, header map[string]string) (testenv.Answer, error) {
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return testenv.Answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := testenv.DefaultClient.Do(req)
	if err != nil {
		return testenv.Answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return testenv.Answer{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}
