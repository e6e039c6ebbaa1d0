package balancer

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/testenv"
)

// backend is a test server that counts its requests and echoes the body
// with its name.
type backend struct {
	*httptest.Server
	name string
	hits atomic.Int64
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	be := &backend{name: name}
	be.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		be.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Name", name)
		_, _ = io.WriteString(w, name+" "+r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+string(body))
	}))
	t.Cleanup(be.Close)
	return be
}

func newBalancer(t *testing.T, backends ...string) *Balancer {
	t.Helper()
	b, err := New(backends...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func send(t *testing.T, method, url, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Requests go to the backends in turn, with their method, path, query,
// headers and body, and the answer names its backend.
func TestRoundRobin(t *testing.T) {
	t.Parallel()
	a, c := newBackend(t, "a"), newBackend(t, "c")
	b := newBalancer(t, a.URL, c.URL)
	var names []string
	for range 4 {
		status, body, h := send(t, http.MethodPost, b.URL()+"/p/?q=1", "hello")
		name := h.Get("X-Name")
		if status != http.StatusOK || body != name+" POST /p/?q=1 Bearer x hello" {
			t.Fatalf("answer %d %q", status, body)
		}
		if want := map[string]string{"a": a.Listener.Addr().String(), "c": c.Listener.Addr().String()}[name]; h.Get(BackendHeader) != want {
			t.Fatalf("%s answered, the header names %q", name, h.Get(BackendHeader))
		}
		names = append(names, name)
	}
	if strings.Join(names, "") != "acac" {
		t.Fatalf("backends in turn: %v", names)
	}
	if s := b.Stats(a.URL); s.Served != 2 || s.Refused != 0 || s.InFlight != 0 {
		t.Fatalf("stats of a: %+v", s)
	}
}

// A backend that refuses the connection is skipped: the request (and its
// body) goes to the next one; when every one refuses, 503.
func TestSkipsARefusingBackend(t *testing.T) {
	t.Parallel()
	down := closedAddr(t)
	a := newBackend(t, "a")
	b := newBalancer(t, down, a.URL)
	for range 3 {
		if status, body, _ := send(t, http.MethodPatch, b.URL()+"/x", `{"k":1}`); status != http.StatusOK || body != `a PATCH /x Bearer x {"k":1}` {
			t.Fatalf("with one backend down: %d %q", status, body)
		}
	}
	if s := b.Stats(down); s.Refused < 1 || s.Served != 0 {
		t.Fatalf("stats of the backend that is down: %+v", s)
	}
	a.Close()
	if status, _, _ := send(t, http.MethodGet, b.URL()+"/x", ""); status != http.StatusServiceUnavailable || b.AllDown() != 1 {
		t.Fatalf("with every backend down: %d, %d", status, b.AllDown())
	}
	c := newBackend(t, "c")
	b.Add(c.URL)
	if status, body, _ := send(t, http.MethodGet, b.URL()+"/x", ""); status != http.StatusOK || !strings.HasPrefix(body, "c ") {
		t.Fatalf("after adding a backend: %d %q", status, body)
	}
}

// A request the backend has not answered yet is in flight.
func TestInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { <-release }))
	t.Cleanup(slow.Close)
	b := newBalancer(t, slow.URL)
	answered := make(chan int)
	go func() {
		resp, err := http.Get(b.URL() + "/slow")
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	testenv.Eventually(t, 10*time.Second, testenv.Holds("one request in flight", func() bool { return b.Stats(slow.URL).InFlight == 1 }))
	close(release)
	if status := <-answered; status != http.StatusOK {
		t.Fatalf("answer %d", status)
	}
	if s := b.Stats(slow.URL); s.InFlight != 0 || s.Served != 1 {
		t.Fatalf("after the answer: %+v", s)
	}
}

// A backend that took the request and cut the connection may have acted:
// the request is not sent to another backend, the answer is 502.
func TestACutIsNotRetried(t *testing.T) {
	t.Parallel()
	var cut atomic.Int64
	cutter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		cut.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(cutter.Close)
	a := newBackend(t, "a")
	b := newBalancer(t, cutter.URL, a.URL)
	status, _, h := send(t, http.MethodPost, b.URL()+"/x", "body")
	if status != http.StatusBadGateway || cut.Load() != 1 || a.hits.Load() != 0 || h.Get(BackendHeader) != cutter.Listener.Addr().String() {
		t.Fatalf("a cut connection: %d, cutter %d, a %d, header %q", status, cut.Load(), a.hits.Load(), h.Get(BackendHeader))
	}
	if s := b.Stats(cutter.URL); s.Failed != 1 {
		t.Fatalf("stats of the cutter: %+v", s)
	}
}
