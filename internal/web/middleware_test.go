package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/baggage"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/acme/customer-platform/internal/logging"
	"github.com/acme/customer-platform/internal/testenv"
)

// requestCounts returns the count of http.server.request.duration by
// "method route status".
func requestCounts(t *testing.T, r *sdkmetric.ManualReader) map[string]uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok || m.Name != "http.server.request.duration" {
				continue
			}
			for _, dp := range h.DataPoints {
				method, _ := dp.Attributes.Value("http.request.method")
				route, _ := dp.Attributes.Value("http.route")
				status, _ := dp.Attributes.Value("http.response.status_code")
				out[method.String()+" "+route.String()+" "+status.String()] += dp.Count
			}
		}
	}
	return out
}

// The engine continues the caller's W3C trace context and baggage, writes
// one access line per request carrying the request id and the trace, gives
// lines logged inside the request the same, and counts requests by route
// (never the raw path) and status.
func TestTracingLoggingAndMetrics(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	reader := sdkmetric.NewManualReader()
	var logs testenv.LogBuffer
	e := NewEngine(EngineOptions{
		Service:        "test",
		Logger:         logging.New(&logs, slog.LevelInfo, "test"),
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	})
	var tenant string
	e.GET("/things/:id", func(c *gin.Context) {
		tenant = baggage.FromContext(c.Request.Context()).Member("tenant").Value()
		Logger(c).InfoContext(c.Request.Context(), "inside")
		c.JSON(http.StatusOK, gin.H{"id": c.Param("id")})
	})
	Health(e, nil, nil)

	const (
		tid    = "4bf92f3577b34da6a3ce929d0e0e4736"
		parent = "00f067aa0ba902b7"
	)
	w := do(t, e, http.MethodGet, "/things/a1b2", "", map[string]string{
		"traceparent": "00-" + tid + "-" + parent + "-01", "baggage": "tenant=acme", RequestIDHeader: "req-42",
	})
	if w.Code != http.StatusOK || tenant != "acme" {
		t.Fatalf("answer %d, baggage tenant %q", w.Code, tenant)
	}
	do(t, e, http.MethodGet, "/nowhere/someone@example.com", "", nil)
	do(t, e, http.MethodGet, "/healthz", "", nil)

	got := spans.GetSpans()
	if len(got) != 2 {
		t.Fatalf("%d spans, want the two API requests (not /healthz): %v", len(got), got)
	}
	sp := got[0]
	if sp.SpanContext.TraceID().String() != tid || sp.Parent.SpanID().String() != parent || !sp.Parent.IsRemote() {
		t.Fatalf("span %q does not continue the caller's trace: %s <- %s", sp.Name, sp.SpanContext.TraceID(), sp.Parent.SpanID())
	}

	var access, inside []map[string]any
	for _, l := range logs.Lines(t) {
		switch l["msg"] {
		case "request":
			access = append(access, l)
		case "inside":
			inside = append(inside, l)
		}
	}
	if len(access) != 2 || len(inside) != 1 {
		t.Fatalf("access lines %v, inside lines %v", access, inside)
	}
	for _, l := range []map[string]any{access[0], inside[0]} {
		if l["trace_id"] != tid || l["span_id"] != sp.SpanContext.SpanID().String() || l["request_id"] != "req-42" {
			t.Errorf("line without the request's ids: %v", l)
		}
	}
	a := access[0]
	if a["method"] != "GET" || a["route"] != "/things/:id" || a["status"] != float64(200) || a["duration_ms"] == nil {
		t.Errorf("access line: %v", a)
	}
	if r := access[1]; r["route"] != "unmatched" || r["status"] != float64(404) || r["request_id"] == "" || r["trace_id"] == nil {
		t.Errorf("access line of an unmatched path: %v", r)
	}
	if raw := logs.String(); strings.Contains(raw, "example.com") {
		t.Errorf("the raw path was logged: %s", raw)
	}

	counts := requestCounts(t, reader)
	for k, want := range map[string]uint64{"GET /things/:id 200": 1, "GET unmatched 404": 1, "GET /healthz 200": 1} {
		if counts[k] != want {
			t.Errorf("%s: %d requests counted, want %d (all: %v)", k, counts[k], want, counts)
		}
	}
	if len(counts) != 3 {
		t.Errorf("unexpected series: %v", counts)
	}
}
