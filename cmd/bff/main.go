// Command bff runs the backend for frontend: one-call registration, login
// and the merged, cached view of a customer (see package bff).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/acme/customer-platform/bff/bffd"
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
	logging.RouteLibraryLogs(logging.New(os.Stdout, logging.ParseLevel(level), bffd.ServiceName))
	if err := run(ctx, os.LookupEnv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bff:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, lookup config.Lookup, stdout io.Writer) error {
	cfg, err := bffd.LoadConfig(lookup)
	if err != nil {
		return err
	}
	log := logging.New(stdout, logging.ParseLevel(cfg.LogLevel), bffd.ServiceName)
	return bffd.Run(ctx, cfg, daemon.Options{Logger: log, Lookup: lookup})
}
