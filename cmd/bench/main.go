// Command bench is the system benchmark of `make bench`: it builds and
// starts the auth, customer and BFF services (child processes, with an
// embedded FerretDB and real redis-server children), drives them with
// concurrent keep-alive HTTP clients, and prints one table of figures, each
// a ratio of two measurements taken side by side in interleaved rounds so
// that a noisy shared machine affects both alike. See BENCHMARKS.md.
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
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
