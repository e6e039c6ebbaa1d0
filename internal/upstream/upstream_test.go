package upstream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
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

// net/http replays a request whose reused connection closed before an
// answer when it deems the request idempotent, and it deems a POST with an
// Idempotency-Key header idempotent (Transport's documentation). The
// register call carries one (the registration key), and its replay after
// the first attempt acted is answered "email exists" (issue 14: found by
// the system test). A call the client does not mark Idempotent is sent
// once, whatever its headers and whatever transport the caller passes; the
// caller gets the error, an unknown outcome. An Idempotent call is still
// retried, as the client means it to be.
func TestNonIdempotentCallsAreNotReplayed(t *testing.T) {
	t.Parallel()
	// dropper counts the POSTs it reads and cuts each one's connection
	// before answering: the service acted, the answer was lost. A GET
	// opens the keep-alive connection the POST then reuses.
	dropper := func(posts *atomic.Int32) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				return
			}
			posts.Add(1)
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				_ = conn.Close()
			}
		}))
	}
	register := Call{Method: http.MethodPost, Path: "/api/auth/register/", Header: map[string]string{"Idempotency-Key": "saga-id"},
		Body: map[string]string{"email": "a@b.co"}}

	t.Run("net/http alone replays it", func(t *testing.T) {
		t.Parallel()
		var posts atomic.Int32
		srv := dropper(&posts)
		defer srv.Close()
		client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/auth/register/", strings.NewReader(`{"email":"a@b.co"}`))
		req.Header.Set("Idempotency-Key", "saga-id")
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
		}
		if n := posts.Load(); n != 2 {
			t.Fatalf("the server saw %d POSTs, want net/http's replay (2)", n)
		}
	})
	for _, tc := range []struct {
		name      string
		transport http.RoundTripper // nil: upstream's default
	}{
		{"the default transport", nil},
		{"a transport of the caller's", http.DefaultTransport.(*http.Transport).Clone()},
	} {
		t.Run("a non-idempotent POST through "+tc.name+" is sent once", func(t *testing.T) {
			t.Parallel()
			var posts atomic.Int32
			srv := dropper(&posts)
			defer srv.Close()
			c := New("auth", Options{BaseURL: srv.URL, Timeout: 5 * time.Second, Transport: tc.transport}, time.Second)
			if err := c.Do(context.Background(), Call{Method: http.MethodGet, Path: "/", Idempotent: true}); err != nil {
				t.Fatal(err)
			}
			err := c.Do(context.Background(), register)
			if e, ok := errors.AsType[*Error](err); !ok || !errors.Is(err, ErrUnavailable) || e.NotSent {
				t.Fatalf("want an unavailable *Error that may have been sent, got %v", err)
			}
			if n := posts.Load(); n != 1 {
				t.Fatalf("the server saw %d POSTs, want 1", n)
			}
		})
	}
	t.Run("an idempotent POST is retried", func(t *testing.T) {
		t.Parallel()
		var posts atomic.Int32
		srv := dropper(&posts)
		defer srv.Close()
		c := New("customer", Options{BaseURL: srv.URL, Timeout: 5 * time.Second}, time.Second)
		call := register
		call.Idempotent = true
		if err := c.Do(context.Background(), call); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("want unavailable, got %v", err)
		}
		if n := posts.Load(); n < maxAttempts {
			t.Fatalf("the server saw %d POSTs, want at least the client's %d attempts", n, maxAttempts)
		}
	})
}
