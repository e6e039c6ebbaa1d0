package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/logging"
)

// RunFunc runs a service with the configuration it reads from lookup until
// ctx ends.
type RunFunc func(ctx context.Context, lookup config.Lookup, o Options) error

// Runner makes a service's RunFunc from its config loader and its Run: the
// one way a binary, the development stack and the system tests start a
// service. An invalid configuration is logged ("invalid configuration", with
// every bad variable named) before it is returned.
func Runner[C any](load func(config.Lookup) (C, error), run func(context.Context, C, Options) error) RunFunc {
	return func(ctx context.Context, lookup config.Lookup, o Options) error {
		cfg, err := load(lookup)
		if err != nil {
			o.Log().ErrorContext(ctx, "invalid configuration", "error", err.Error())
			return err
		}
		return run(ctx, cfg, o)
	}
}

// RunLogged runs a service as its binary does: with the environment lookup
// gives and a JSON logger on stdout at LOG_LEVEL, named after the service.
func RunLogged(ctx context.Context, name string, lookup config.Lookup, stdout io.Writer, run RunFunc) error {
	level, _ := lookup("LOG_LEVEL")
	log := logging.New(stdout, logging.ParseLevel(level), name)
	return run(ctx, lookup, Options{Logger: log, Lookup: lookup})
}

// Main is the whole main of a service binary: run until SIGINT or SIGTERM,
// with the process environment and the libraries' logs (go-redis, the
// OpenTelemetry SDK, the log package) routed through a JSON logger like the
// service's own; on an error, print it on stderr and exit 1.
func Main(name string, run func(ctx context.Context, lookup config.Lookup, stdout io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	level, _ := os.LookupEnv("LOG_LEVEL")
	logging.RouteLibraryLogs(logging.New(os.Stdout, logging.ParseLevel(level), name))
	err := run(ctx, os.LookupEnv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
