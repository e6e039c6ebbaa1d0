// Package faultproxy is a proxy for tests that stands between a client and
// one upstream address on the loopback interface and injects faults in the
// network path. As a TCP proxy it can pass, delay, cut or refuse
// connections; with HTTP rules it parses HTTP/1.1 requests and fails a
// chosen fraction of those matching a method and path: answering an error
// without forwarding, forwarding and then answering an error (the upstream
// acted but the client never learns), dropping the connection before or
// after forwarding, holding the request until the client gives up, or
// delaying the request or the answer.
package faultproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Action is what a matching HTTP rule does to a request.
type Action int

// Actions of a Rule.
const (
	// Fail answers Status (default 503) without forwarding the request.
	Fail Action = iota
	// FailAfter forwards the request, discards the upstream's answer and
	// answers Status (default 502): the upstream acted, the client cannot know.
	FailAfter
	// Drop closes the connection without forwarding the request.
	Drop
	// DropAfter forwards the request and closes the connection without
	// answering.
	DropAfter
	// Hang never forwards the request and never answers: the client times
	// out. The connection is closed after Delay (default: when the client
	// closes it).
	Hang
	// DelayRequest waits Delay, then forwards the request (even if the
	// client gave up meanwhile: a request in flight that lands late).
	DelayRequest
	// DelayResponse forwards the request, waits Delay, then answers.
	DelayResponse
)

// Rule selects requests and the fault injected into them.
type Rule struct {
	Method string // "" matches any method
	Path   string // a prefix of the request path; "" matches any
	// Fraction of the matching requests the fault is injected into
	// (0 or 1: all of them).
	Fraction float64
	Action   Action
	Status   int           // for Fail and FailAfter
	Delay    time.Duration // for Hang, DelayRequest and DelayResponse
}

func (r Rule) matches(req *http.Request) bool {
	return (r.Method == "" || strings.EqualFold(r.Method, req.Method)) && strings.HasPrefix(req.URL.Path, r.Path)
}

// Stats count what the proxy saw.
type Stats struct {
	Connections int64 // accepted
	Requests    int64 // HTTP requests parsed (HTTP rules set)
	Injected    int64 // HTTP requests a fault was injected into
}

// Proxy is a fault-injecting proxy to one upstream address.
type Proxy struct {
	target string
	addr   string

	mu       sync.Mutex
	ln       net.Listener
	refusing bool
	cutting  bool
	delay    time.Duration
	rules    []Rule
	record   bool
	seen     []http.Header
	rnd      *rand.Rand
	conns    map[net.Conn]struct{}
	closed   bool

	transport   *http.Transport
	connections atomic.Int64
	requests    atomic.Int64
	injected    atomic.Int64
	wg          sync.WaitGroup
}

// New starts a proxy to target (host:port) listening on a free loopback
// port. seed makes the choice of faulted requests reproducible.
func New(target string, seed uint64) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{
		target: target,
		addr:   ln.Addr().String(),
		ln:     ln,
		rnd:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		conns:  map[net.Conn]struct{}{},
		transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	p.serve(ln)
	return p, nil
}

// Addr is the proxy's address (host:port); it stays the same across
// Refuse and Pass.
func (p *Proxy) Addr() string { return p.addr }

// URL is http:// and the proxy's address.
func (p *Proxy) URL() string { return "http://" + p.addr }

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	return Stats{Connections: p.connections.Load(), Requests: p.requests.Load(), Injected: p.injected.Load()}
}

// Pass forwards everything again: it reopens the listener after Refuse and
// ends Cut, Delay and the HTTP rules.
func (p *Proxy) Pass() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutting, p.delay, p.rules = false, 0, nil
	if !p.refusing || p.closed {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("faultproxy: listen again on %s: %w", p.addr, err)
	}
	p.refusing, p.ln = false, ln
	p.serve(ln)
	return nil
}

// Refuse closes the listener, so new connections are refused, and cuts the
// open ones.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.refusing && p.ln != nil {
		_ = p.ln.Close()
		p.refusing = true
	}
	p.cutLocked()
}

// Cut closes every open connection, and every new one as soon as it is
// accepted, until Pass.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutting = true
	p.cutLocked()
}

// CutOpen closes the connections open now; new ones are served.
func (p *Proxy) CutOpen() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutLocked()
}

func (p *Proxy) cutLocked() {
	for c := range p.conns {
		_ = c.Close()
	}
}

// Delay holds every chunk of data by d, both ways (0: no delay).
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// SetRules parses HTTP on new connections and applies to each request the
// first matching rule whose fraction draw selects it (none: forward it). Connections already open keep
// their mode; call CutOpen to make clients reconnect.
func (p *Proxy) SetRules(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append([]Rule(nil), rules...)
}

// Record parses HTTP on new connections even without rules and keeps the
// header of every request (faulted ones too): Headers returns them, and
// Stats counts the requests. Connections already open keep their mode.
func (p *Proxy) Record() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.record = true
}

// Headers returns the headers of the requests recorded so far (see Record).
func (p *Proxy) Headers() []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]http.Header(nil), p.seen...)
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	if !p.refusing {
		_ = p.ln.Close()
		p.refusing = true
	}
	p.cutLocked()
	p.mu.Unlock()
	p.wg.Wait()
	p.transport.CloseIdleConnections()
}

func (p *Proxy) serve(ln net.Listener) {
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.connections.Add(1)
			p.mu.Lock()
			if p.cutting || p.closed {
				p.mu.Unlock()
				_ = c.Close()
				continue
			}
			p.conns[c] = struct{}{}
			httpMode := len(p.rules) > 0 || p.record
			p.mu.Unlock()
			p.wg.Go(func() {
				defer p.forget(c)
				if httpMode {
					p.serveHTTP(c)
				} else {
					p.pipe(c)
				}
			})
		}
	})
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) forget(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) currentDelay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}

// pipe copies bytes both ways, delayed as configured.
func (p *Proxy) pipe(client net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !p.track(up) {
		_ = up.Close()
		return
	}
	defer p.forget(up)
	done := make(chan struct{}, 2)
	closeBoth := func() { _ = client.Close(); _ = up.Close() }
	cp := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if d := p.currentDelay(); d > 0 {
					time.Sleep(d)
				}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					closeBoth()
					return
				}
			}
			if err != nil {
				if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
					_ = tc.CloseWrite() // pass the half-close on; the other way goes on
					return
				}
				closeBoth()
				return
			}
		}
	}
	go cp(up, client)
	go cp(client, up)
	<-done
	<-done
	closeBoth()
}

// pick returns the rule to apply to req, if any.
func (p *Proxy) pick(req *http.Request) (Rule, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if !r.matches(req) {
			continue
		}
		if r.Fraction > 0 && r.Fraction < 1 && p.rnd.Float64() >= r.Fraction {
			continue // not this one; a later rule may still apply
		}
		return r, true
	}
	return Rule{}, false
}

// serveHTTP reads requests off the client connection and forwards them,
// injecting the matching rules' faults.
func (p *Proxy) serveHTTP(client net.Conn) {
	br := bufio.NewReader(client)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		p.requests.Add(1)
		p.mu.Lock()
		if p.record {
			p.seen = append(p.seen, req.Header.Clone())
		}
		p.mu.Unlock()
		body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
		_ = req.Body.Close()
		if err != nil {
			return
		}
		rule, fault := p.pick(req)
		if fault {
			p.injected.Add(1)
		}
		keep, ok := p.handle(client, req, body, rule, fault)
		if !ok || !keep || req.Close {
			return
		}
	}
}

// handle answers one request; keep reports whether the connection stays
// open, ok whether it is still usable.
func (p *Proxy) handle(client net.Conn, req *http.Request, body []byte, rule Rule, fault bool) (keep, ok bool) {
	if fault {
		switch rule.Action {
		case Fail:
			return true, writeStatus(client, rule.Status, http.StatusServiceUnavailable) == nil
		case Drop:
			return false, false
		case Hang:
			if rule.Delay > 0 {
				_ = client.SetReadDeadline(time.Now().Add(rule.Delay))
			}
			_, _ = io.Copy(io.Discard, client) // until the client closes (or the deadline)
			return false, false
		case DelayRequest:
			time.Sleep(rule.Delay)
		}
	}
	resp, err := p.forward(req, body)
	if err != nil {
		return false, writeStatus(client, http.StatusBadGateway, http.StatusBadGateway) == nil
	}
	defer resp.Body.Close()
	if fault {
		switch rule.Action {
		case FailAfter:
			_, _ = io.Copy(io.Discard, resp.Body)
			return true, writeStatus(client, rule.Status, http.StatusBadGateway) == nil
		case DropAfter:
			_, _ = io.Copy(io.Discard, resp.Body)
			return false, false
		case DelayResponse:
			time.Sleep(rule.Delay)
		}
	}
	return true, resp.Write(client) == nil
}

func (p *Proxy) forward(req *http.Request, body []byte) (*http.Response, error) {
	out, err := http.NewRequest(req.Method, "http://"+p.target+req.URL.RequestURI(), strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	out.Header = req.Header.Clone()
	out.Header.Del("Connection")
	out.ContentLength = int64(len(body))
	return p.transport.RoundTrip(out)
}

func writeStatus(w io.Writer, status, def int) error {
	if status == 0 {
		status = def
	}
	body := fmt.Sprintf(`{"detail":"fault injected by the test proxy","code":"injected_%d"}`, status)
	_, err := fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
	return err
}
