// Command migrate moves the legacy customer records of the pre-split Django
// service into the new profiles: backup, plan, apply, verify (and restore a
// backup). See README.md beside this file for the operator's guide.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/acme/customer-platform/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Traces are exported by OTLP when the standard OTEL_* variables
	// configure an endpoint, as the services' are; otherwise nothing is.
	tel, err := telemetry.Setup(ctx, telemetry.Options{Service: "migrate", Lookup: os.LookupEnv})
	if err != nil {
		fmt.Fprintf(os.Stderr, "migrate: telemetry: %v\n", err)
		os.Exit(exitUsage)
	}
	code := run(ctx, os.Args[1:], env{
		lookup:    os.LookupEnv,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		progress:  term.IsTerminal(int(os.Stderr.Fd())),
		telemetry: tel,
	})
	tel.Close(ctx, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	stop()
	os.Exit(code)
}
