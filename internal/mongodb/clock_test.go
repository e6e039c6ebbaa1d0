package mongodb_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/acme/customer-platform/internal/mongodb"
	"github.com/acme/customer-platform/internal/testenv"
)

// The server's clock read through hello: the embedded server shares this
// process's clock, so a clock set two minutes behind reads a skew of two
// minutes, and the real one next to none.
func TestClockSkew(t *testing.T) {
	t.Parallel()
	_, db := testenv.Mongo(t)
	ctx := context.Background()
	for _, behind := range []time.Duration{0, 2 * time.Minute} {
		skew, err := mongodb.ClockSkew(ctx, db, func() time.Time { return time.Now().Add(-behind) })
		testenv.Must(t, err, "skew")
		if d := skew - behind; d < -5*time.Second || d > 5*time.Second {
			t.Errorf("a clock %s behind: skew %s", behind, skew)
		}
	}
}

// TestClockWatch: the comparison at start and every later one export the
// skew and the allowance as gauges; a clock further off than allowed is
// warned about at each comparison, and a comparison that fails is warned
// about and keeps the last skew measured.
func TestClockWatch(t *testing.T) {
	t.Parallel()
	_, db := testenv.Mongo(t)
	ctx := context.Background()
	logs := &testenv.LogBuffer{}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(ctx) })
	const allowed = 500 * time.Millisecond
	w, err := mongodb.WatchClock(ctx, db, slog.New(slog.NewJSONHandler(logs, nil)), mp, allowed)
	testenv.Must(t, err, "watch")
	gauges := func() map[string]float64 {
		var rm metricdata.ResourceMetrics
		testenv.Must(t, reader.Collect(ctx, &rm), "collect")
		out := map[string]float64{}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if g, ok := m.Data.(metricdata.Gauge[float64]); ok && len(g.DataPoints) == 1 {
					out[m.Name] = g.DataPoints[0].Value
				}
			}
		}
		return out
	}
	warnings := func() int { return strings.Count(logs.String(), "clock disagrees") }
	near := func(got, want float64) bool { return got > want-5 && got < want+5 }

	g := gauges()
	if g["db.clock.skew.allowed"] != allowed.Seconds() || !near(g["db.clock.skew"], 0) {
		t.Fatalf("after the start: %v, want the skew near 0 and %v allowed", g, allowed.Seconds())
	}
	if n := warnings(); n != 0 {
		t.Fatalf("%d warnings with the clocks in step:\n%s", n, logs)
	}

	// This replica's clock falls two minutes behind: the next comparison
	// sees it and warns, and so does the one after.
	w.SetNow(func() time.Time { return time.Now().Add(-2 * time.Minute) })
	w.Check(ctx)
	if g := gauges(); !near(g["db.clock.skew"], 120) {
		t.Fatalf("with the clock two minutes behind: %v", g)
	}
	w.Check(ctx)
	if n := warnings(); n != 2 {
		t.Fatalf("%d warnings after two comparisons of a clock two minutes behind, want 2:\n%s", n, logs)
	}

	// A comparison that fails (here: it runs out of time) says so and
	// keeps the last skew; one cut short by the service's stop says
	// nothing.
	stopped, stop := context.WithCancel(ctx)
	stop()
	w.Check(stopped)
	if strings.Contains(logs.String(), "clock not compared") {
		t.Fatalf("a comparison cut short by the stop was reported:\n%s", logs)
	}
	late, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	w.Check(late)
	if !strings.Contains(logs.String(), "clock not compared") {
		t.Fatalf("a failed comparison was not reported:\n%s", logs)
	}
	if g := gauges(); !near(g["db.clock.skew"], 120) {
		t.Fatalf("after a failed comparison: %v, want the last skew kept", g)
	}

	// Run compares again at each tick and stops with its context.
	w.SetNow(time.Now)
	w.SetInterval(10 * time.Millisecond)
	running, end := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(running); close(done) }()
	testenv.Eventually(t, 10*time.Second, testenv.Holds("Run to compare again", func() bool { return near(gauges()["db.clock.skew"], 0) }))
	end()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
}
