package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/logging"
	"github.com/acme/customer-platform/internal/telemetry"
)

// Exit codes.
const (
	exitOK       = 0 // done, nothing to report
	exitFailure  = 1 // the command failed or was interrupted
	exitUsage    = 2 // bad arguments or configuration
	exitProblems = 3 // verify found problems; plan --strict found problem records; apply could not write some records; reconcile found ghosts or orphans
)

const usage = `usage: migrate <command> [flags]

Moves the legacy customer records into the new profiles. In order:

  migrate backup  --out FILE                      export the customers collection
  migrate plan    --input FILE --report FILE      dry run: what apply would do, and every problem
                  [--accept-partial-address] [--create-missing-users] [--strict]
  migrate apply   --input FILE --report FILE      write the profiles (re-run after an interruption)
                  [--accept-partial-address] [--create-missing-users]
  migrate verify  --input FILE [--report FILE]    check the data after apply
                  [--accept-partial-address]
  migrate restore --in FILE --yes                 roll back: replace the customers collection with a backup

Any time after, to find profiles without users (ghosts) and customer users
without profiles (orphans), and delete the ghosts on request:

  migrate reconcile [--json] [--grace 24h]        report (writes nothing)
  migrate reconcile --repair [--batch N] [--limit N]

The input is a Django dumpdata JSON export or a CSV export with a header row
(detected from the content). Settings come from the environment: MONGODB_URI,
CUSTOMER_DB, AUTH_URL, MIGRATE_CLIENT_ID, MIGRATE_CLIENT_SECRET (see README.md).

Exit codes: 0 ok, 1 failure or interrupted, 2 usage, 3 problems found (verify;
plan with --strict; apply with records it could not write; reconcile with
ghosts or orphans found, or left after a repair).
`

// env is what the process gives the command; tests pass their own.
type env struct {
	lookup   config.Lookup
	stdout   io.Writer
	stderr   io.Writer
	progress bool // show a progress bar on stderr (a terminal)
	// afterBatch, when set, is called after each batch apply wrote (tests
	// interrupt a run from here).
	afterBatch func(batch int)
	// telemetry, when set, traces the run (one span per command, the auth
	// and customer calls and the database commands beneath it) and meters
	// its calls; nil: none.
	telemetry *telemetry.Telemetry
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// problemsError is a command that finished but found problems.
type problemsError struct{ msg string }

func (e problemsError) Error() string { return e.msg }

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	}
	err := dispatch(ctx, args[0], args[1:], e)
	var ue usageError
	var pe problemsError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "migrate %s: %s\n\n%s", args[0], ue.msg, usage)
		return exitUsage
	case errors.As(err, &pe):
		fmt.Fprintf(e.stderr, "migrate %s: %s\n", args[0], pe.msg)
		return exitProblems
	}
	fmt.Fprintf(e.stderr, "migrate %s: %v\n", args[0], err)
	return exitFailure
}

// flags of the commands.
type flags struct {
	input, report, out, in string
	acceptPartial, create  bool
	strict, yes            bool
	rec                    reconcileFlags
}

func dispatch(ctx context.Context, cmd string, args []string, e env) error {
	var f flags
	fs := flag.NewFlagSet("migrate "+cmd, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	need := map[string]*string{}
	str := func(name, help string, dst *string) { fs.StringVar(dst, name, "", help); need[name] = dst }
	switch cmd {
	case "backup":
		str("out", "the backup file to write (never overwritten)", &f.out)
	case "restore":
		str("in", "the backup file to restore", &f.in)
		fs.BoolVar(&f.yes, "yes", false, "confirm: every current profile is replaced by the backup's")
	case "plan", "apply", "verify":
		str("input", "the legacy export (dumpdata JSON or CSV)", &f.input)
		if cmd != "verify" {
			str("report", "the JSON report to write", &f.report)
		} else {
			fs.StringVar(&f.report, "report", "", "also write the findings as JSON to this file")
		}
		fs.BoolVar(&f.acceptPartial, "accept-partial-address", false, "write records whose address was not parsed with confidence, as parsed")
		if cmd != "verify" {
			fs.BoolVar(&f.create, "create-missing-users", false, "create the missing auth users (unusable password, must be reset) instead of skipping them")
		}
		if cmd == "plan" {
			fs.BoolVar(&f.strict, "strict", false, "exit with 3 when any record has a problem")
		}
	case "reconcile":
		f.rec.register(fs)
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	for name, dst := range need {
		if *dst == "" {
			return usageError{"--" + name + " is required"}
		}
	}
	if cmd == "restore" && !f.yes {
		return usageError{"restore replaces every profile with the backup's: add --yes to confirm"}
	}
	cfg, err := LoadConfig(e.lookup)
	if err != nil {
		return usageError{err.Error()}
	}
	needsAuth := cmd == "plan" || cmd == "apply" || cmd == "verify" || cmd == "reconcile"
	if needsAuth && cfg.ClientSecret == "" {
		return usageError{"MIGRATE_CLIENT_SECRET is required: the secret of the auth service client " + cfg.ClientID}
	}
	log := logging.New(e.stderr, logging.ParseLevel(cfg.LogLevel), "migrate")
	if e.telemetry != nil {
		var span trace.Span
		ctx, span = e.telemetry.Tracer.Tracer("migrate").Start(ctx, "migrate "+cmd)
		defer span.End()
	}
	log.InfoContext(ctx, "starting", "command", cmd, "config", cfg)
	c := &command{cfg: cfg, env: e, log: log, flags: f}
	defer c.close()
	switch cmd {
	case "backup":
		return c.backup(ctx)
	case "restore":
		return c.restore(ctx)
	case "plan":
		return c.plan(ctx)
	case "apply":
		return c.apply(ctx)
	case "reconcile":
		return c.reconcile(ctx)
	default:
		return c.verify(ctx)
	}
}
