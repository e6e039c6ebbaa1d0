package bffd_test

import (
	"bytes"
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/testenv"
)

// TestSecretRotation: a keyed registration answered 201 and a saga left
// pending (its replica died between its steps) under the old server
// secret; the BFF restarted with a new secret and the old one as
// previous (BFF_PREVIOUS_SECRETS): the retry of the first replays the
// same 201 (not a 422), and the reconciler settles the pending saga (it
// opens what the old secret sealed), after which its keyed retry gets a
// 201 too.
func TestSecretRotation(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	const (
		oldSecret = "old-server-secret-0123456789"
		newSecret = "new-server-secret-9876543210"
	)
	// crashNext makes the first BFF die at its next registration's
	// user_created step.
	var crashNext atomic.Bool
	old := s.startBFF(map[string]string{"BFF_IDEMPOTENCY_SECRET": oldSecret, "SAGA_LEASE_TTL": "2s"}, func(_ context.Context, step string) error {
		if step == "user_created" && crashNext.Load() {
			return errCrash
		}
		return nil
	})
	first := old.register(registration("rotate-done@example.com"), key("rotate-done"))
	registered(t, first, "rotate-done@example.com")
	crashNext.Store(true)
	if a := old.register(registration("rotate-pending@example.com"), key("rotate-pending")); a.Status != http.StatusInternalServerError {
		t.Fatalf("the crashed registration: %s", a)
	}
	if err := old.stop(); err != nil {
		t.Fatal(err)
	}

	rotated := s.startBFF(map[string]string{"BFF_IDEMPOTENCY_SECRET": newSecret, "BFF_PREVIOUS_SECRETS": oldSecret,
		"SAGA_LEASE_TTL": "2s", "RECONCILE_INTERVAL": "500ms"}, nil)
	replay := rotated.register(registration("rotate-done@example.com"), key("rotate-done"))
	if replay.Status != http.StatusCreated || replay.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(replay.Body, first.Body) {
		t.Fatalf("the retry after the rotation: %s (replayed %q), want the first 201 replayed", replay, replay.Header.Get("Idempotent-Replayed"))
	}
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the rotated BFF settles the old secret's saga", func() bool { return s.settled(t) }))
	if st := s.sagaStates(t); st["needs_attention"] != 0 {
		t.Fatalf("sagas %v: the old secret's saga was parked", st)
	}
	var retry testenv.Answer
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the pending registration's retry to get its outcome", func() bool {
		retry = rotated.register(registration("rotate-pending@example.com"), key("rotate-pending"))
		return retry.Status != http.StatusConflict
	}))
	userID, _ := registered(t, retry, "rotate-pending@example.com")
	if n := len(s.profiles(t, userID)); n != 1 {
		t.Fatalf("%d profiles, want 1", n)
	}
}
