// Command stack runs the whole system on one machine for development: the
// auth (8001), customer (8002) and BFF (8000) services in one process, with
// an embedded MongoDB-protocol server (FerretDB, data under ./.data) and a
// Redis (a redis-server child process when installed, else miniredis), unless
// MONGODB_URI / REDIS_URL / AUTH_URL point at real ones. `make run` runs it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/acme/customer-platform/internal/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// go-redis, the OpenTelemetry SDK and the log package log through a
	// process-wide logger: JSON lines like ours (see logging.RouteLibraryLogs).
	level, _ := os.LookupEnv("LOG_LEVEL")
	logging.RouteLibraryLogs(logging.New(os.Stderr, logging.ParseLevel(level), "stack"))
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}
