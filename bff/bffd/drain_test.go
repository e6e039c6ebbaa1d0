package bffd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/testenv"
)

// TestDrainedReplicaLeavesTheSagaToAnother: a BFF replica is shut down
// (drained, as Kubernetes does on a scale-in or a rollout) while one of
// its registrations is between its steps; the drain's deadline passes
// before the registration finishes and the process ends with it. Another
// replica's reconciler settles the saga once the dead attempt's lease has
// expired, and the client's retry with its Idempotency-Key through that
// replica gets a 201: one user, one profile, nothing half done.
func TestDrainedReplicaLeavesTheSagaToAnother(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	held, dies := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a := s.startBFF(map[string]string{"SAGA_LEASE_TTL": "3s", "SHUTDOWN_TIMEOUT": "300ms"}, func(_ context.Context, step string) error {
		if step != "user_created" {
			return nil
		}
		once.Do(func() { close(held) })
		<-dies // the process ends here: the attempt makes no further call
		return errCrash
	})
	first := make(chan struct{})
	go func() {
		// Not a.register: the drain may close the connection, which that
		// helper reports as the test's failure.
		defer close(first)
		body, _ := json.Marshal(registration("drain@example.com"))
		req, _ := http.NewRequest(http.MethodPost, a.url+"/api/bff/register/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "drain-key")
		if res, err := http.DefaultClient.Do(req); err == nil {
			_ = res.Body.Close()
		}
	}()
	<-held
	if err := a.stop(); err != nil { // the drain gives up on the registration in flight
		t.Logf("drain: %v", err)
	}
	close(dies)
	<-first // whatever the client got (the connection closed, or a 5xx)

	b := s.startBFF(map[string]string{"SAGA_LEASE_TTL": "3s", "RECONCILE_INTERVAL": "500ms"}, nil)
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the other replica settles the drained replica's saga", func() bool { return s.settled(t) }))
	var retry testenv.Answer
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the retry with the key to get its outcome", func() bool {
		retry = b.register(registration("drain@example.com"), key("drain-key"))
		return retry.Status != http.StatusConflict
	}))
	userID, _ := registered(t, retry, "drain@example.com")
	if got := s.onlyUserID(t, "drain@example.com"); got != userID {
		t.Fatalf("the user is %s, the 201 named %s", got, userID)
	}
	if n := len(s.profiles(t, userID)); n != 1 {
		t.Fatalf("%d profiles of the registered user, want 1", n)
	}
}
