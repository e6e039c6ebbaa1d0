package upstream

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestQueryValuesStayOutOfTelemetry: a call's query values (?email= is
// personal data) reach the upstream unchanged, but no span, span event or
// metric the client exports carries them: url.full records each value as
// REDACTED, also on a redirect's request.
func TestQueryValuesStayOutOfTelemetry(t *testing.T) {
	t.Parallel()
	const email = "pii.person+tag@example.com"
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.RawQuery)
		if r.URL.Path == "/old/" {
			http.Redirect(w, r, "/new/?page=2", http.StatusMovedPermanently)
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	c := New("auth", Options{BaseURL: srv.URL, Timeout: 5 * time.Second, TracerProvider: tp, MeterProvider: mp}, time.Second)

	var out map[string]bool
	q := url.Values{"email": {email}, "after": {"x"}}
	if err := c.Do(context.Background(), Call{Method: http.MethodGet, Path: "/api/auth/users/", Query: q, Out: &out, Idempotent: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(context.Background(), Call{Method: http.MethodGet, Path: "/old/", Query: url.Values{"email": {email}}, Out: &out}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != q.Encode() || got[1] != (url.Values{"email": {email}}).Encode() || got[2] != "page=2" {
		t.Fatalf("the upstream got queries %q", got)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	exported := fmt.Sprintf("%+v\n%+v", spans.GetSpans(), rm)
	for _, s := range []string{"pii.person", url.QueryEscape(email), "example.com"} {
		if strings.Contains(exported, s) {
			t.Fatalf("the exported telemetry carries %q:\n%s", s, exported)
		}
	}
	var full []string
	for _, sp := range spans.GetSpans() {
		for _, kv := range sp.Attributes {
			if kv.Key == "url.full" {
				full = append(full, kv.Value.String())
			}
		}
	}
	if len(full) != 3 || !strings.HasSuffix(full[0], "/api/auth/users/?after=REDACTED&email=REDACTED") || !strings.HasSuffix(full[2], "/new/?page=REDACTED") {
		t.Fatalf("url.full %q", full)
	}
}
