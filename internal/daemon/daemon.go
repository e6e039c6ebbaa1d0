// Package daemon holds what the three services' Run functions share: the
// options a caller (cmd/<service>, cmd/stack, an end-to-end test) passes in,
// and serving the API and metrics listeners together until shutdown.
package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sync/errgroup"

	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/telemetry"
	"github.com/acme/customer-platform/internal/web"
)

// Options are what a caller of a service's Run provides besides its Config.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	// Lookup is the environment the OTEL_* variables are read from (nil: the process environment).
	Lookup config.Lookup
	// SpanExporter, when set, receives every span synchronously (tests).
	SpanExporter sdktrace.SpanExporter
	// Ready, when set, is called once the service listens.
	Ready func(Addrs)
}

// Addrs are the bound addresses of a running service.
type Addrs struct {
	API     net.Addr
	Metrics net.Addr // nil when metrics are served on the API listener
}

// Log returns the options' logger or the default one.
func (o Options) Log() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// Version is the module version of the running binary ("devel" in a plain build).
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Telemetry sets up the service's providers from the options.
func (o Options) Telemetry(ctx context.Context, service, environment string) (*telemetry.Telemetry, error) {
	return telemetry.Setup(ctx, telemetry.Options{
		Service:      service,
		Version:      Version(),
		Environment:  environment,
		SpanExporter: o.SpanExporter,
		Lookup:       o.Lookup,
	})
}

// Start begins a service's Run: it logs "starting" with the version and the
// configuration (whose secrets print redacted) and sets up the service's
// telemetry, which the caller closes.
func (o Options) Start(ctx context.Context, service, environment string, cfg any) (*telemetry.Telemetry, error) {
	o.Log().Info("starting", "version", Version(), "config", cfg)
	return o.Telemetry(ctx, service, environment)
}

// Serve runs the API server (and, when metricsAddr is non-empty, a separate
// metrics server with /metrics) until ctx is cancelled, then drains both.
// When metricsAddr is empty, /metrics is expected on the API engine.
func Serve(ctx context.Context, o Options, api *web.Server, metricsAddr string, metrics http.Handler) error {
	var (
		mu    sync.Mutex
		addrs Addrs
		want  = 1
		got   int
	)
	ready := func() {
		got++
		if got == want && o.Ready != nil {
			o.Ready(addrs)
		}
	}
	api.Logger = o.Log()
	api.OnListen = func(a net.Addr) { mu.Lock(); defer mu.Unlock(); addrs.API = a; ready() }
	servers := []*web.Server{api}
	if metricsAddr != "" {
		want = 2
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics)
		servers = append(servers, &web.Server{
			Addr:     metricsAddr,
			Handler:  mux,
			Drain:    2 * time.Second,
			Logger:   o.Log().With("listener", "metrics"),
			OnListen: func(a net.Addr) { mu.Lock(); defer mu.Unlock(); addrs.Metrics = a; ready() },
		})
	}
	// Listen on every address first, so a taken port fails the start cleanly.
	lns := make([]net.Listener, len(servers))
	for i, s := range servers {
		ln, err := net.Listen("tcp", s.Addr)
		if err != nil {
			for _, l := range lns[:i] {
				_ = l.Close()
			}
			return errors.New("listen on " + s.Addr + " (is another process using the port?): " + err.Error())
		}
		lns[i] = ln
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	for i, s := range servers {
		g.Go(func() error { return s.Serve(gctx, lns[i]) })
	}
	return g.Wait()
}
