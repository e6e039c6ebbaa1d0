package breaker_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/acme/customer-platform/bff/breaker"
	"github.com/acme/customer-platform/internal/testenv"
)

var (
	errDown     = errors.New("connection refused")
	errNotFound = errors.New("not found") // stands in for redis.Nil or an upstream's 404
)

type harness struct {
	reg    *breaker.Registry
	logs   *testenv.LogBuffer
	reader *sdkmetric.ManualReader
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{logs: &testenv.LogBuffer{}, reader: sdkmetric.NewManualReader()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	reg, err := breaker.NewRegistry(slog.New(slog.NewJSONHandler(h.logs, nil)), mp)
	if err != nil {
		t.Fatal(err)
	}
	h.reg = reg
	return h
}

func (h *harness) breaker(t *testing.T, name string, s breaker.Settings) *breaker.Breaker {
	t.Helper()
	b, err := h.reg.New(name, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fail(context.Context) error    { return errDown }
func succeed(context.Context) error { return nil }

// waitState polls until b reports want; the open timeout in these tests is
// short, and the wait is bounded generously.
func waitState(t *testing.T, b *breaker.Breaker, want breaker.State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.State(context.Background()) != want {
		if time.Now().After(deadline) {
			t.Fatalf("breaker %s: state %s, want %s", b.Name(), b.State(context.Background()), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOpensAfterConsecutiveFailuresAndFailsFast(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.breaker(t, "auth", breaker.Settings{FailuresToOpen: 3, OpenTimeout: time.Hour})
	ctx := context.Background()
	for i := range 3 {
		if b.State(ctx) != breaker.Closed {
			t.Fatalf("open after %d failures, want 3", i)
		}
		if err := b.Do(ctx, fail); !errors.Is(err, errDown) {
			t.Fatalf("call %d: %v, want the call's own error", i, err)
		}
	}
	if got := b.State(ctx); got != breaker.Open {
		t.Fatalf("state %s after 3 failures, want open", got)
	}
	called := false
	err := b.Do(ctx, func(context.Context) error { called = true; return nil })
	if !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("open breaker answered %v, want ErrOpen", err)
	}
	if called {
		t.Fatal("an open breaker called the dependency")
	}
	if !strings.Contains(err.Error(), "auth") {
		t.Fatalf("error %q does not name the breaker", err)
	}
}

func TestSuccessResetsTheFailureRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.breaker(t, "customer", breaker.Settings{FailuresToOpen: 3, OpenTimeout: time.Hour})
	ctx := context.Background()
	for range 10 {
		_ = b.Do(ctx, fail)
		_ = b.Do(ctx, fail)
		_ = b.Do(ctx, succeed)
	}
	if got := b.State(ctx); got != breaker.Closed {
		t.Fatalf("state %s, want closed: failures were never 3 in a row", got)
	}
}

func TestIsSuccessfulCountsNotFoundAsSuccess(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.breaker(t, "redis", breaker.Settings{
		FailuresToOpen: 2,
		OpenTimeout:    time.Hour,
		IsSuccessful:   func(err error) bool { return errors.Is(err, errNotFound) },
	})
	ctx := context.Background()
	for range 20 {
		if err := b.Do(ctx, func(context.Context) error { return errNotFound }); !errors.Is(err, errNotFound) {
			t.Fatalf("the miss itself must reach the caller, got %v", err)
		}
	}
	if got := b.State(ctx); got != breaker.Closed {
		t.Fatalf("misses opened the breaker: %s", got)
	}
	// And a miss between failures resets the run, as a success does.
	_ = b.Do(ctx, fail)
	_ = b.Do(ctx, func(context.Context) error { return errNotFound })
	_ = b.Do(ctx, fail)
	if got := b.State(ctx); got != breaker.Closed {
		t.Fatalf("state %s, want closed", got)
	}
	_ = b.Do(ctx, fail)
	if got := b.State(ctx); got != breaker.Open {
		t.Fatalf("state %s after 2 failures in a row, want open", got)
	}
}

func TestCancelledCallersAreNotCounted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.breaker(t, "auth", breaker.Settings{FailuresToOpen: 3, OpenTimeout: time.Hour})
	ctx := context.Background()
	_ = b.Do(ctx, fail)
	_ = b.Do(ctx, fail)

	// Callers that go away: neither failures (the breaker would open) nor
	// successes (the run of two failures would be reset).
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()
	for range 10 {
		err := b.Do(cancelled, func(ctx context.Context) error { return ctx.Err() })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want the caller's cancellation", err)
		}
		_ = b.Do(expired, func(ctx context.Context) error { return ctx.Err() })
		// A dependency that reports a cancellation of its own (the caller's
		// context is still live) is not counted either.
		_ = b.Do(ctx, func(context.Context) error { return context.Canceled })
	}
	if got := b.State(ctx); got != breaker.Closed {
		t.Fatalf("cancelled calls were counted as failures: %s", got)
	}
	_ = b.Do(ctx, fail)
	if got := b.State(ctx); got != breaker.Open {
		t.Fatalf("cancelled calls were counted as successes: state %s after the third failure", got)
	}
}

func TestCallTimeoutIsAFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.breaker(t, "redis", breaker.Settings{FailuresToOpen: 2, OpenTimeout: time.Hour, CallTimeout: 10 * time.Millisecond})
	ctx := context.Background()
	slow := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for range 2 {
		if err := b.Do(ctx, slow); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the call timeout", err)
		}
	}
	if got := b.State(ctx); got != breaker.Open {
		t.Fatalf("timeouts did not open the breaker: %s", got)
	}
}

func TestHalfOpenProbeClosesOrReopens(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.breaker(t, "customer", breaker.Settings{FailuresToOpen: 1, OpenTimeout: 20 * time.Millisecond, HalfOpenMax: 1})
	ctx := context.Background()

	_ = b.Do(ctx, fail)
	waitState(t, b, breaker.HalfOpen)
	// A failed probe opens it again.
	if err := b.Do(ctx, fail); !errors.Is(err, errDown) {
		t.Fatalf("probe: %v", err)
	}
	if got := b.State(ctx); got != breaker.Open {
		t.Fatalf("state %s after a failed probe, want open", got)
	}
	waitState(t, b, breaker.HalfOpen)

	// While the one probe is in flight, other calls are refused.
	inProbe, release := make(chan struct{}), make(chan struct{})
	probeDone := make(chan error)
	go func() {
		probeDone <- b.Do(ctx, func(context.Context) error { close(inProbe); <-release; return nil })
	}()
	<-inProbe
	if err := b.Do(ctx, succeed); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("second call during the probe: %v, want ErrOpen", err)
	}
	close(release)
	if err := <-probeDone; err != nil {
		t.Fatal(err)
	}
	if got := b.State(ctx); got != breaker.Closed {
		t.Fatalf("state %s after a good probe, want closed", got)
	}
}

func TestCancelledProbeFreesTheSlot(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.breaker(t, "auth", breaker.Settings{FailuresToOpen: 1, OpenTimeout: 10 * time.Millisecond})
	ctx := context.Background()
	_ = b.Do(ctx, fail)
	waitState(t, b, breaker.HalfOpen)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_ = b.Do(cancelled, func(ctx context.Context) error { return ctx.Err() })
	if got := b.State(ctx); got != breaker.HalfOpen {
		t.Fatalf("a cancelled probe changed the state to %s", got)
	}
	if err := b.Do(ctx, succeed); err != nil {
		t.Fatalf("the next probe was refused: %v", err)
	}
	if got := b.State(ctx); got != breaker.Closed {
		t.Fatalf("state %s, want closed", got)
	}
}

func TestPanicIsAFailureAndPropagates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.breaker(t, "auth", breaker.Settings{FailuresToOpen: 1, OpenTimeout: time.Hour})
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the original panic", r)
			}
		}()
		_ = b.Do(context.Background(), func(context.Context) error { panic("boom") })
	}()
	if got := b.State(context.Background()); got != breaker.Open {
		t.Fatalf("state %s after a panic, want open", got)
	}
}

func TestCallReturnsTheResult(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.breaker(t, "redis", breaker.Settings{})
	got, err := breaker.Call(context.Background(), b, func(context.Context) (string, error) { return "value", nil })
	if err != nil || got != "value" {
		t.Fatalf("Call = %q, %v", got, err)
	}
	var nilBreaker *breaker.Breaker
	got, err = breaker.Call(context.Background(), nilBreaker, func(context.Context) (string, error) { return "unguarded", nil })
	if err != nil || got != "unguarded" {
		t.Fatalf("nil breaker: Call = %q, %v", got, err)
	}
	if nilBreaker.State(context.Background()) != breaker.Closed {
		t.Fatal("a nil breaker must report closed")
	}
}

func TestStateChangesAreVisible(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	b := h.breaker(t, "redis", breaker.Settings{FailuresToOpen: 2, OpenTimeout: 10 * time.Millisecond})
	h.breaker(t, "auth", breaker.Settings{})

	ctx, span := tp.Tracer("test").Start(context.Background(), "request")
	_ = b.Do(ctx, fail)
	_ = b.Do(ctx, fail)
	span.End()

	// /readyz details.
	states := h.reg.States()
	if states["redis"] != "open" || states["auth"] != "closed" || len(states) != 2 {
		t.Fatalf("States() = %v", states)
	}

	// The span of the call that tripped it carries the event.
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	var found bool
	for _, ev := range spans[0].Events() {
		if ev.Name != "breaker.state_change" {
			continue
		}
		attrs := attribute.NewSet(ev.Attributes...)
		to, _ := attrs.Value("breaker.to")
		name, _ := attrs.Value("breaker.name")
		if to.AsString() == "open" && name.AsString() == "redis" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no breaker.state_change event to open on the span: %+v", spans[0].Events())
	}

	// The log.
	if logs := h.logs.String(); !strings.Contains(logs, `"msg":"circuit breaker state changed"`) ||
		!strings.Contains(logs, `"breaker":"redis"`) || !strings.Contains(logs, `"to":"open"`) {
		t.Fatalf("state change not logged: %s", logs)
	}

	// The gauge: 2 while open.
	if v := gaugeValue(t, h.reader, "redis"); v != 2 {
		t.Fatalf("bff.breaker.state{redis} = %d, want 2", v)
	}
	if v := gaugeValue(t, h.reader, "auth"); v != 0 {
		t.Fatalf("bff.breaker.state{auth} = %d, want 0", v)
	}
	waitState(t, b, breaker.HalfOpen)
	if v := gaugeValue(t, h.reader, "redis"); v != 1 {
		t.Fatalf("bff.breaker.state{redis} = %d, want 1 (half-open)", v)
	}
	_ = b.Do(context.Background(), succeed)
	if v := gaugeValue(t, h.reader, "redis"); v != 0 {
		t.Fatalf("bff.breaker.state{redis} = %d, want 0 (closed)", v)
	}
	if logs := h.logs.String(); !strings.Contains(logs, `"to":"half-open"`) || !strings.Contains(logs, `"to":"closed"`) {
		t.Fatalf("recovery not logged: %s", logs)
	}
	if n := counterValue(t, h.reader, "bff.breaker.transitions", attribute.String("to", "open")); n != 1 {
		t.Fatalf("transitions to open = %d, want 1", n)
	}
}

func TestRejectionsAreCounted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.breaker(t, "customer", breaker.Settings{FailuresToOpen: 1, OpenTimeout: time.Hour})
	_ = b.Do(context.Background(), fail)
	for range 4 {
		_ = b.Do(context.Background(), succeed)
	}
	if n := counterValue(t, h.reader, "bff.breaker.rejections", attribute.String("breaker", "customer")); n != 4 {
		t.Fatalf("rejections = %d, want 4", n)
	}
}

func TestRegistryRefusesDuplicatesAndEmptyNames(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if _, err := h.reg.New("redis", breaker.Settings{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.reg.New("redis", breaker.Settings{}); err == nil {
		t.Fatal("a second breaker of the same name was accepted")
	}
	if _, err := h.reg.New("", breaker.Settings{}); err == nil {
		t.Fatal("an empty name was accepted")
	}
	reg, err := breaker.NewRegistry(nil, nil) // no logger, no metrics: still works
	if err != nil {
		t.Fatal(err)
	}
	b, err := reg.New("x", breaker.Settings{FailuresToOpen: 1})
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Do(context.Background(), fail)
	if reg.States()["x"] != "open" {
		t.Fatalf("States() = %v", reg.States())
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.breaker(t, "redis", breaker.Settings{FailuresToOpen: 3, OpenTimeout: time.Millisecond})
	var calls atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				_ = b.Do(context.Background(), func(context.Context) error {
					calls.Add(1)
					if (g+i)%3 == 0 {
						return errDown
					}
					return nil
				})
				_ = h.reg.States()
			}
		}()
	}
	wg.Wait()
	if calls.Load() == 0 {
		t.Fatal("no call went through")
	}
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
}

func collect(t *testing.T, r *sdkmetric.ManualReader, name string) metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m.Data
			}
		}
	}
	return nil
}

func gaugeValue(t *testing.T, r *sdkmetric.ManualReader, breakerName string) int64 {
	t.Helper()
	g, ok := collect(t, r, "bff.breaker.state").(metricdata.Gauge[int64])
	if !ok {
		t.Fatal("no bff.breaker.state gauge")
	}
	for _, dp := range g.DataPoints {
		if v, _ := dp.Attributes.Value("breaker"); v.AsString() == breakerName {
			return dp.Value
		}
	}
	t.Fatalf("no bff.breaker.state point for %s", breakerName)
	return -1
}

func counterValue(t *testing.T, r *sdkmetric.ManualReader, name string, want attribute.KeyValue) int64 {
	t.Helper()
	s, ok := collect(t, r, name).(metricdata.Sum[int64])
	if !ok {
		return 0
	}
	var n int64
	for _, dp := range s.DataPoints {
		if v, ok := dp.Attributes.Value(want.Key); ok && v == want.Value {
			n += dp.Value
		}
	}
	return n
}
