package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/config"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.999, 100 * time.Millisecond}, {1, 100 * time.Millisecond}, {0.001, time.Millisecond}} {
		if got := percentile(lat, tc.q); got != tc.want {
			t.Errorf("percentile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of no samples is not 0")
	}
}

// fixedSide is a side whose rounds are given.
func fixedSide(name string, rounds ...round) *side { return &side{name: name, rounds: rounds} }

func msec(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestRatios(t *testing.T) {
	t.Parallel()
	a := fixedSide("a", round{n: 80, window: time.Second, lat: []time.Duration{msec(2), msec(4), msec(6)}},
		round{n: 90, window: time.Second, lat: []time.Duration{msec(3), msec(5), msec(7)}})
	b := fixedSide("b", round{n: 100, window: time.Second, lat: []time.Duration{msec(1), msec(2), msec(3)}},
		round{n: 100, window: time.Second, lat: []time.Duration{msec(2), msec(4), msec(6)}})
	c := fixedSide("c", round{n: 1, window: time.Second, lat: []time.Duration{msec(4)}},
		round{n: 1, window: time.Second, lat: []time.Duration{msec(1)}})

	v, per := throughputRatio(a, b)
	if math.Abs(v-0.85) > 1e-9 || len(per) != 2 || math.Abs(per[0]-0.8) > 1e-9 || math.Abs(per[1]-0.9) > 1e-9 {
		t.Errorf("throughput ratio %v %v, want 0.85 [0.8 0.9]", v, per)
	}
	// The denominator is the slower of b and c, round by round and overall.
	v, per = latencyRatio(0.5, a, b, c)
	// Overall p50: a 4ms (of 2..7), b 2ms (of 1,2,2,3,4,6), c 1ms (of 1,4): 4/2.
	if v != 2 || len(per) != 2 || per[0] != 1 || per[1] != 1.25 {
		t.Errorf("latency ratio %v %v, want 2 [1 1.25]", v, per)
	}
	if v, _ := throughputRatio(a, fixedSide("empty")); !math.IsNaN(v) {
		t.Errorf("ratio to an empty side: %v, want NaN", v)
	}
}

func TestFigureMet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		f    figure
		want bool
	}{
		{figure{value: 0.8, target: 0.8}, true},
		{figure{value: 0.79, target: 0.8}, false},
		{figure{value: 1.3, target: 1.3, atMost: true}, true},
		{figure{value: 1.31, target: 1.3, atMost: true}, false},
		{figure{value: math.NaN(), target: 1.3, atMost: true}, false},
		{figure{value: 0.9, target: 0.8, err: errors.New("failed")}, false},
	} {
		if got := tc.f.met(); got != tc.want {
			t.Errorf("%+v met = %v, want %v", tc.f, got, tc.want)
		}
	}
}

// TestHConn drives the load generator's connection against a real server:
// bodies with and without Content-Length, the X-Cache header, keep-alive
// reuse, and a fresh connection after the server closes one.
func TestHConn(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	big := strings.Repeat("x", 10_000)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			w.Header().Set("X-Cache", "HIT")
			_, _ = io.WriteString(w, `{"ok":true}`)
		case "/chunked": // larger than the server buffers: no Content-Length
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, big)
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		case "/post":
			b, _ := io.ReadAll(r.Body)
			w.WriteHeader(http.StatusCreated)
			_, _ = fmt.Fprintf(w, "%s|%s|%s", r.Header.Get("Authorization"), r.Header.Get("Idempotency-Key"), b)
		default:
			http.NotFound(w, r)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	c := newHConn(addr)
	t.Cleanup(c.close)

	for range 3 {
		r, err := c.do(getRequest(addr, "/small", "tok"))
		if err != nil || r.status != 200 || r.cache != "HIT" || string(r.body) != `{"ok":true}` {
			t.Fatalf("/small: %+v %v", r, err)
		}
	}
	r, err := c.do(getRequest(addr, "/chunked", "tok"))
	if err != nil || r.status != 200 || string(r.body) != big {
		t.Fatalf("/chunked: %d, %d bytes, %v", r.status, len(r.body), err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 4 keep-alive requests, want 1", n)
	}
	if r, err := c.do(getRequest(addr, "/close", "tok")); err != nil || string(r.body) != "bye" {
		t.Fatalf("/close: %+v %v", r, err)
	}
	r, err = c.do(postRequest(addr, "/post", []byte(`{"a":1}`), map[string]string{"Idempotency-Key": "k1"}))
	if err != nil || r.status != http.StatusCreated || string(r.body) != `|k1|{"a":1}` {
		t.Fatalf("/post: %d %q %v", r.status, r.body, err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want a second one after the server closed the first", n)
	}
	if err := expect(reply{status: 404, body: []byte("nope")}, 200, ""); err == nil {
		t.Fatal("a 404 passed as a 200")
	} else if _, ok := errors.AsType[wrongAnswer](err); !ok {
		t.Fatalf("a wrong status is not a wrongAnswer: %T", err)
	}
	if err := expect(reply{status: 200, cache: "MISS"}, 200, "HIT"); err == nil {
		t.Fatal("a MISS passed as a HIT")
	}
}

// TestInterleave checks the order of the rounds (A B, then B A, then A B:
// as runs of operations, a b a b), that the operations inside a window are
// counted, and that wrong answers are told apart and reported.
func TestInterleave(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var ops []string
	mk := func(name string, fail error) *side {
		s := &side{name: name}
		s.workers = append(s.workers, func(ctx context.Context) error {
			mu.Lock()
			ops = append(ops, name)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			return fail
		})
		return s
	}
	a, b := mk("a", nil), mk("b", wrongAnswer{`X-Cache "MISS", want "HIT"`})
	if err := interleave(context.Background(), []*side{a, b}, 3, 20*time.Millisecond, 0, nil, func(string) {}); err != nil {
		t.Fatal(err)
	}
	var runs []string
	for _, o := range ops {
		if len(runs) == 0 || runs[len(runs)-1] != o {
			runs = append(runs, o)
		}
	}
	if strings.Join(runs, " ") != "a b a b" {
		t.Errorf("order of the rounds: %v, want a b a b (A B, B A, A B)", runs)
	}
	if len(a.rounds) != 3 || len(b.rounds) != 3 {
		t.Fatalf("rounds: a %d, b %d, want 3 each", len(a.rounds), len(b.rounds))
	}
	if a.total().n == 0 || a.check() != nil || a.failures() != "" {
		t.Fatalf("side a: %d operations, check %v", a.total().n, a.check())
	}
	if b.total().n != 0 || b.total().errs == 0 || b.check() == nil || !strings.Contains(b.failures(), "X-Cache") {
		t.Fatalf("side b answered only wrong answers: n %d, errs %d, check %v", b.total().n, b.total().errs, b.check())
	}
}

// TestRunInProcess is the smoke test of the whole benchmark: the system in
// this process, tiny windows, cheap Argon2id. It checks that every figure
// is measured and the table is printed; it asserts no timing.
func TestRunInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole system")
	}
	t.Parallel()
	var stdout, stderr bytes.Buffer
	env := config.FromMap(map[string]string{"ARGON2_MEMORY_KIB": "256", "ARGON2_ITERATIONS": "1"})
	args := []string{"-in-process", "-rounds=1", "-round=300ms", "-warm=100ms", "-reg-rounds=1", "-reg-round=500ms",
		"-users=4", "-conns=4", "-light=1", "-records=40", "-small=10", "-seed-conc=2",
		"-scale-rounds=1", "-scale-round=50ms", "-scale-warm=0s", "-scale-min=1"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx, args, env, strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	t.Log(out)
	for _, want := range []string{"machine:", "setup:", "services run inside the benchmark's process", "targets met:",
		"5. latency under load", "cached GET /api/bff/me/ (HIT)", "GET /api/bff/me/ (MISS)", "POST /api/bff/register/",
		"CPU time per operation", "seeding:  large stack, 40 customers", "seeding:  small stack, 10 customers",
		"7. hot paths at 10 and at 40 customers", "customer GET profile/", "idempotency store GetKey",
		"customer GET stats/ (staff, scope all)", "Lura-style gateway"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	// Every ratio has a measured value and a verdict.
	for _, n := range allFigures {
		if n == 5 {
			continue
		}
		re := regexp.MustCompile(fmt.Sprintf(`(?m)^%d  .*?  (\d+\.\d\d|n/a)  +[≥≤] \d+\.\d\d  +(yes|no|INVALID)`, n))
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Errorf("figure %d is missing from the table", n)
			continue
		}
		if m[1] == "n/a" {
			t.Errorf("figure %d has no measured value", n)
		}
	}
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	o, err := parseOptions(nil, config.FromMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.figures) != len(allFigures) || o.records != 10_000 || o.small != 100 || o.argon2.MemoryKiB != 19*1024 || o.argon2.Iterations != 2 || o.hashConc < 1 {
		t.Fatalf("defaults: %+v", o)
	}
	for _, bad := range [][]string{{"-figures=10"}, {"-records=0"}, {"-rounds=0"}, {"-conns=0"}, {"extra"}} {
		if _, err := parseOptions(bad, config.FromMap(nil), io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := parseOptions(nil, config.FromMap(map[string]string{"ARGON2_ITERATIONS": "0"}), io.Discard); err == nil {
		t.Error("ARGON2_ITERATIONS=0 accepted")
	}
}

func TestCheckTolerance(t *testing.T) {
	t.Parallel()
	s := fixedSide("s", round{n: 97, errs: 3, window: time.Second, lastErr: wrongAnswer{"X-Cache \"HIT\", want \"MISS\""}})
	if s.check() == nil {
		t.Error("3 % of wrong answers passed the 1 % tolerance")
	}
	if err := s.checkWithin(0.05); err != nil {
		t.Errorf("3 %% of wrong answers failed a 5 %% tolerance: %v", err)
	}
	if n := s.failures(); !strings.Contains(n, "3 of 100 not counted") {
		t.Errorf("failures() = %q", n)
	}
	if fixedSide("empty").check() == nil {
		t.Error("a side without any completed operation passed")
	}
}

// A round's throughput is its steady state: the completions after the
// first over the time between the first and the last, so neither the
// operations' first pass through an empty system nor the work cut by the
// window's end weighs on it. Summed over rounds the same way.
func TestRateIsTheSteadyState(t *testing.T) {
	t.Parallel()
	r := round{n: 3, window: time.Second, span: 600 * time.Millisecond, after: 2}
	if got := r.rate(); math.Abs(got-2/0.6) > 1e-9 {
		t.Fatalf("rate %.3f/s, want %.3f", got, 2/0.6)
	}
	if got := (round{n: 1, window: 2 * time.Second}).rate(); got != 0.5 {
		t.Fatalf("one completion in 2 s: rate %.3f/s, want 0.5", got)
	}
	s := fixedSide("s", r, round{n: 5, window: time.Second, span: 400 * time.Millisecond, after: 4})
	if got := s.total().rate(); math.Abs(got-6/1.0) > 1e-9 {
		t.Fatalf("total rate %.3f/s, want 6 (6 completions after the first of each round, in 1 s)", got)
	}

	// A worker whose operations take 300 ms: 3 of them end inside a
	// second on an idle machine, the fourth is cut. Its steady rate is at
	// most 1 / 0.3 s however late the scheduler wakes it, and the cut
	// operation is waited for but not counted.
	slow := &side{name: "slow", workers: []op{func(context.Context) error {
		time.Sleep(300 * time.Millisecond)
		return nil
	}}}
	got := slow.run(context.Background(), time.Second)
	if len(got.lat) != got.n || got.drained > 1 || got.span > time.Second || (got.n > 0 && got.after != got.n-1) {
		t.Fatalf("round %+v", got)
	}
	if got.n >= 2 && (got.rate() > 1/0.3+1e-9 || got.rate() < 1) {
		t.Fatalf("rate %.3f/s for 300 ms operations, want at most %.3f", got.rate(), 1/0.3)
	}
}
