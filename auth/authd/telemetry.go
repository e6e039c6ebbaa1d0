package authd

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/auth"
)

const instrumentation = "github.com/acme/customer-platform/auth"

// slotted is a hasher that tells how many of its hashing slots are busy.
type slotted interface {
	auth.Hasher
	Slots() (busy, limit int)
}

// tracedHasher decorates the password hasher with a span per hash and the
// password-hash metrics: auth.password.hash.duration (the whole call, the
// wait for a free slot included, by operation and outcome), and the gauges
// auth.password.hash.active (hashes running), .waiting (calls waiting for a
// slot) and .limit (how many may run at once).
type tracedHasher struct {
	next     slotted
	tracer   trace.Tracer
	duration metric.Float64Histogram
	inFlight atomic.Int64 // calls inside next, waiting or hashing
}

var _ auth.Hasher = (*tracedHasher)(nil)

func instrumentHasher(h slotted, tp trace.TracerProvider, mp metric.MeterProvider) (*tracedHasher, error) {
	m := mp.Meter(instrumentation)
	t := &tracedHasher{next: h, tracer: tp.Tracer(instrumentation)}
	var err error
	if t.duration, err = m.Float64Histogram("auth.password.hash.duration",
		metric.WithUnit("s"),
		metric.WithDescription("Duration of password hashes and verifications by operation (hash, verify, verify_dummy) and outcome (ok, busy, error), waiting for a free slot included."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)); err != nil {
		return nil, fmt.Errorf("password metrics: %w", err)
	}
	active, err := m.Int64ObservableGauge("auth.password.hash.active",
		metric.WithDescription("Password hashes running now."))
	if err != nil {
		return nil, fmt.Errorf("password metrics: %w", err)
	}
	waiting, err := m.Int64ObservableGauge("auth.password.hash.waiting",
		metric.WithDescription("Password hash calls waiting for a free slot."))
	if err != nil {
		return nil, fmt.Errorf("password metrics: %w", err)
	}
	limit, err := m.Int64ObservableGauge("auth.password.hash.limit",
		metric.WithDescription("How many password hashes may run at once (PASSWORD_HASH_CONCURRENCY)."))
	if err != nil {
		return nil, fmt.Errorf("password metrics: %w", err)
	}
	if _, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		busy, lim := h.Slots()
		o.ObserveInt64(active, int64(busy))
		o.ObserveInt64(waiting, max(t.inFlight.Load()-int64(busy), 0))
		o.ObserveInt64(limit, int64(lim))
		return nil
	}, active, waiting, limit); err != nil {
		return nil, fmt.Errorf("password metrics: %w", err)
	}
	return t, nil
}

// observe runs one hasher call in a span and records its duration.
func (t *tracedHasher) observe(ctx context.Context, op string, call func(ctx context.Context) error) error {
	ctx, span := t.tracer.Start(ctx, "auth.password."+op)
	defer span.End()
	t.inFlight.Add(1)
	start := time.Now()
	err := call(ctx)
	d := time.Since(start)
	t.inFlight.Add(-1)
	outcome := "ok"
	switch {
	case errors.Is(err, auth.ErrBusy):
		outcome = "busy"
	case err != nil:
		outcome = "error"
	}
	if err != nil {
		span.SetStatus(codes.Error, outcome)
	}
	span.SetAttributes(attribute.String("outcome", outcome))
	t.duration.Record(ctx, d.Seconds(), metric.WithAttributes(attribute.String("operation", op), attribute.String("outcome", outcome)))
	return err
}

func (t *tracedHasher) Hash(ctx context.Context, password string) (hash string, err error) {
	err = t.observe(ctx, "hash", func(ctx context.Context) error {
		hash, err = t.next.Hash(ctx, password)
		return err
	})
	return hash, err
}

func (t *tracedHasher) Verify(ctx context.Context, password, encoded string) (ok, rehash bool, err error) {
	err = t.observe(ctx, "verify", func(ctx context.Context) error {
		ok, rehash, err = t.next.Verify(ctx, password, encoded)
		return err
	})
	return ok, rehash, err
}

func (t *tracedHasher) VerifyDummy(ctx context.Context, password string) error {
	return t.observe(ctx, "verify_dummy", func(ctx context.Context) error { return t.next.VerifyDummy(ctx, password) })
}
