package bffd_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	bffmongo "github.com/acme/customer-platform/bff/mongodb"
	"github.com/acme/customer-platform/internal/faultproxy"
	"github.com/acme/customer-platform/internal/testenv"
)

func key(k string) map[string]string { return map[string]string{"Idempotency-Key": k} }

func TestIdempotentRetries(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(nil, nil)

	t.Run("same key and body returns the first answer", func(t *testing.T) {
		first := b.register(registration("idem@example.com"), key("key-1"))
		userID, access := registered(t, first, "idem@example.com")
		// Key order and spacing do not matter: the canonical body is the same.
		again := b.register(`{"postal_code":"97201", "state":"OR","city":"Portland","street_address":"123 Main St",
			"password2":"`+testPassword+`","password1":"`+testPassword+`","phone_number":"+15035550100",
			"last_name":"Lovelace","first_name":"Ada","email":"idem@example.com"}`, key("key-1"))
		if again.Status != http.StatusCreated || !bytes.Equal(again.Body, first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry: %s (replayed %q), want the first answer", again, again.Header.Get("Idempotent-Replayed"))
		}
		if s.onlyUserID(t, "idem@example.com") != userID || len(s.profiles(t, userID)) != 1 {
			t.Fatal("the retry created something")
		}
		// The stored answer holds tokens: it is not readable in the database.
		for _, coll := range []string{bffmongo.ClaimsCollection, bffmongo.EndsCollection} {
			recs := testenv.Find(t, s.bffDB.Collection(coll), bson.D{})
			if len(recs) != 1 {
				t.Fatalf("%d records in %s", len(recs), coll)
			}
			for k, v := range recs[0] {
				if strings.Contains(asText(v), access) || strings.Contains(asText(v), "idem@example.com") || strings.Contains(asText(v), "key-1") {
					t.Fatalf("idempotency record reveals %s", k)
				}
			}
		}
	})

	t.Run("same key, other body is 422", func(t *testing.T) {
		other := registration("idem@example.com")
		other["city"] = "Salem"
		a := b.register(other, key("key-1"))
		if a.Status != http.StatusUnprocessableEntity || a.Map(t)["code"] != "idempotency_key_reused" {
			t.Fatalf("other body: %s", a)
		}
	})

	t.Run("a failed registration is stored and replayed too", func(t *testing.T) {
		a := b.register(registration("idem@example.com"), key("key-2")) // email taken: 400
		if a.Status != http.StatusBadRequest {
			t.Fatalf("taken email: %s", a)
		}
		again := b.register(registration("idem@example.com"), key("key-2"))
		if again.Status != http.StatusBadRequest || !bytes.Equal(a.Body, again.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay of the 400: %s", again)
		}
	})

	t.Run("a 5xx with nothing left behind is not stored: a retry runs again", func(t *testing.T) {
		s.custProxy.Refuse()
		a := b.register(registration("retry@example.com"), key("key-3"))
		_ = s.custProxy.Pass()
		failed(t, a, http.StatusServiceUnavailable, true)
		registered(t, b.register(registration("retry@example.com"), key("key-3")), "retry@example.com")
	})

	t.Run("concurrent retries: one runs, the others get 409 or its answer", func(t *testing.T) {
		// Slow the profile create down so the first request is in flight.
		s.custProxy.SetRules(faultproxy.Rule{Method: "POST", Path: createPath, Action: faultproxy.DelayRequest, Delay: 300 * time.Millisecond})
		s.custProxy.CutOpen()
		defer func() { _ = s.custProxy.Pass() }()
		const n = 6
		answers := make([]testenv.Answer, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { answers[i] = b.register(registration("conc@example.com"), key("key-4")) })
		}
		wg.Wait()
		fresh, conflicts, replays := 0, 0, 0
		for _, a := range answers {
			switch {
			case a.Status == http.StatusCreated && a.Header.Get("Idempotent-Replayed") == "true":
				replays++
			case a.Status == http.StatusCreated:
				fresh++
			case a.Status == http.StatusConflict && a.Map(t)["code"] == "idempotency_key_in_use" && a.Header.Get("Retry-After") != "":
				conflicts++
			default:
				t.Fatalf("unexpected answer: %s", a)
			}
		}
		if fresh != 1 || conflicts+replays != n-1 || conflicts == 0 {
			t.Fatalf("fresh %d, conflicts %d, replays %d", fresh, conflicts, replays)
		}
		userID := s.onlyUserID(t, "conc@example.com")
		if len(s.profiles(t, userID)) != 1 {
			t.Fatal("want exactly one profile")
		}
	})
}

// A request that crashed in flight does not block its key forever: once its
// lease expired and its saga is settled, a retry runs again.
func TestIdempotencyAfterCrash(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	b1 := s.startBFF(map[string]string{"SAGA_LEASE_TTL": "2s"}, func(_ context.Context, step string) error {
		if step == "user_created" {
			return errCrash
		}
		return nil
	})
	if a := b1.register(registration("phoenix@example.com"), key("crash-key")); a.Status != http.StatusInternalServerError {
		t.Fatalf("crashed request: %s", a)
	}
	if err := b1.stop(); err != nil {
		t.Fatal(err)
	}
	b2 := s.startBFF(map[string]string{"SAGA_LEASE_TTL": "2s"}, nil)
	if a := b2.register(registration("phoenix@example.com"), key("crash-key")); a.Status != http.StatusConflict {
		t.Fatalf("retry while the crashed saga is open: %s, want 409", a)
	}
	testenv.Eventually(t, 30*time.Second, testenv.Holds("the crashed saga settles", func() bool { return s.settled(t) }))
	s.noAccount(t, "phoenix@example.com", "")
	registered(t, b2.register(registration("phoenix@example.com"), key("crash-key")), "phoenix@example.com")
}

func asText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case primitive.Binary:
		return string(x.Data)
	}
	return ""
}
