// Package balancer is a small round-robin HTTP load balancer for tests: it
// listens on the loopback interface and forwards each request to the next
// of its backends, as a load balancer in front of a service's replicas
// would. A backend that refuses the connection (a replica that is down) is
// skipped and the request goes to the next one, since nothing reached it;
// any other failure of a backend (a connection cut while the request was
// in flight, a replica killed mid-request) is answered 502, since the
// backend may have acted. The one exception is Go's transport's own: a
// request it deems replayable (GET, HEAD, or one carrying an
// Idempotency-Key) whose reused connection broke is sent again, and so may
// reach the next backend, as a load balancer's retry of idempotent
// requests would. Each answer names the backend that gave it
// (BackendHeader).
package balancer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BackendHeader is the answer's header naming the backend (host:port) that
// gave it.
const BackendHeader = "X-Balancer-Backend"

// maxBody bounds the request bodies the balancer buffers (to send a
// request again to the next backend); the services refuse 1 MiB.
const maxBody = 8 << 20

// hopHeaders are the headers of one connection, not forwarded.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// Stats count what one backend got.
type Stats struct {
	Served  int64 // requests it answered
	Refused int64 // connections it refused (the request went to the next backend)
	Failed  int64 // requests it took and did not answer (answered 502)
	// InFlight are the requests sent to it that it has not answered yet
	// (a test kills a replica while one is in flight).
	InFlight int64
}

// Balancer is a running round-robin balancer.
type Balancer struct {
	srv       *http.Server
	ln        net.Listener
	transport *http.Transport
	next      atomic.Uint64
	allDown   atomic.Int64

	mu       sync.Mutex
	backends []string
	stats    map[string]*Stats
}

// New starts a balancer in front of backends (host:port or http:// URLs),
// on a free loopback port.
func New(backends ...string) (*Balancer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Balancer{ln: ln, stats: map[string]*Stats{}, transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
	for _, be := range backends {
		b.Add(be)
	}
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

// Addr is the balancer's host:port.
func (b *Balancer) Addr() string { return b.ln.Addr().String() }

// URL is the balancer's base URL.
func (b *Balancer) URL() string { return "http://" + b.Addr() }

// Add puts one more backend (host:port or an http:// URL) in the rotation.
func (b *Balancer) Add(backend string) {
	backend = strings.TrimSuffix(strings.TrimPrefix(backend, "http://"), "/")
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stats[backend] == nil {
		b.backends = append(b.backends, backend)
		b.stats[backend] = &Stats{}
	}
}

// Backends are the backends in rotation order.
func (b *Balancer) Backends() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.backends...)
}

// Stats are the counts of a backend (host:port or URL).
func (b *Balancer) Stats(backend string) Stats {
	backend = strings.TrimSuffix(strings.TrimPrefix(backend, "http://"), "/")
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.stats[backend]; s != nil {
		return Stats{Served: atomic.LoadInt64(&s.Served), Refused: atomic.LoadInt64(&s.Refused), Failed: atomic.LoadInt64(&s.Failed),
			InFlight: atomic.LoadInt64(&s.InFlight)}
	}
	return Stats{}
}

// AllDown counts the requests every backend refused (answered 503).
func (b *Balancer) AllDown() int64 { return b.allDown.Load() }

// Close stops the balancer and closes its connections.
func (b *Balancer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx)
	_ = b.srv.Close()
	b.transport.CloseIdleConnections()
}

// ServeHTTP forwards r to the backends in turn from the next one, until
// one takes the connection.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "balancer: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	b.mu.Lock()
	backends := append([]string(nil), b.backends...)
	b.mu.Unlock()
	if len(backends) == 0 {
		http.Error(w, "balancer: no backends", http.StatusServiceUnavailable)
		return
	}
	first := int(b.next.Add(1)-1) % len(backends)
	for i := range backends {
		backend := backends[(first+i)%len(backends)]
		st := b.statsOf(backend)
		atomic.AddInt64(&st.InFlight, 1)
		resp, err := b.transport.RoundTrip(outbound(r, backend, body))
		if err != nil {
			atomic.AddInt64(&st.InFlight, -1)
			if refused(err) {
				atomic.AddInt64(&st.Refused, 1)
				continue
			}
			atomic.AddInt64(&st.Failed, 1)
			w.Header().Set(BackendHeader, backend)
			http.Error(w, fmt.Sprintf("balancer: backend %s: %v", backend, err), http.StatusBadGateway)
			return
		}
		relay(w, resp, backend)
		atomic.AddInt64(&st.InFlight, -1)
		atomic.AddInt64(&st.Served, 1)
		return
	}
	b.allDown.Add(1)
	http.Error(w, "balancer: every backend refused the connection", http.StatusServiceUnavailable)
}

func (b *Balancer) statsOf(backend string) *Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats[backend]
}

// outbound is r addressed to backend, with its buffered body.
func outbound(r *http.Request, backend string, body []byte) *http.Request {
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.Host, out.RequestURI = "http", backend, "", ""
	out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if len(body) == 0 {
		out.Body = http.NoBody
	}
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	return out
}

// relay writes the backend's answer.
func relay(w http.ResponseWriter, resp *http.Response, backend string) {
	defer resp.Body.Close()
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.Header().Set(BackendHeader, backend)
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// refused reports whether err is a failure to connect: the backend never
// saw the request.
func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
