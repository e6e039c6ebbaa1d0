package bff

import (
	"context"
	"errors"
	"time"
)

// bounded gives every call to the stores its own deadline (the caller's
// may be later, or none: the sagas detach from the request), so a hung
// database blocks neither a request nor the reconciler.
//
// The deadline starts once the call holds one of the gate's slots: the
// calls in flight are bounded (a database whose writes are serialised, as
// the embedded FerretDB's are, only queues more calls behind each other),
// and the wait for a slot has its own, longer bound. So a burst of
// requests queues here, where nothing has been sent yet, instead of timing
// out in the database's queue; a store that answers nothing fails each
// call after its timeout as before, and only a wait longer than the
// gate's bound (a replica far over its capacity) fails with ErrStoreBusy.
//
// A call whose arguments carry times that bound later work (a lease's
// expiry, a saga's start, which the register call's deadline and the
// reconciler's grace count from) reads the clock once it holds its slot:
// Service.hold runs such a call, so the wait for a slot never eats into
// what those times allow.
type bounded struct {
	raw     rawStores
	timeout time.Duration
	gate    *gate
}

// rawStores are the stores a bounded wraps: called only with a slot held,
// by bounded's methods or in a Service.hold.
type rawStores struct {
	sagas  SagaStore
	leases LeaseStore
	keys   IdempotencyStore
}

// ErrStoreBusy is the error of a store call that waited longer than its
// bound for a slot: it was never sent.
var ErrStoreBusy = errors.New("bff store: busy: no slot for the call within its wait bound")

// gate bounds the store calls in flight.
type gate struct {
	slots chan struct{}
	wait  time.Duration
}

func newGate(slots int, wait time.Duration) *gate {
	return &gate{slots: make(chan struct{}, slots), wait: wait}
}

// enter waits for a slot, at most g.wait (and not past ctx), and returns
// its release.
func (g *gate) enter(ctx context.Context) (func(), error) {
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	select {
	case g.slots <- struct{}{}:
		return g.leave, nil
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return g.leave, nil
	case <-t.C:
		return nil, ErrStoreBusy
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (g *gate) leave() { <-g.slots }

var (
	_ SagaStore        = bounded{}
	_ LeaseStore       = bounded{}
	_ IdempotencyStore = bounded{}
)

// do runs fn holding a slot of the gate, with the call's deadline.
func (b bounded) do(ctx context.Context, fn func(ctx context.Context) error) error {
	leave, err := b.gate.enter(ctx)
	if err != nil {
		return err
	}
	defer leave()
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return fn(ctx)
}

func (b bounded) CreateSaga(ctx context.Context, s *Saga) error {
	return b.do(ctx, func(ctx context.Context) error { return b.raw.sagas.CreateSaga(ctx, s) })
}

func (b bounded) GetSaga(ctx context.Context, id string) (sg *Saga, err error) {
	err = b.do(ctx, func(ctx context.Context) error { sg, err = b.raw.sagas.GetSaga(ctx, id); return err })
	return sg, err
}

func (b bounded) TransitionSaga(ctx context.Context, id string, version int, ch SagaChange) error {
	return b.do(ctx, func(ctx context.Context) error { return b.raw.sagas.TransitionSaga(ctx, id, version, ch) })
}

func (b bounded) DueSagas(ctx context.Context, now time.Time, limit int) (due []*Saga, err error) {
	err = b.do(ctx, func(ctx context.Context) error { due, err = b.raw.sagas.DueSagas(ctx, now, limit); return err })
	return due, err
}

func (b bounded) Stats(ctx context.Context) (st SagaStats, err error) {
	err = b.do(ctx, func(ctx context.Context) error { st, err = b.raw.sagas.Stats(ctx); return err })
	return st, err
}

func (b bounded) SweepSagas(ctx context.Context, before time.Time) (n int64, err error) {
	err = b.do(ctx, func(ctx context.Context) error { n, err = b.raw.sagas.SweepSagas(ctx, before); return err })
	return n, err
}

func (b bounded) AcquireLease(ctx context.Context, id, owner string, now, expires time.Time) (ok bool, err error) {
	err = b.do(ctx, func(ctx context.Context) error {
		ok, err = b.raw.leases.AcquireLease(ctx, id, owner, now, expires)
		return err
	})
	return ok, err
}

func (b bounded) ReleaseLease(ctx context.Context, id, owner string) error {
	return b.do(ctx, func(ctx context.Context) error { return b.raw.leases.ReleaseLease(ctx, id, owner) })
}

func (b bounded) SweepLeases(ctx context.Context, before time.Time) (n int64, err error) {
	err = b.do(ctx, func(ctx context.Context) error { n, err = b.raw.leases.SweepLeases(ctx, before); return err })
	return n, err
}

func (b bounded) InsertKey(ctx context.Context, r *IdempotencyRecord) error {
	return b.do(ctx, func(ctx context.Context) error { return b.raw.keys.InsertKey(ctx, r) })
}

func (b bounded) GetKey(ctx context.Context, keyID string, now time.Time) (r *IdempotencyRecord, err error) {
	err = b.do(ctx, func(ctx context.Context) error { r, err = b.raw.keys.GetKey(ctx, keyID, now); return err })
	return r, err
}

func (b bounded) CompleteKey(ctx context.Context, keyID, owner string, status int, answer []byte, now time.Time) error {
	return b.do(ctx, func(ctx context.Context) error { return b.raw.keys.CompleteKey(ctx, keyID, owner, status, answer, now) })
}

func (b bounded) DeleteKey(ctx context.Context, keyID, owner string, now time.Time) error {
	return b.do(ctx, func(ctx context.Context) error { return b.raw.keys.DeleteKey(ctx, keyID, owner, now) })
}

func (b bounded) SweepKeys(ctx context.Context, now time.Time) (n int64, err error) {
	err = b.do(ctx, func(ctx context.Context) error { n, err = b.raw.keys.SweepKeys(ctx, now); return err })
	return n, err
}

// hold runs fn with a slot of the gate held and the call's deadline, and
// gives it the raw stores to call (the gated ones would wait for a second
// slot) and the time read once the slot is held: times fn writes (a
// lease's expiry, a saga's start) count from when the call could be sent,
// not from before its wait.
func (s *Service) hold(ctx context.Context, fn func(ctx context.Context, now time.Time, raw rawStores) error) error {
	return s.gated.do(ctx, func(ctx context.Context) error { return fn(ctx, s.now(), s.gated.raw) })
}
