package mongodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.opentelemetry.io/otel/metric"
)

// ClockSkew is how far the database server's clock is ahead of now (taken
// at the middle of the hello round trip; negative: behind). Services that
// write times other replicas compare with their own clocks (leases, the
// BFF's idempotency days) check it at start: every replica's skew against
// the one server bounds the replicas' skew against each other.
func ClockSkew(ctx context.Context, db *mongo.Database, now func() time.Time) (time.Duration, error) {
	var res struct {
		LocalTime time.Time `bson:"localTime"`
	}
	sent := now()
	if err := db.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&res); err != nil {
		return 0, fmt.Errorf("mongodb hello: %w", err)
	}
	if res.LocalTime.IsZero() {
		return 0, fmt.Errorf("mongodb hello: no localTime")
	}
	mid := sent.Add(now().Sub(sent) / 2)
	return res.LocalTime.Sub(mid), nil
}

// instrumentation names the meter of the clock's gauges.
const instrumentation = "github.com/acme/customer-platform/internal/mongodb"

// ClockCheckInterval is how often a replica compares its clock with the
// database's after the comparison at start.
const ClockCheckInterval = 10 * time.Minute

// ClockWatch compares this replica's clock with the database's. Services
// that write times other replicas read with their own clocks (leases, a
// registration's deadline, the BFF's idempotency days) need the replicas'
// clocks to agree, and every replica's skew against the one server bounds
// the replicas' skew against each other. A comparison that finds the
// clock more than allowed off, or cannot compare, logs a warning; the last
// skew measured is the gauge db.clock.skew and the allowance
// db.clock.skew.allowed, which the alert ClockSkewed compares.
type ClockWatch struct {
	db       *mongo.Database
	log      *slog.Logger
	allowed  time.Duration
	now      func() time.Time
	interval time.Duration                 // ClockCheckInterval
	skew     atomic.Pointer[time.Duration] // the last skew measured; nil until a comparison succeeds
}

// WatchClock compares the clocks at once (at start) and exports the
// gauges; Run compares them again every ClockCheckInterval.
func WatchClock(ctx context.Context, db *mongo.Database, log *slog.Logger, mp metric.MeterProvider, allowed time.Duration) (*ClockWatch, error) {
	w := &ClockWatch{db: db, log: log, allowed: allowed, now: time.Now, interval: ClockCheckInterval}
	m := mp.Meter(instrumentation)
	skew, err := m.Float64ObservableGauge("db.clock.skew", metric.WithUnit("s"),
		metric.WithDescription("How far the database server's clock is ahead of this replica's (negative: behind), at the last comparison (at start, then every 10 minutes)."))
	if err != nil {
		return nil, fmt.Errorf("clock metrics: %w", err)
	}
	limit, err := m.Float64ObservableGauge("db.clock.skew.allowed", metric.WithUnit("s"),
		metric.WithDescription("How far this replica's clock may be off the database's for the service's leases and deadlines to hold."))
	if err != nil {
		return nil, fmt.Errorf("clock metrics: %w", err)
	}
	if _, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveFloat64(limit, allowed.Seconds())
		if d := w.skew.Load(); d != nil {
			o.ObserveFloat64(skew, d.Seconds())
		}
		return nil
	}, skew, limit); err != nil {
		return nil, fmt.Errorf("clock metrics: %w", err)
	}
	w.Check(ctx)
	return w, nil
}

// Check compares the clocks once.
func (w *ClockWatch) Check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	skew, err := ClockSkew(ctx, w.db, w.now)
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) { // not the service stopping
			w.log.WarnContext(ctx, "clock not compared with the database's", "error", err.Error())
		}
		return
	}
	w.skew.Store(&skew)
	if skew.Abs() > w.allowed {
		w.log.WarnContext(ctx, "this replica's clock disagrees with the database's: keep the replicas' clocks synchronised (NTP)",
			"skew", skew.String(), "allowed", w.allowed.String())
	}
}

// Run compares the clocks every ClockCheckInterval until ctx ends.
func (w *ClockWatch) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Check(ctx)
		}
	}
}
