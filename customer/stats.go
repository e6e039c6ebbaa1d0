package customer

import (
	"context"
	"sync"
)

// statsFlights shares the computation of the staff's stats (scope all)
// among concurrent requests, so that however many arrive, a replica runs at
// most one computation at a time and has at most one more waiting. The
// figures are whole-collection reads whose cost grows with the data
// (docs/indexes.md), and a dashboard polled by many staff must not multiply
// it.
//
// A request never gets figures computed before it arrived: it joins the
// computation that starts after the running one (the "next flight"), never
// the running one, so every write acknowledged before the request is in its
// answer, as without sharing.
type statsFlights struct {
	mu      sync.Mutex
	running *statsFlight // the computation under way, if any
	next    *statsFlight // the one that starts when running ends, if any
	waiting int          // requests waiting for a flight (for the tests)
}

type statsFlight struct {
	done chan struct{}
	st   Stats
	err  error
}

// do returns the figures of a computation of compute that starts after do
// was called, shared with the other callers of that moment. The
// computation runs on ctx's values without its cancellation (other callers
// wait for it too); each caller waits only as long as its own ctx allows.
func (f *statsFlights) do(ctx context.Context, compute func(context.Context) (Stats, error)) (Stats, error) {
	f.mu.Lock()
	var fl *statsFlight
	switch {
	case f.next != nil:
		fl = f.next
	case f.running != nil:
		fl = &statsFlight{done: make(chan struct{})}
		f.next = fl
		prev := f.running
		go func() {
			<-prev.done
			f.mu.Lock()
			f.running, f.next = fl, nil
			f.mu.Unlock()
			f.run(ctx, fl, compute)
		}()
	default:
		fl = &statsFlight{done: make(chan struct{})}
		f.running = fl
		go f.run(ctx, fl, compute)
	}
	f.waiting++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.waiting--
		f.mu.Unlock()
	}()
	select {
	case <-fl.done:
		return fl.st, fl.err
	case <-ctx.Done():
		return Stats{}, ctx.Err()
	}
}

func (f *statsFlights) run(ctx context.Context, fl *statsFlight, compute func(context.Context) (Stats, error)) {
	fl.st, fl.err = compute(context.WithoutCancel(ctx))
	f.mu.Lock()
	if f.running == fl {
		f.running = nil
	}
	f.mu.Unlock()
	close(fl.done)
}
