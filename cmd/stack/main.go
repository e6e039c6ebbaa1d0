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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}
