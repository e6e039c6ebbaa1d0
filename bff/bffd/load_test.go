package bffd_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/faultproxy"
	"github.com/acme/customer-platform/internal/testenv"
)

// 200 registrations while a fifth of the profile creations fail at random
// (before reaching the customer service, or after it wrote the profile):
// afterwards every auth user has exactly one profile and every profile a
// user, checked by listing both stores.
func TestRegisterLoadWithRandomFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	t.Parallel()
	s := newStack(t, stackOptions{})
	b := s.startBFF(map[string]string{"RECONCILE_INTERVAL": "1s"}, nil)
	s.custProxy.SetRules(
		faultproxy.Rule{Method: "POST", Path: createPath, Fraction: 0.10, Action: faultproxy.Fail, Status: 503},
		faultproxy.Rule{Method: "POST", Path: createPath, Fraction: 0.112, Action: faultproxy.DropAfter},
	)
	const (
		n       = 200
		workers = 3
	)
	var (
		created, compensated atomic.Int64
		wg                   sync.WaitGroup
		next                 atomic.Int64
	)
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > n {
					return
				}
				email := fmt.Sprintf("load-%03d@example.com", i)
				a := b.register(registration(email), key(fmt.Sprintf("load-key-%d", i)))
				switch {
				case a.Status == http.StatusCreated:
					created.Add(1)
				case a.Status == http.StatusServiceUnavailable && a.Map(t)["code"] == "registration_failed":
					compensated.Add(1)
				default:
					t.Errorf("%s: %s", email, a)
				}
			}
		})
	}
	wg.Wait()
	st := s.custProxy.Stats()
	t.Logf("%d created, %d failed and compensated; %d of %d customer requests faulted", created.Load(), compensated.Load(), st.Injected, st.Requests)
	if st.Injected < n/10 {
		t.Fatalf("only %d faults injected", st.Injected)
	}
	testenv.Eventually(t, 60*time.Second, testenv.Holds("every saga settles", func() bool { return s.settled(t) }))

	if n := s.checkPairs(t); int64(n) != created.Load() {
		t.Errorf("%d users for %d successful registrations", n, created.Load())
	}
	if sagas := s.sagaStates(t); sagas["needs_attention"] != 0 {
		t.Errorf("sagas needing attention: %v", sagas)
	}
}
