package authclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// fakeJWT is a token whose payload carries exp (the client never verifies it).
func fakeJWT(n int, exp time.Time) string {
	p, _ := json.Marshal(map[string]any{"exp": exp.Unix(), "n": n})
	return "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(p) + ".sig"
}

func TestServiceTokensCacheAndRenewal(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Now()}
	var fetches atomic.Int32
	var fail atomic.Bool
	gate := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(fetches.Add(1))
		<-gate
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body["client_id"] != "bff" || body["client_secret"] != "s3cret" {
			http.Error(w, `{"detail":"Invalid client credentials."}`, http.StatusUnauthorized)
			return
		}
		if fail.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access":%q,"token_type":"Bearer","expires_in":300}`, fakeJWT(n, clock.now().Add(5*time.Minute)))
	}))
	defer srv.Close()
	ts := NewServiceTokens(New(Options{BaseURL: srv.URL}), "bff", "s3cret")
	ts.now = clock.now

	// Many concurrent callers, one fetch.
	var wg sync.WaitGroup
	toks := make([]string, 20)
	errs := make([]error, 20)
	for i := range toks {
		wg.Go(func() { toks[i], errs[i] = ts.Token(context.Background()) })
	}
	for fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] != toks[0] {
			t.Fatalf("caller %d: %q %v", i, toks[i], errs[i])
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for 20 concurrent callers, want 1", n)
	}
	// Still fresh at 3 minutes; renewed in the last fifth of its life.
	clock.add(3 * time.Minute)
	if tok, _ := ts.Token(context.Background()); tok != toks[0] || fetches.Load() != 1 {
		t.Fatal("a fresh token was renewed")
	}
	clock.add(61 * time.Second)
	second, err := ts.Token(context.Background())
	if err != nil || second == toks[0] || fetches.Load() != 2 {
		t.Fatalf("renewal: %q %v (fetches %d)", second, err, fetches.Load())
	}
	// A failed renewal falls back to the cached token while it is valid.
	clock.add(4*time.Minute + 5*time.Second)
	fail.Store(true)
	if tok, err := ts.Token(context.Background()); err != nil || tok != second {
		t.Fatalf("failed renewal: %q %v", tok, err)
	}
	// ...but not once it has expired.
	clock.add(time.Minute)
	if _, err := ts.Token(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("expired and renewal failing: %v", err)
	}
	fail.Store(false)
	// Invalidate forces a new fetch.
	third, _ := ts.Token(context.Background())
	ts.Invalidate(third)
	if fourth, _ := ts.Token(context.Background()); fourth == third {
		t.Fatal("Invalidate kept the token")
	}
	// Wrong credentials are an unauthorized error.
	bad := NewServiceTokens(New(Options{BaseURL: srv.URL}), "bff", "wrong")
	if _, err := bad.Token(context.Background()); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestServiceTokensWaitRespectsContext(t *testing.T) {
	t.Parallel()
	ts := NewServiceTokens(New(Options{BaseURL: "http://127.0.0.1:1"}), "bff", "s")
	ts.fetch <- struct{}{} // a fetch in progress
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ts.Token(ctx); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting with a cancelled context: %v", err)
	}
}

func TestUnverifiedExpiry(t *testing.T) {
	t.Parallel()
	exp := time.Unix(1_900_000_000, 0)
	if got, ok := unverifiedExpiry(fakeJWT(1, exp)); !ok || !got.Equal(exp) {
		t.Fatalf("got %v %v", got, ok)
	}
	for _, bad := range []string{"", "a.b", "a.!!!.c", "a." + base64.RawURLEncoding.EncodeToString([]byte(`{"exp":"soon"}`)) + ".c"} {
		if _, ok := unverifiedExpiry(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
