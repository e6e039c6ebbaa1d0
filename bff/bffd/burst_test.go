package bffd_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/testenv"
)

// TestRegistrationBurst: burstSize registrations with keys, all at once,
// on the embedded store with the services' default timeouts (the tests'
// cheap password hash). The BFF's store-call gate queues the burst's store
// calls where nothing has been sent yet instead of letting them time out
// inside the database's queue, so every registration answers 201; then
// every user has exactly one profile and every profile a user, and every
// saga is completed.
func TestRegistrationBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("burst test")
	}
	s := newStack(t, stackOptions{})
	b := s.startBFF(map[string]string{"CUSTOMER_TIMEOUT": "", "SAGA_LEASE_TTL": "", "RECONCILE_INTERVAL": "1s"}, nil)
	var (
		mu      sync.Mutex
		answers = map[string]int{}
		wg      sync.WaitGroup
	)
	start := time.Now()
	for i := range burstSize {
		wg.Go(func() {
			a := b.register(registration(fmt.Sprintf("burst-%03d@example.com", i)), key(fmt.Sprintf("burst-key-%d", i)))
			k := fmt.Sprint(a.Status)
			if a.Status != http.StatusCreated {
				k += fmt.Sprintf(" %v: %v", a.Map(t)["code"], a.Map(t)["detail"])
			}
			mu.Lock()
			answers[k]++
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("%d registrations in %v: %v", burstSize, time.Since(start), answers)
	if answers["201"] != burstSize {
		t.Errorf("answers %v, want %d × 201", answers, burstSize)
	}
	testenv.Eventually(t, 30*time.Second, testenv.Holds("every saga settles", func() bool { return s.settled(t) }))

	if n := s.checkPairs(t); n != burstSize {
		t.Errorf("%d users after %d registrations", n, burstSize)
	}
	if st := s.sagaStates(t); st["completed"] != burstSize {
		t.Errorf("sagas %v, want %d completed", st, burstSize)
	}
}

// burstSize is the burst: 64 concurrent registrations, the figure whose
// 503s the gate was made for.
const burstSize = 64
