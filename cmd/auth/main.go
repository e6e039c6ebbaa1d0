// Command auth runs the auth service (users, passwords, JWTs); its
// configuration is auth/authd.Config.
package main

import (
	"context"
	"io"

	"github.com/acme/customer-platform/auth/authd"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
)

func main() { daemon.Main(authd.ServiceName, run) }

// run runs the service with the configuration lookup gives, logging to
// stdout; an invalid configuration is logged, then returned.
func run(ctx context.Context, lookup config.Lookup, stdout io.Writer) error {
	return daemon.RunLogged(ctx, authd.ServiceName, lookup, stdout, daemon.Runner(authd.LoadConfig, authd.Run))
}
