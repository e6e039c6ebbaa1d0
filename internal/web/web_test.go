package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func newTestEngine(t *testing.T) *gin.Engine {
	t.Helper()
	return NewEngine(EngineOptions{Service: "test"})
}

func do(t *testing.T, h http.Handler, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestRespondShapes(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	e.GET("/invalid", func(c *gin.Context) {
		Respond(c, Invalid(map[string][]string{"email": {"Enter a valid email address."}}))
	})
	e.GET("/throttled", func(c *gin.Context) {
		Respond(c, &Error{Code: CodeThrottled, Detail: "slow down", RetryAfter: 1500 * time.Millisecond})
	})
	e.GET("/internal", func(c *gin.Context) { Respond(c, errors.New("mongo: secret internal text")) })
	e.GET("/panic", func(c *gin.Context) { panic("boom") })
	e.GET("/extra", func(c *gin.Context) {
		Respond(c, &Error{Code: "registration_failed", Status: 502, Detail: "x", Extra: map[string]any{"compensated": true}})
	})

	cases := []struct {
		path   string
		status int
		want   map[string]any
		not    string
	}{
		{"/invalid", 400, map[string]any{"email": []any{"Enter a valid email address."}}, ""},
		{"/throttled", 429, map[string]any{"detail": "slow down", "code": "throttled"}, ""},
		{"/internal", 500, map[string]any{"detail": "A server error occurred.", "code": "error"}, "secret"},
		{"/panic", 500, map[string]any{"code": "error"}, "boom"},
		{"/extra", 502, map[string]any{"code": "registration_failed", "compensated": true}, ""},
		{"/nowhere", 404, map[string]any{"code": "not_found"}, ""},
	}
	for _, tc := range cases {
		w := do(t, e, "GET", tc.path, "", nil)
		if w.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.path, w.Code, tc.status)
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: body not JSON: %s", tc.path, w.Body)
		}
		for k, v := range tc.want {
			gb, _ := json.Marshal(body[k])
			wb, _ := json.Marshal(v)
			if !bytes.Equal(gb, wb) {
				t.Errorf("%s: %s = %s, want %s", tc.path, k, gb, wb)
			}
		}
		if tc.not != "" && strings.Contains(w.Body.String(), tc.not) {
			t.Errorf("%s: body leaks %q: %s", tc.path, tc.not, w.Body)
		}
		if w.Header().Get(RequestIDHeader) == "" {
			t.Errorf("%s: no X-Request-ID", tc.path)
		}
	}
	if got := do(t, e, "GET", "/throttled", "", nil).Header().Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2 (rounded up)", got)
	}
	if w := do(t, e, "POST", "/invalid", "", nil); w.Code != 405 {
		t.Errorf("wrong method: %d", w.Code)
	}
}

func TestRequestIDEchoed(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	e.GET("/x", func(c *gin.Context) { c.Status(204) })
	if got := do(t, e, "GET", "/x", "", map[string]string{RequestIDHeader: "abc-123"}).Header().Get(RequestIDHeader); got != "abc-123" {
		t.Errorf("request id = %q", got)
	}
}

func TestReadObject(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	e.POST("/obj", func(c *gin.Context) {
		obj, err := ReadObject(c, false)
		if err != nil {
			Respond(c, err)
			return
		}
		c.JSON(200, gin.H{"n": len(obj)})
	})
	big := `{"a":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	cases := []struct {
		name, body, ctype string
		status            int
	}{
		{"ok", `{"a":1,"b":"x"}`, "application/json", 200},
		{"charset", `{"a":1}`, "application/json; charset=utf-8", 200},
		{"empty", ``, "application/json", 400},
		{"malformed", `{"a":`, "application/json", 400},
		{"array", `[1,2]`, "application/json", 400},
		{"null", `null`, "application/json", 400},
		{"trailing", `{"a":1} {"b":2}`, "application/json", 400},
		{"too large", big, "application/json", 413},
		{"form", `a=1`, "application/x-www-form-urlencoded", 415},
	}
	for _, tc := range cases {
		w := do(t, e, "POST", "/obj", tc.body, map[string]string{"Content-Type": tc.ctype})
		if w.Code != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, w.Code, tc.status, w.Body)
		}
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	failing := errors.New("down")
	var dbErr error
	Health(e, []Check{{Name: "mongodb", Check: func(context.Context) error { return dbErr }}},
		func() map[string]any { return map[string]any{"breakers": map[string]string{"redis": "open"}} })
	if w := do(t, e, "GET", "/healthz", "", nil); w.Code != 200 {
		t.Fatalf("healthz %d", w.Code)
	}
	w := do(t, e, "GET", "/readyz", "", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"redis":"open"`) {
		t.Fatalf("readyz %d %s", w.Code, w.Body)
	}
	dbErr = failing
	w = do(t, e, "GET", "/readyz", "", nil)
	if w.Code != 503 || !strings.Contains(w.Body.String(), `"failing":["mongodb"]`) {
		t.Fatalf("readyz with db down: %d %s", w.Code, w.Body)
	}
}

func TestServerDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{Handler: h, Drain: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln) }()
	respc := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			respc <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		respc <- string(b)
	}()
	<-started
	cancel() // shutdown begins while the request is in flight
	select {
	case err := <-errc:
		t.Fatalf("server returned before the in-flight request finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if got := <-respc; got != "done" {
		t.Fatalf("in-flight request got %q", got)
	}
	if err := <-errc; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting after shutdown")
	}
}

func TestRunReportsTakenPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = (&Server{Addr: ln.Addr().String(), Handler: http.NotFoundHandler()}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("want a clear port-taken error, got %v", err)
	}
}

func TestClientIPIgnoresForwardedForByDefault(t *testing.T) {
	t.Parallel()
	e := newTestEngine(t)
	e.GET("/ip", func(c *gin.Context) { c.String(200, c.ClientIP()) })
	req := httptest.NewRequest("GET", "/ip", nil)
	req.RemoteAddr = "192.0.2.7:5555"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	if got := w.Body.String(); got != "192.0.2.7" {
		t.Errorf("ClientIP = %q, want the peer address: a spoofed X-Forwarded-For was believed", got)
	}
}

// A connection that never sends a request must not turn a clean shutdown
// into a drain error (net/http only calls such a connection idle after 5s);
// a request still running at the deadline must.
func TestDrainIgnoresConnectionsWithoutRequests(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	})
	errc := make(chan error, 1)
	go func() { errc <- (&Server{Handler: h, Drain: 300 * time.Millisecond}).Serve(ctx, ln) }()
	c, err := net.Dial("tcp", ln.Addr().String()) // connected, never sends a request
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // let the server accept it
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("shutdown with an idle new connection: %v", err)
	}

	// The same with a request still running: an error naming it.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { errc <- (&Server{Handler: h, Drain: 300 * time.Millisecond}).Serve(ctx2, ln2) }()
	go func() { _, _ = http.Get("http://" + ln2.Addr().String() + "/") }()
	<-started
	cancel2()
	err = <-errc
	close(release)
	if err == nil || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("shutdown with a running request: want a drain error, got %v", err)
	}
}
