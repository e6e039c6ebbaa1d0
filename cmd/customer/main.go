// Command customer runs the customer service (customer profiles, service
// history); its configuration is customer/customerd.Config.
package main

import (
	"context"
	"io"

	"github.com/acme/customer-platform/customer/customerd"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
)

func main() { daemon.Main(customerd.ServiceName, run) }

// run runs the service with the configuration lookup gives, logging to
// stdout; an invalid configuration is logged, then returned.
func run(ctx context.Context, lookup config.Lookup, stdout io.Writer) error {
	return daemon.RunLogged(ctx, customerd.ServiceName, lookup, stdout, daemon.Runner(customerd.LoadConfig, customerd.Run))
}
