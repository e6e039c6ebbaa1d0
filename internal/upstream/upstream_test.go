package upstream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestRetriesOnlyIdempotentCalls(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := New("svc", Options{BaseURL: srv.URL, Timeout: 5 * time.Second}, time.Second)

	err := c.Do(context.Background(), Call{Method: http.MethodGet, Path: "/x", Idempotent: true})
	if !errors.Is(err, ErrUnavailable) || hits.Load() != maxAttempts {
		t.Fatalf("GET: err %v after %d attempts, want unavailable after %d", err, hits.Load(), maxAttempts)
	}
	hits.Store(0)
	err = c.Do(context.Background(), Call{Method: http.MethodPost, Path: "/x", Body: map[string]int{"a": 1}})
	if !errors.Is(err, ErrUnavailable) || hits.Load() != 1 {
		t.Fatalf("POST: err %v after %d attempts, want one attempt", err, hits.Load())
	}
}

func TestRefusedConnectionIsNotSent(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := New("svc", Options{BaseURL: "http://" + addr, Timeout: 2 * time.Second}, time.Second)
	err = c.Do(context.Background(), Call{Method: http.MethodPost, Path: "/x"})
	e, ok := errors.AsType[*Error](err)
	if !ok || !e.NotSent || !errors.Is(err, ErrUnavailable) || e.Service != "svc" {
		t.Fatalf("want an unavailable, not-sent *Error of svc, got %#v", err)
	}
}

func TestOutboundDurationByUpstream(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	c := New("customer", Options{BaseURL: srv.URL, Timeout: time.Second, MeterProvider: mp}, time.Second)
	var out map[string]bool
	if err := c.Do(context.Background(), Call{Method: http.MethodGet, Path: "/x", Out: &out}); err != nil || !out["ok"] {
		t.Fatalf("call: %v %v", err, out)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "http.client.request.duration" {
				continue
			}
			h := m.Data.(metricdata.Histogram[float64])
			for _, dp := range h.DataPoints {
				if v, ok := dp.Attributes.Value(attribute.Key("upstream")); ok && v.AsString() == "customer" && dp.Count == 1 {
					return
				}
			}
		}
	}
	t.Fatalf("no http.client.request.duration point with upstream=customer in %+v", rm)
}

func TestNewDefaultsTheTimeout(t *testing.T) {
	t.Parallel()
	if c := New("svc", Options{}, 3*time.Second); c.timeout != 3*time.Second {
		t.Errorf("timeout %s, want the default 3s", c.timeout)
	}
	if c := New("svc", Options{Timeout: time.Second}, 3*time.Second); c.timeout != time.Second {
		t.Errorf("timeout %s, want the configured 1s", c.timeout)
	}
}
