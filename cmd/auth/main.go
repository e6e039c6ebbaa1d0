// Command auth runs the auth service (users, passwords, JWTs); see
// auth/authd for its configuration.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/acme/customer-platform/auth/authd"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// go-redis, the OpenTelemetry SDK and the log package log through a
	// process-wide logger: JSON lines like ours (see logging.RouteLibraryLogs).
	level, _ := os.LookupEnv("LOG_LEVEL")
	logging.RouteLibraryLogs(logging.New(os.Stdout, logging.ParseLevel(level), authd.ServiceName))
	if err := run(ctx, os.LookupEnv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "auth:", err)
		os.Exit(1)
	}
}

// run loads the configuration and runs the service. The logger is built
// first, at the configured LOG_LEVEL, so that an invalid configuration is
// logged like everything else before run returns it.
func run(ctx context.Context, lookup config.Lookup, stdout io.Writer) error {
	level, _ := lookup("LOG_LEVEL")
	log := logging.New(stdout, logging.ParseLevel(level), authd.ServiceName)
	cfg, err := authd.LoadConfig(lookup)
	if err != nil {
		log.Error("invalid configuration", "error", err.Error())
		return err
	}
	return authd.Run(ctx, cfg, daemon.Options{Logger: log, Lookup: lookup})
}
