package bffd

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// net/http replays a POST with an Idempotency-Key when its reused
// connection closes without an answer; the register call carries one, and
// its replay after the first attempt acted is answered "email exists"
// (issue 14: found by the system test). The BFF's upstream transport does
// not replay it: the server sees the request once and the caller gets the
// error, an unknown outcome the saga resolves.
func TestUpstreamTransportDoesNotReplayAPost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		transport http.RoundTripper
		wantPosts int32
	}{
		{"net/http's own transport replays it", http.DefaultTransport.(*http.Transport).Clone(), 2},
		{"the BFF's upstream transport does not", upstreamTransport(), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var posts atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					return // opens the keep-alive connection the POST reuses
				}
				posts.Add(1)
				// The service acted; the connection drops before the answer.
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					_ = conn.Close()
				}
			}))
			defer srv.Close()
			client := &http.Client{Transport: tc.transport}
			resp, err := client.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/auth/register/", strings.NewReader(`{"email":"a@b.co"}`))
			req.Header.Set("Idempotency-Key", "saga-id")
			if resp, err := client.Do(req); err == nil {
				_ = resp.Body.Close()
				t.Fatal("an answer to a dropped connection")
			}
			if n := posts.Load(); n != tc.wantPosts {
				t.Fatalf("the server saw %d POSTs, want %d", n, tc.wantPosts)
			}
		})
	}
}
