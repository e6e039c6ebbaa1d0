package bff

import (
	"context"
	"time"
)

// bounded gives every call to the stores its own deadline (the caller's
// may be later, or none: the sagas detach from the request), so a hung
// database blocks neither a request nor the reconciler.
type bounded struct {
	sagas   SagaStore
	leases  LeaseStore
	keys    IdempotencyStore
	timeout time.Duration
}

var (
	_ SagaStore        = bounded{}
	_ LeaseStore       = bounded{}
	_ IdempotencyStore = bounded{}
)

func (b bounded) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.timeout)
}

func (b bounded) CreateSaga(ctx context.Context, s *Saga) error {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.sagas.CreateSaga(ctx, s)
}

func (b bounded) GetSaga(ctx context.Context, id string) (*Saga, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.sagas.GetSaga(ctx, id)
}

func (b bounded) TransitionSaga(ctx context.Context, id string, version int, ch SagaChange) error {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.sagas.TransitionSaga(ctx, id, version, ch)
}

func (b bounded) DueSagas(ctx context.Context, now time.Time, limit int) ([]*Saga, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.sagas.DueSagas(ctx, now, limit)
}

func (b bounded) Stats(ctx context.Context) (SagaStats, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.sagas.Stats(ctx)
}

func (b bounded) SweepSagas(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.sagas.SweepSagas(ctx, before)
}

func (b bounded) AcquireLease(ctx context.Context, id, owner string, now, expires time.Time) (bool, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.leases.AcquireLease(ctx, id, owner, now, expires)
}

func (b bounded) ReleaseLease(ctx context.Context, id, owner string) error {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.leases.ReleaseLease(ctx, id, owner)
}

func (b bounded) SweepLeases(ctx context.Context, before time.Time) (int64, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.leases.SweepLeases(ctx, before)
}

func (b bounded) InsertKey(ctx context.Context, r *IdempotencyRecord) error {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.keys.InsertKey(ctx, r)
}

func (b bounded) GetKey(ctx context.Context, keyID string) (*IdempotencyRecord, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.keys.GetKey(ctx, keyID)
}

func (b bounded) CompleteKey(ctx context.Context, keyID, owner string, status int, answer []byte) error {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.keys.CompleteKey(ctx, keyID, owner, status, answer)
}

func (b bounded) DeleteKey(ctx context.Context, keyID, owner string) error {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.keys.DeleteKey(ctx, keyID, owner)
}

func (b bounded) DeleteExpiredKey(ctx context.Context, keyID string, now time.Time) error {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.keys.DeleteExpiredKey(ctx, keyID, now)
}

func (b bounded) SweepKeys(ctx context.Context, now time.Time) (int64, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	return b.keys.SweepKeys(ctx, now)
}
