// Command migrate moves the legacy customer records of the pre-split Django
// service into the new profiles: backup, plan, apply, verify (and restore a
// backup). See README.md beside this file for the operator's guide.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{
		lookup:   os.LookupEnv,
		stdout:   os.Stdout,
		stderr:   os.Stderr,
		progress: term.IsTerminal(int(os.Stderr.Fd())),
	})
	stop()
	os.Exit(code)
}
