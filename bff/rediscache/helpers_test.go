package rediscache_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/breaker"
	"github.com/acme/customer-platform/bff/rediscache"
	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/redisconn"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

func TestMain(m *testing.M) { os.Exit(systest.Main(m)) }

// fakeOrigin is a hand-written fake of the origin views: its body names the
// user and a version the test can change, and it counts its loads.
type fakeOrigin struct {
	ViewFn  func(ctx context.Context, userID, token string) ([]byte, bff.CacheStatus, error)
	loads   atomic.Int64
	version atomic.Int64
}

var _ bff.Views = (*fakeOrigin)(nil)

// holdFirstLoad makes f's first load read the origin (its version then),
// say so on reading, and wait for release before it returns; later loads
// run through. release may be called more than once, and is called when
// the test ends.
func (f *fakeOrigin) holdFirstLoad(t *testing.T) (reading <-chan struct{}, release func()) {
	read, held := make(chan struct{}), make(chan struct{})
	var first, released sync.Once
	release = func() { released.Do(func() { close(held) }) }
	t.Cleanup(release)
	f.ViewFn = func(_ context.Context, userID, _ string) ([]byte, bff.CacheStatus, error) {
		body := f.body(userID)
		isFirst := false
		first.Do(func() { isFirst = true }) // not the wait: Do holds the others until it returns
		if isFirst {
			close(read)
			<-held
		}
		return body, bff.CacheBypass, nil
	}
	return read, release
}

func (f *fakeOrigin) View(ctx context.Context, userID, token string) ([]byte, bff.CacheStatus, error) {
	f.loads.Add(1)
	if f.ViewFn != nil {
		return f.ViewFn(ctx, userID, token)
	}
	return f.body(userID), bff.CacheBypass, nil
}

func (f *fakeOrigin) Invalidate(context.Context, string) {}

func (f *fakeOrigin) body(userID string) []byte {
	return fmt.Appendf(nil, `{"user":{"id":%q,"version":%d},"profile":null}`, userID, f.version.Load())
}

// env is one cache over a real Redis with its own telemetry.
type env struct {
	redis    *embedded.Redis
	rdb      redis.UniversalClient
	origin   *fakeOrigin
	cache    *rediscache.Cache
	breakers *breaker.Registry
	breaker  *breaker.Breaker
	reader   *sdkmetric.ManualReader
	meter    *sdkmetric.MeterProvider
	spans    *tracetest.SpanRecorder
	tp       *sdktrace.TracerProvider
}

type envOptions struct {
	opts        rediscache.Options
	breaker     breaker.Settings
	redisURL    string // default: the test's own Redis
	sharedRedis *embedded.Redis
}

func newEnv(t testing.TB, eo envOptions) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real Redis: not in the fast tier (-short)")
	}
	e := &env{origin: &fakeOrigin{}, reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	if eo.sharedRedis != nil {
		e.redis = eo.sharedRedis
	} else {
		e.redis = testenv.Redis(t)
	}
	url := eo.redisURL
	if url == "" {
		url = e.redis.URL
	}
	rdb, err := redisconn.Open(url, redisconn.Options{})
	testenv.Must(t, err, "redis client")
	t.Cleanup(func() { _ = rdb.Close() })
	e.rdb = rdb
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(e.reader))
	e.meter = mp
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))
	e.tp = tp
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()); _ = tp.Shutdown(context.Background()) })
	e.breakers, err = breaker.NewRegistry(nil, mp)
	testenv.Must(t, err, "breaker registry")
	bs := eo.breaker
	if bs.FailuresToOpen == 0 {
		bs = rediscache.BreakerSettings()
		bs.OpenTimeout = 50 * time.Millisecond
	}
	e.breaker, err = e.breakers.New("redis", bs)
	testenv.Must(t, err, "breaker")
	o := eo.opts
	if o.Timeout == 0 {
		// Generous: these tests are not about slowness, and a loaded CI
		// machine running them with -race must not time Redis calls out.
		o.Timeout = 2 * time.Second
	}
	o.Breaker = e.breaker
	o.MeterProvider = mp
	o.TracerProvider = tp
	e.cache, err = rediscache.New(rdb, e.origin, o)
	testenv.Must(t, err, "cache")
	return e
}

func (e *env) view(t testing.TB, userID string) ([]byte, bff.CacheStatus) {
	t.Helper()
	body, status, err := e.cache.View(context.Background(), userID, "token-of-"+userID)
	if err != nil {
		t.Fatalf("View(%s): %v", userID, err)
	}
	return body, status
}

// counter sums a counter's points whose attribute key has value.
func (e *env) counter(t testing.TB, name, key, value string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := e.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is a %T", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				if v, ok := dp.Attributes.Value(attribute.Key(key)); ok && v.AsString() == value {
					n += dp.Value
				}
			}
		}
	}
	return n
}

// stallProxy forwards TCP to a target and can stall: while stalled it
// accepts and holds connections but passes no bytes, so every Redis call
// through it runs into its timeout (a slow or partitioned Redis).
type stallProxy struct {
	ln      net.Listener
	target  string
	stalled atomic.Bool
	closed  atomic.Bool
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newStallProxy(t testing.TB, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	testenv.Must(t, err, "proxy listen")
	p := &stallProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) url() string { return "redis://" + p.ln.Addr().String() + "/0" }

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

func (p *stallProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for n > 0 && p.stalled.Load() {
			if p.closed.Load() {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallProxy) close() {
	p.closed.Store(true)
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
