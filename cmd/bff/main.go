// Command bff runs the backend for frontend: one-call registration, login
// and the merged, cached view of a customer; its configuration is
// bff/bffd.Config.
package main

import (
	"context"
	"io"

	"github.com/acme/customer-platform/bff/bffd"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
)

func main() { daemon.Main(bffd.ServiceName, run) }

// run runs the service with the configuration lookup gives, logging to
// stdout; an invalid configuration is logged, then returned.
func run(ctx context.Context, lookup config.Lookup, stdout io.Writer) error {
	return daemon.RunLogged(ctx, bffd.ServiceName, lookup, stdout, daemon.Runner(bffd.LoadConfig, bffd.Run))
}
