package faultproxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// upstream is an HTTP server counting the requests that reached it.
func upstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("echo:" + r.URL.Path + ":" + string(b)))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func newProxy(t *testing.T, srv *httptest.Server) *Proxy {
	t.Helper()
	p, err := New(strings.TrimPrefix(srv.URL, "http://"), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Post(url, "text/plain", strings.NewReader("body"))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestPassDelayCutRefuse(t *testing.T) {
	t.Parallel()
	srv, hits := upstream(t)
	p := newProxy(t, srv)
	c := &http.Client{Timeout: 2 * time.Second}

	status, body, err := get(c, p.URL()+"/a")
	if err != nil || status != 200 || body != "echo:/a:body" {
		t.Fatalf("pass: %d %q %v", status, body, err)
	}

	p.Delay(150 * time.Millisecond)
	start := time.Now()
	if _, _, err := get(c, p.URL()+"/b"); err != nil {
		t.Fatalf("delay: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("delayed request took %v, want at least the delay", d)
	}

	p.Cut()
	before := hits.Load()
	if _, _, err := get(&http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}, p.URL()+"/c"); err == nil {
		t.Fatal("cut: request succeeded")
	}
	if hits.Load() != before {
		t.Fatal("cut: the request reached the upstream")
	}

	p.Refuse()
	_, err = net.DialTimeout("tcp", p.Addr(), time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("refuse: dial error %v, want connection refused", err)
	}

	if err := p.Pass(); err != nil {
		t.Fatal(err)
	}
	status, _, err = get(&http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}, p.URL()+"/d")
	if err != nil || status != 200 {
		t.Fatalf("pass again: %d %v", status, err)
	}
}

func TestHTTPRules(t *testing.T) {
	t.Parallel()
	srv, hits := upstream(t)
	p := newProxy(t, srv)
	// No pooled connections: after CutOpen a reused one would fail the POST.
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

	p.SetRules(Rule{Method: "POST", Path: "/fail", Action: Fail, Status: 503})
	status, _, err := get(c, p.URL()+"/fail/x")
	if err != nil || status != 503 || hits.Load() != 0 {
		t.Fatalf("fail: %d %v, upstream hits %d (want 503 and none)", status, err, hits.Load())
	}
	status, body, err := get(c, p.URL()+"/other")
	if err != nil || status != 200 || body != "echo:/other:body" || hits.Load() != 1 {
		t.Fatalf("non-matching request: %d %q %v", status, body, err)
	}

	p.SetRules(Rule{Path: "/after", Action: FailAfter})
	p.CutOpen()
	status, _, err = get(c, p.URL()+"/after")
	if err != nil || status != 502 || hits.Load() != 2 {
		t.Fatalf("fail after: %d %v, hits %d (want 502, and the upstream reached)", status, err, hits.Load())
	}

	p.SetRules(Rule{Path: "/drop", Action: Drop})
	p.CutOpen()
	if _, _, err := get(c, p.URL()+"/drop"); err == nil || hits.Load() != 2 {
		t.Fatalf("drop: err %v hits %d", err, hits.Load())
	}

	p.SetRules(Rule{Path: "/hang", Action: Hang})
	p.CutOpen()
	short := &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if _, _, err := get(short, p.URL()+"/hang"); err == nil || hits.Load() != 2 {
		t.Fatalf("hang: err %v hits %d (want a timeout and no upstream hit)", err, hits.Load())
	}

	p.SetRules(Rule{Path: "/late", Action: DelayRequest, Delay: 300 * time.Millisecond})
	p.CutOpen()
	if _, _, err := get(short, p.URL()+"/late"); err == nil {
		t.Fatal("delayed request: want a client timeout")
	}
	deadline := time.Now().Add(3 * time.Second)
	for hits.Load() != 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if hits.Load() != 3 {
		t.Fatalf("the delayed request never landed: hits %d", hits.Load())
	}
}

func TestFraction(t *testing.T) {
	t.Parallel()
	srv, hits := upstream(t)
	p := newProxy(t, srv)
	p.SetRules(Rule{Path: "/", Fraction: 0.2, Action: Fail})
	c := &http.Client{Timeout: 2 * time.Second}
	failed := 0
	const n = 400
	for range n {
		status, _, err := get(c, p.URL()+"/x")
		if err != nil {
			t.Fatal(err)
		}
		if status == 503 {
			failed++
		}
	}
	if failed < n/10 || failed > n*3/10 {
		t.Fatalf("%d of %d requests failed, want about a fifth", failed, n)
	}
	if int(hits.Load()) != n-failed || p.Stats().Injected != int64(failed) || p.Stats().Requests != n {
		t.Fatalf("hits %d, stats %+v, failed %d", hits.Load(), p.Stats(), failed)
	}
}

func TestRecord(t *testing.T) {
	t.Parallel()
	srv, hits := upstream(t)
	p := newProxy(t, srv)
	p.Record()
	c := &http.Client{}
	req, _ := http.NewRequest(http.MethodGet, p.URL()+"/a", nil)
	req.Header.Set("Traceparent", "00-one")
	if resp, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	// Faulted requests are recorded too, and rules apply on the connection
	// already open: it parses HTTP.
	p.SetRules(Rule{Path: "/b", Action: Fail, Status: 500})
	if status, _, err := get(c, p.URL()+"/b"); err != nil || status != 500 {
		t.Fatalf("faulted request: %d %v", status, err)
	}
	hs := p.Headers()
	if len(hs) != 2 || hs[0].Get("Traceparent") != "00-one" || p.Stats().Requests != 2 || hits.Load() != 1 {
		t.Fatalf("recorded %v, stats %+v, %d reached the upstream", hs, p.Stats(), hits.Load())
	}
}
