package customerclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/customer/httpapi"
)

func server(t *testing.T, h http.HandlerFunc) (*Client, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return New(Options{BaseURL: srv.URL, Timeout: 300 * time.Millisecond}), &hits
}

func TestCreateAndRead(t *testing.T) {
	t.Parallel()
	c, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/json" && r.Method == http.MethodPost {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/v1/customers/profile/create/":
			var body map[string]any
			_ = json.NewDecoder(r.Body).Decode(&body)
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"c1","user_id":"u1","city":"` + body["city"].(string) + `"}`))
		case "/api/v1/customers/check_profile_exists/":
			var body map[string]string
			_ = json.NewDecoder(r.Body).Decode(&body)
			if body["user_id"] == "u1" {
				_, _ = w.Write([]byte(`{"exists":true,"customer_id":"c1"}`))
				return
			}
			_, _ = w.Write([]byte(`{"exists":false,"customer_id":null}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"detail":"Customer profile not found."}`))
		}
	})
	p, err := c.CreateProfile(context.Background(), "tok", map[string]json.RawMessage{"city": json.RawMessage(`"Salem"`)})
	if err != nil || p.ID != "c1" || p.UserID != "u1" || !strings.Contains(string(p.Raw), `"city":"Salem"`) {
		t.Fatalf("create: %+v %v", p, err)
	}
	if e, err := c.ProfileExists(context.Background(), "tok", "u1"); err != nil || !e.Exists || *e.CustomerID != "c1" {
		t.Fatalf("exists: %+v %v", e, err)
	}
	if e, err := c.ProfileExists(context.Background(), "tok", ""); err != nil || e.Exists || e.CustomerID != nil {
		t.Fatalf("own: %+v %v", e, err)
	}
	_, err = c.Profile(context.Background(), "tok")
	var ce *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &ce) || ce.Detail != "Customer profile not found." {
		t.Fatalf("missing profile: %v", err)
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		h      http.HandlerFunc
		kind   error
		check  func(*Error) bool
		hits   int64 // 0: don't check
		create bool
	}{
		{"validation verbatim", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"postal_code":["Enter a valid US postal code."],"city":"bad"}`))
		}, ErrValidation, func(e *Error) bool {
			return e.Fields["postal_code"][0] == "Enter a valid US postal code." && e.Fields["city"][0] == "bad"
		}, 1, true},
		{"conflict", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(409) }, ErrConflict, nil, 1, true},
		{"throttled", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
		}, ErrRateLimited, func(e *Error) bool { return e.RetryAfter == 7*time.Second }, 1, true},
		{"5xx html page: a create is not retried", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(502)
			_, _ = w.Write([]byte("<html>bad gateway</html>"))
		}, ErrUnavailable, func(e *Error) bool { return e.Status == 502 && !e.NotSent }, 1, true},
		{"5xx: a read is retried", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }, ErrUnavailable, nil, 3, false},
		{"malformed answer", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"id":`)) }, ErrUnavailable, nil, 0, true},
		{"huge answer", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"id":"` + strings.Repeat("x", MaxResponseBytes) + `"}`))
		}, ErrUnavailable, func(e *Error) bool { return e.Detail == "answer too large" }, 0, true},
		{"slow answer", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}, ErrUnavailable, func(e *Error) bool { return errors.Is(e, context.DeadlineExceeded) && !e.NotSent }, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, hits := server(t, tc.h)
			var err error
			if tc.create {
				_, err = c.CreateProfile(context.Background(), "tok", map[string]json.RawMessage{})
			} else {
				_, err = c.Profile(context.Background(), "tok")
			}
			var ce *Error
			if !errors.Is(err, tc.kind) || !errors.As(err, &ce) || (tc.check != nil && !tc.check(ce)) {
				t.Fatalf("error %v (%+v), want kind %v", err, ce, tc.kind)
			}
			if tc.hits != 0 && hits.Load() != tc.hits {
				t.Fatalf("%d requests, want %d", hits.Load(), tc.hits)
			}
		})
	}
}

func TestRefusedConnectionIsNotSent(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c := New(Options{BaseURL: "http://" + addr, Timeout: time.Second})
	_, err = c.CreateProfile(context.Background(), "tok", nil)
	var ce *Error
	if !errors.As(err, &ce) || !ce.NotSent || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("refused: %v", err)
	}
}

func TestCustomerAndIncrementService(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		calls []string
	)
	c, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		calls = append(calls, r.Method+" "+r.URL.Path+" key="+r.Header.Get("Idempotency-Key")+" "+fmt.Sprint(body))
		n := len(calls)
		mu.Unlock()
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/customers/c1/":
			_, _ = w.Write([]byte(`{"id":"c1","user_id":"u1","total_services":0}`))
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/customers/c1/increment_service/":
			if r.Header.Get("Idempotency-Key") == "k1" && n == 2 {
				w.WriteHeader(http.StatusServiceUnavailable) // the first keyed attempt: retried
				return
			}
			_, _ = w.Write([]byte(`{"id":"c1","user_id":"u1","total_services":1}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	ctx := context.Background()
	if p, err := c.Customer(ctx, "tok", "c1"); err != nil || p.ID != "c1" || p.UserID != "u1" {
		t.Fatalf("customer: %+v %v", p, err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p, err := c.IncrementService(ctx, "tok", "c1", "k1", Service{ServiceType: "repair", PerformedAt: &at})
	if err != nil || !strings.Contains(string(p.Raw), `"total_services":1`) {
		t.Fatalf("increment with a key: %+v %v", p, err)
	}
	if _, err := c.Customer(ctx, "tok", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	mu.Lock()
	keyed := 0
	for _, cl := range calls {
		if strings.HasPrefix(cl, "POST /api/v1/customers/c1/increment_service/ key=k1 ") &&
			strings.Contains(cl, "performed_at:2026-01-02T03:04:05Z") && strings.Contains(cl, "service_type:repair") {
			keyed++
		}
	}
	if keyed != 2 {
		t.Fatalf("the keyed increment was sent %d times, want 2 (retried once after a 503): %q", keyed, calls)
	}
	calls = calls[:0]
	mu.Unlock()
	if _, err := c.IncrementService(ctx, "tok", "c1", "", Service{}); err != nil {
		t.Fatalf("increment without a key: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || calls[0] != "POST /api/v1/customers/c1/increment_service/ key= map[]" {
		t.Fatalf("increment without a key sent %q", calls)
	}
}

// TestProfileKeepsOnlyContractMembers: a member the customer service adds
// to a profile by mistake (an internal field, a secret) is not in Raw, so
// the BFF never passes it on; the allow-list is the customer service's Customer
// schema exactly; a clean document is kept byte for byte.
func TestProfileKeepsOnlyContractMembers(t *testing.T) {
	t.Parallel()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	schema := doc.Components.Schemas["Customer"].Properties
	if len(schema) != len(profileMembers) {
		t.Errorf("the Customer schema has %d members, the allow-list %d", len(schema), len(profileMembers))
	}
	for k := range schema {
		if !profileMembers[k] {
			t.Errorf("schema member %q is not kept", k)
		}
	}
	clean := `{"id":"c1","user_id":"u1","city":"Portland","notification_preferences":{"email":true}}`
	var p Profile
	if err := json.Unmarshal([]byte(clean), &p); err != nil || string(p.Raw) != clean || p.ID != "c1" || p.UserID != "u1" {
		t.Fatalf("clean document: %s %+v %v", p.Raw, p, err)
	}
	leaky := `{"id":"c1","user_id":"u1","city":"Portland","password_hash":"$argon2id$v=19$leak","internal_note":"ppppp"}`
	if err := json.Unmarshal([]byte(leaky), &p); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(p.Raw), "leak") || strings.Contains(string(p.Raw), "internal_note") || !strings.Contains(string(p.Raw), `"city":"Portland"`) {
		t.Fatalf("extra members passed on: %s", p.Raw)
	}
}

// TestProfileWithoutUser: ProfileWithoutUser asks GET profile/ with
// include_user=false, Profile without the parameter (the merged form); both
// read the same profile and map a 404 the same.
func TestProfileWithoutUser(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		queries []string
	)
	c, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Path+"?"+r.URL.RawQuery)
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"detail":"Customer profile not found."}`))
			return
		}
		_, _ = w.Write([]byte(`{"id":"c1","user_id":"u1","email":null}`))
	})
	ctx := context.Background()
	if p, err := c.ProfileWithoutUser(ctx, "tok"); err != nil || p.ID != "c1" || p.UserID != "u1" || string(p.Raw) != `{"id":"c1","user_id":"u1","email":null}` {
		t.Fatalf("without user: %+v %v", p, err)
	}
	if p, err := c.Profile(ctx, "tok"); err != nil || p.ID != "c1" {
		t.Fatalf("merged: %+v %v", p, err)
	}
	if _, err := c.ProfileWithoutUser(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no profile: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"/api/v1/customers/profile/?include_user=false", "/api/v1/customers/profile/?", "/api/v1/customers/profile/?include_user=false"}
	if !slices.Equal(queries, want) {
		t.Fatalf("requests %q, want %q", queries, want)
	}
}
