package customer_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/customer/customertest"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
)

// gatedStats is a store whose Stats waits for a release and answers the
// number of its call as TotalCustomers.
type gatedStats struct {
	customer.Store
	calls   atomic.Int32
	started chan int
	release chan struct{}
}

func (g *gatedStats) Stats(context.Context, time.Time) (customer.Stats, error) {
	n := int(g.calls.Add(1))
	g.started <- n
	<-g.release
	return customer.Stats{TotalCustomers: n}, nil
}

// TestStaffStatsShareOneComputation: however many staff stats requests
// arrive while one is computed, they share the next computation (at most
// one runs at a time), and none is answered with figures computed before it
// arrived.
func TestStaffStatsShareOneComputation(t *testing.T) {
	t.Parallel()
	store := &gatedStats{Store: newMemStore(), started: make(chan int, 8), release: make(chan struct{})}
	s := customer.NewService(store, customertest.KnownUsers(), nil, customer.Options{})
	staff := actorOf(contract.RoleEmployee)
	ctx := context.Background()

	first := make(chan int, 1)
	go func() {
		r, err := s.Stats(ctx, staff)
		testenv.Must(t, err, "first stats")
		first <- r.All.TotalCustomers
	}()
	if n := <-store.started; n != 1 {
		t.Fatalf("first computation is call %d", n)
	}
	// Ten more arrive while the first computation runs.
	const later = 10
	var wg sync.WaitGroup
	got := make(chan int, later)
	for range later {
		wg.Go(func() {
			r, err := s.Stats(ctx, staff)
			if err != nil {
				t.Error(err)
				return
			}
			got <- r.All.TotalCustomers
		})
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("every request waits", func() bool { return s.StatsWaiting() == later+1 }))
	store.release <- struct{}{} // the first computation ends
	if n := <-first; n != 1 {
		t.Fatalf("the first request got computation %d", n)
	}
	if n := <-store.started; n != 2 {
		t.Fatalf("second computation is call %d", n)
	}
	store.release <- struct{}{}
	wg.Wait()
	close(got)
	for n := range got {
		if n != 2 {
			t.Fatalf("a request that arrived during computation 1 got computation %d", n)
		}
	}
	if c := store.calls.Load(); c != 2 {
		t.Fatalf("%d computations for %d requests, want 2", c, later+1)
	}
	// A request alone afterwards gets a computation of its own.
	go func() { store.release <- struct{}{} }()
	if r, err := s.Stats(ctx, staff); err != nil || r.All.TotalCustomers != 3 {
		t.Fatalf("a later request: %+v %v", r.All, err)
	}
	<-store.started
}
