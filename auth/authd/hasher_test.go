package authd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/acme/customer-platform/auth"
)

// fakeHasher blocks each call until release is closed; busy is what Slots
// reports.
type fakeHasher struct {
	entered chan struct{}
	release chan struct{}
	busy    int
	err     error
}

var _ slotted = (*fakeHasher)(nil)

func (f *fakeHasher) wait() error {
	f.entered <- struct{}{}
	<-f.release
	return f.err
}
func (f *fakeHasher) Hash(context.Context, string) (string, error) { return "h", f.wait() }
func (f *fakeHasher) Verify(context.Context, string, string) (bool, bool, error) {
	return true, false, f.wait()
}
func (f *fakeHasher) VerifyDummy(context.Context, string) error { return f.wait() }
func (f *fakeHasher) Slots() (int, int)                         { return f.busy, 1 }

func gauges(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				out[m.Name] = d.DataPoints[0].Value
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					op, _ := dp.Attributes.Value("operation")
					oc, _ := dp.Attributes.Value("outcome")
					out[fmt.Sprintf("%s %s %s", m.Name, op.AsString(), oc.AsString())] = int64(dp.Count)
				}
			}
		}
	}
	return out
}

func TestTracedHasher(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewInMemoryExporter()
	f := &fakeHasher{entered: make(chan struct{}), release: make(chan struct{}), busy: 1}
	h, err := instrumentHasher(f, sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)), sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = h.Hash(context.Background(), "pw") })
	wg.Go(func() { _, _, _ = h.Verify(context.Background(), "pw", "h") })
	<-f.entered
	<-f.entered
	// Two calls inside, one slot busy: one waits.
	g := gauges(t, reader)
	if g["auth.password.hash.active"] != 1 || g["auth.password.hash.waiting"] != 1 || g["auth.password.hash.limit"] != 1 {
		t.Errorf("gauges while hashing: %v", g)
	}
	close(f.release)
	wg.Wait()

	f.err = fmt.Errorf("%w: %w", auth.ErrBusy, context.DeadlineExceeded)
	go func() { <-f.entered }()
	if err := h.VerifyDummy(context.Background(), "pw"); !errors.Is(err, auth.ErrBusy) {
		t.Fatalf("error not passed on: %v", err)
	}
	f.busy = 0
	g = gauges(t, reader)
	for k, want := range map[string]int64{
		"auth.password.hash.duration hash ok": 1, "auth.password.hash.duration verify ok": 1,
		"auth.password.hash.duration verify_dummy busy": 1, "auth.password.hash.waiting": 0, "auth.password.hash.active": 0,
	} {
		if g[k] != want {
			t.Errorf("%s = %d, want %d (%v)", k, g[k], want, g)
		}
	}
	names := map[string]string{}
	for _, s := range spans.GetSpans() {
		names[s.Name] = s.Status.Description
	}
	if len(names) != 3 || names["auth.password.verify_dummy"] != "busy" || names["auth.password.hash"] != "" {
		t.Errorf("spans: %v", names)
	}
}
