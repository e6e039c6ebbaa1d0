package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// hconn is one keep-alive HTTP/1.1 connection of a load worker. It writes
// prepared request bytes and reads the answer with net/http's parser,
// without http.Transport's per-connection goroutines and channels: on a
// 2-core machine the load generator shares the CPUs with the system under
// test, and a cheap client keeps the measured ratios from being diluted by
// the client's own cost.
type hconn struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
	body []byte
}

// reply is an HTTP answer; body is valid until the connection's next call.
type reply struct {
	status int
	cache  string // the X-Cache header
	body   []byte
}

func newHConn(addr string) *hconn { return &hconn{addr: addr} }

// do sends one request and reads its answer. A broken connection is closed
// (and dialled again by the next call); the request is not retried.
func (h *hconn) do(req []byte) (reply, error) {
	if h.conn == nil {
		c, err := net.DialTimeout("tcp", h.addr, 5*time.Second)
		if err != nil {
			return reply{}, err
		}
		h.conn = c
		if h.br == nil {
			h.br = bufio.NewReaderSize(c, 16<<10)
		} else {
			h.br.Reset(c)
		}
	}
	if err := h.conn.SetDeadline(time.Now().Add(requestDeadline)); err != nil {
		h.close()
		return reply{}, err
	}
	if _, err := h.conn.Write(req); err != nil {
		h.close()
		return reply{}, err
	}
	resp, err := http.ReadResponse(h.br, nil)
	if err != nil {
		h.close()
		return reply{}, err
	}
	h.body = h.body[:0]
	if resp.ContentLength > 0 {
		h.body = slices.Grow(h.body, int(resp.ContentLength))[:resp.ContentLength]
		_, err = io.ReadFull(resp.Body, h.body)
	} else if resp.ContentLength < 0 {
		h.body, err = readAllInto(h.body, resp.Body)
	}
	_ = resp.Body.Close()
	if err != nil || resp.Close {
		h.close()
	}
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, cache: resp.Header.Get("X-Cache"), body: h.body}, nil
}

func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, 4096)
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func (h *hconn) close() {
	if h.conn != nil {
		_ = h.conn.Close()
		h.conn = nil
	}
}

// getRequest is the bytes of a GET with a bearer token.
func getRequest(addr, path, token string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nAuthorization: Bearer " + token + "\r\nUser-Agent: cmd/bench\r\nAccept: application/json\r\n\r\n")
}

// postRequest is the bytes of a JSON POST.
func postRequest(addr, path string, body []byte, header map[string]string) []byte {
	return jsonRequest(http.MethodPost, addr, path, "", body, header)
}

// jsonRequest is the bytes of a request with a JSON body (none when body
// is nil) and, when token is set, a bearer token.
func jsonRequest(method, addr, path, token string, body []byte, header map[string]string) []byte {
	b := []byte(method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: cmd/bench\r\nAccept: application/json\r\n")
	if token != "" {
		b = append(b, "Authorization: Bearer "+token+"\r\n"...)
	}
	if body != nil {
		b = append(b, "Content-Type: application/json\r\n"...)
	}
	b = append(b, "Content-Length: "+strconv.Itoa(len(body))+"\r\n"...)
	for k, v := range header {
		b = append(b, k+": "+v+"\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// wrongAnswer is an answer that is not the one a side measures (another
// status, another X-Cache): not counted, but not a reason to back off.
type wrongAnswer struct{ msg string }

func (w wrongAnswer) Error() string { return w.msg }

// expect checks an answer's status and, when cache is set, its X-Cache.
func expect(r reply, status int, cache string) error {
	if r.status != status {
		return wrongAnswer{fmt.Sprintf("status %d, want %d: %.200s", r.status, status, r.body)}
	}
	if cache != "" && r.cache != cache {
		return wrongAnswer{fmt.Sprintf("X-Cache %q, want %q", r.cache, cache)}
	}
	return nil
}

// op is one operation of a load worker: an HTTP call on the worker's own
// connection, a database query, a password hash.
type op func(ctx context.Context) error

// side is one of the things a figure compares: a set of workers, each
// running its operation in a loop, measured over several rounds.
type side struct {
	name    string
	workers []op
	closers []func()
	// minOps extends a round past its window until that many operations
	// finished (a slow operation is measured at least that often); maxOps
	// ends a round after that many (0: no limit), for sides that consume
	// what another side produced (the accounts a deletion removes).
	minOps, maxOps int
	rounds         []round
	// cpu is the CPU time each watched process spent during the side's
	// measured rounds.
	cpu map[string]time.Duration
}

// cpuWatch is a process whose CPU time is accounted to the side whose
// round it was spent in.
type cpuWatch struct {
	name string
	pid  int
}

func cpuTimes(ws []cpuWatch) []time.Duration {
	out := make([]time.Duration, len(ws))
	for i, w := range ws {
		out[i], _ = cpuTime(w.pid) // a process that is gone counts nothing more
	}
	return out
}

// round is one measured window of one side.
type round struct {
	n      int // operations completed inside the window
	window time.Duration
	lat    []time.Duration // latency of each of them
	// span is the time from the window's first completion to its last.
	// The round starts with nothing in flight and stops counting at its
	// end, so the operations' first pass through the system (the fill)
	// and the work cut by the end belong to no completion; between the
	// first completion and the last the system runs in its steady state,
	// which is what a throughput is about. after counts the completions
	// after the first (summed over rounds, as span is).
	span  time.Duration
	after int
	// drained counts the operations finished after the window's end; their
	// CPU time is in the round's, so CPU per operation counts them too.
	drained int
	errs    int
	lastErr error
}

// rate is the steady-state throughput: the completions after the first,
// over the time they took; with fewer than two, completions per window.
func (r round) rate() float64 {
	if r.after > 0 && r.span > 0 {
		return float64(r.after) / r.span.Seconds()
	}
	return float64(r.n) / r.window.Seconds()
}

// requestDeadline bounds one request of a load connection.
const requestDeadline = 30 * time.Second

// errNoRequest is a worker's operation that had nothing to send (a
// deletion with no account left to delete).
var errNoRequest = errors.New("no request to send")

// httpSide is a side of conns workers, each with its own keep-alive
// connection to addr, sending next(i) (i counts the side's operations; nil:
// nothing to send, a failed operation) and checking every answer.
func httpSide(name, addr string, conns int, next func(i uint64) []byte, check func(reply) error) *side {
	s := &side{name: name}
	var seq atomic.Uint64
	for range conns {
		c := newHConn(addr)
		s.workers = append(s.workers, func(context.Context) error {
			req := next(seq.Add(1) - 1)
			if req == nil {
				return errNoRequest
			}
			r, err := c.do(req)
			if err != nil {
				return err
			}
			return check(r)
		})
		s.closers = append(s.closers, c.close)
	}
	return s
}

func (s *side) close() {
	for _, c := range s.closers {
		c()
	}
}

// run runs every worker of the side for d and returns the round: the
// operations that completed inside the window, with their latencies. An
// operation still running at the end is waited for (so it cannot steal
// the CPU from the next round) but not counted, unless the side's minOps
// are not reached yet: then the window lasts until they are.
func (s *side) run(ctx context.Context, d time.Duration) round {
	start := time.Now()
	deadline := start.Add(d)
	type result struct {
		lat         []time.Duration
		first, last time.Time // of its completions inside the window
		drained     bool
		errs        int
		lastErr     error
	}
	results := make([]result, len(s.workers))
	var started, finished atomic.Int64
	var wg sync.WaitGroup
	for i, w := range s.workers {
		wg.Go(func() {
			r := &results[i]
			r.lat = make([]time.Duration, 0, 256)
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) && finished.Load() >= int64(s.minOps) {
					return
				}
				if s.maxOps > 0 && started.Add(1) > int64(s.maxOps) {
					return
				}
				err := w(ctx)
				t1 := time.Now()
				if n := finished.Add(1); t1.After(deadline) && n > int64(s.minOps) {
					r.drained = true
					return
				}
				if err != nil {
					r.errs++
					r.lastErr = err
					if _, answered := errors.AsType[wrongAnswer](err); !answered {
						// A side that cannot reach its server must not spin.
						select {
						case <-ctx.Done():
						case <-time.After(10 * time.Millisecond):
						}
					}
					continue
				}
				r.lat = append(r.lat, t1.Sub(t0))
				if r.first.IsZero() {
					r.first = t1
				}
				r.last = t1
			}
		})
	}
	wg.Wait()
	rd := round{window: max(d, time.Since(start))}
	var first, last time.Time
	for _, r := range results {
		rd.n += len(r.lat)
		if r.drained {
			rd.drained++
		}
		if len(r.lat) > 0 {
			if first.IsZero() || r.first.Before(first) {
				first = r.first
			}
			if r.last.After(last) {
				last = r.last
			}
		}
		rd.lat = append(rd.lat, r.lat...)
		rd.errs += r.errs
		if r.lastErr != nil {
			rd.lastErr = r.lastErr
		}
	}
	if rd.n > 0 {
		rd.span, rd.after = last.Sub(first), rd.n-1
	}
	return rd
}

// interleave measures sides side by side: a warm-up window of each, then
// rounds of d each, alternating the order every round (A B, B A, A B...)
// so that whatever the machine does meanwhile hits every side alike.
func interleave(ctx context.Context, sides []*side, rounds int, d, warm time.Duration, watch []cpuWatch, progress func(string)) error {
	if warm > 0 {
		for _, s := range sides {
			s.run(ctx, warm)
		}
	}
	order := slices.Clone(sides)
	for r := range rounds {
		for _, s := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			before := cpuTimes(watch)
			s.rounds = append(s.rounds, s.run(ctx, d))
			after := cpuTimes(watch)
			if s.cpu == nil {
				s.cpu = map[string]time.Duration{}
			}
			for i, w := range watch {
				s.cpu[w.name] += after[i] - before[i]
			}
		}
		progress(fmt.Sprintf("round %d/%d", r+1, rounds))
		slices.Reverse(order)
	}
	return ctx.Err()
}

// total sums a side's rounds.
func (s *side) total() round {
	var t round
	for _, r := range s.rounds {
		t.n += r.n
		t.drained += r.drained
		t.window += r.window
		t.span += r.span
		t.after += r.after
		t.lat = append(t.lat, r.lat...)
		t.errs += r.errs
		if r.lastErr != nil {
			t.lastErr = r.lastErr
		}
	}
	return t
}

// maxFailures is the share of failed or unexpected operations above which
// a side's figure is not valid.
const maxFailures = 0.01

// check reports a side too many of whose operations failed (or were
// answered otherwise than the side measures): its figure is not valid.
func (s *side) check() error { return s.checkWithin(maxFailures) }

// checkWithin is check with another tolerated share.
func (s *side) checkWithin(share float64) error {
	t := s.total()
	if t.n == 0 {
		return fmt.Errorf("%s: no operation completed (%d failed; last: %v)", s.name, t.errs, t.lastErr)
	}
	if float64(t.errs) > share*float64(t.n+t.errs) {
		return fmt.Errorf("%s: %d of %d operations failed (last: %v)", s.name, t.errs, t.errs+t.n, t.lastErr)
	}
	return nil
}

// failures describes a side's failed operations, or "".
func (s *side) failures() string {
	t := s.total()
	if t.errs == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %d of %d not counted (last: %v)", s.name, t.errs, t.errs+t.n, t.lastErr)
}
