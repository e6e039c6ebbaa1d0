package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer/legacy"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/logging"
	"github.com/acme/customer-platform/internal/mongodb"
)

// Exit codes.
const (
	exitOK       = 0 // done, nothing to report
	exitFailure  = 1 // the command failed or was interrupted
	exitUsage    = 2 // bad arguments or configuration
	exitProblems = 3 // verify found problems; plan --strict found problem records; apply could not write some records
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

The input is a Django dumpdata JSON export or a CSV export with a header row
(detected from the content). Settings come from the environment: MONGODB_URI,
CUSTOMER_DB, AUTH_URL, MIGRATE_CLIENT_ID, MIGRATE_CLIENT_SECRET (see README.md).

Exit codes: 0 ok, 1 failure or interrupted, 2 usage, 3 problems found (verify;
plan with --strict; apply with records it could not write).
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
	needsAuth := cmd == "plan" || cmd == "apply" || cmd == "verify"
	if needsAuth && cfg.ClientSecret == "" {
		return usageError{"MIGRATE_CLIENT_SECRET is required: the secret of the auth service client " + cfg.ClientID}
	}
	log := logging.New(e.stderr, logging.ParseLevel(cfg.LogLevel), "migrate")
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
	default:
		return c.verify(ctx)
	}
}

// command holds one run's connections.
type command struct {
	cfg       Config
	env       env
	log       *slog.Logger
	flags     flags
	client    *mongo.Client
	transport *http.Transport // of the auth client
}

func (c *command) close() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	if c.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.client.Disconnect(ctx)
	}
}

func (c *command) db(ctx context.Context) (*mongo.Database, error) {
	cl, err := mongodb.Connect(ctx, c.cfg.MongoURI.Reveal(), "migrate", nil)
	if err != nil {
		return nil, err
	}
	c.client = cl
	return cl.Database(c.cfg.CustomerDB), nil
}

// store opens the customer store (creating its indexes, the unique one on
// user_id above all, when the service has not yet).
func (c *command) store(ctx context.Context) (profileStore, error) {
	db, err := c.db(ctx)
	if err != nil {
		return profileStore{}, err
	}
	s, err := custmongo.New(ctx, db)
	if err != nil {
		return profileStore{}, err
	}
	return profileStore{s}, nil
}

// directory returns the auth client, having checked the service credentials.
func (c *command) directory(ctx context.Context) (authDirectory, error) {
	c.transport = http.DefaultTransport.(*http.Transport).Clone()
	c.transport.MaxIdleConnsPerHost = c.cfg.Lookups
	cl := authclient.New(authclient.Options{BaseURL: c.cfg.AuthURL, Timeout: c.cfg.AuthTimeout, Transport: c.transport})
	d := authDirectory{client: cl, tokens: authclient.NewServiceTokens(cl, c.cfg.ClientID, c.cfg.ClientSecret.Reveal())}
	if _, err := d.tokens.Token(ctx); err != nil {
		return authDirectory{}, fmt.Errorf("sign in to the auth service at %s as client %s: %w", c.cfg.AuthURL, c.cfg.ClientID, err)
	}
	return d, nil
}

func (c *command) options(total int) legacy.Options {
	o := legacy.Options{
		AcceptPartialAddress: c.flags.acceptPartial,
		CreateMissingUsers:   c.flags.create,
		BatchSize:            c.cfg.BatchSize,
		Lookups:              c.cfg.Lookups,
		AfterBatch:           c.env.afterBatch,
	}
	if c.env.progress && total > 0 {
		bar := progressbar.NewOptions(total,
			progressbar.OptionSetWriter(c.env.stderr),
			progressbar.OptionSetDescription("records"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("records"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.env.stderr) }),
		)
		o.Progress = func(n int) { _ = bar.Set(n) }
	}
	return o
}

// openInput opens the legacy export; with a progress bar, the records are
// counted first so the bar has a total and an ETA.
func (c *command) openInput() (*legacy.Reader, io.Closer, int, error) {
	total := 0
	if c.env.progress {
		n, err := countRecords(c.flags.input)
		if err != nil {
			return nil, nil, 0, err
		}
		total = n
	}
	f, err := os.Open(c.flags.input)
	if err != nil {
		return nil, nil, 0, err
	}
	r, err := legacy.NewReader(f)
	if err != nil {
		_ = f.Close()
		return nil, nil, 0, fmt.Errorf("%s: %w", c.flags.input, err)
	}
	return r, f, total, nil
}

func countRecords(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := legacy.NewReader(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	n := 0
	for {
		if _, err := r.Next(); err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, fmt.Errorf("%s: %w", path, err)
		}
		n++
	}
}

func (c *command) backup(ctx context.Context) error {
	db, err := c.db(ctx)
	if err != nil {
		return err
	}
	n, err := backup(ctx, db.Collection(custmongo.CustomersCollection), c.flags.out)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.stdout, "backup: %d profiles of %s.%s written to %s\n", n, c.cfg.CustomerDB, custmongo.CustomersCollection, c.flags.out)
	return nil
}

func (c *command) restore(ctx context.Context) error {
	// Open the store first: the collection keeps its indexes.
	if _, err := c.store(ctx); err != nil {
		return err
	}
	n, err := restore(ctx, c.client.Database(c.cfg.CustomerDB).Collection(custmongo.CustomersCollection), c.flags.in, c.cfg.BatchSize)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.stdout, "restore: %s.%s now holds the %d profiles of %s\n", c.cfg.CustomerDB, custmongo.CustomersCollection, n, c.flags.in)
	return nil
}

// newReport starts the report file of plan or apply.
func (c *command) newReport(cmd string, format legacy.Format) (*legacy.ReportWriter, *os.File, error) {
	f, err := os.Create(c.flags.report)
	if err != nil {
		return nil, nil, fmt.Errorf("create the report: %w", err)
	}
	h := legacy.ReportHeader{Command: cmd, GeneratedAt: time.Now().UTC(), Input: c.flags.input, Format: format}
	h.Options.AcceptPartialAddress = c.flags.acceptPartial
	h.Options.CreateMissingUsers = c.flags.create
	rw, err := legacy.NewReportWriter(f, h)
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("write the report: %w", err)
	}
	return rw, f, nil
}

// finishReport ends the report with the summary, noting a failed run.
func finishReport(rw *legacy.ReportWriter, f *os.File, sum legacy.Summary, runErr error) error {
	if runErr != nil && !sum.Interrupted {
		sum.Interrupted = true
		sum.InterruptReason = runErr.Error()
	}
	err := rw.Close(sum)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}

func (c *command) plan(ctx context.Context) error {
	dir, err := c.directory(ctx)
	if err != nil {
		return err
	}
	r, in, total, err := c.openInput()
	if err != nil {
		return err
	}
	defer in.Close()
	rw, f, err := c.newReport("plan", r.Format())
	if err != nil {
		return err
	}
	sum, runErr := legacy.Plan(ctx, r, dir, c.options(total), rw.Entry)
	if err := finishReport(rw, f, sum, runErr); err != nil {
		return errors.Join(runErr, err)
	}
	if runErr != nil {
		return fmt.Errorf("plan stopped after %d records (the report is incomplete): %w", sum.Records, runErr)
	}
	fmt.Fprint(c.env.stdout, sum.Text("plan"))
	fmt.Fprintf(c.env.stdout, "report: %s (nothing was written)\n", c.flags.report)
	c.log.InfoContext(ctx, "plan done", "records", sum.Records, "migrate", sum.Migrate, "create_user", sum.CreateUser, "skip", sum.Skip)
	if c.flags.strict && sum.WithProblems > 0 {
		return problemsError{fmt.Sprintf("%d records have problems (--strict)", sum.WithProblems)}
	}
	return nil
}

func (c *command) apply(ctx context.Context) error {
	dir, err := c.directory(ctx)
	if err != nil {
		return err
	}
	store, err := c.store(ctx)
	if err != nil {
		return err
	}
	r, in, total, err := c.openInput()
	if err != nil {
		return err
	}
	defer in.Close()
	rw, f, err := c.newReport("apply", r.Format())
	if err != nil {
		return err
	}
	var users legacy.UserCreator
	if c.flags.create {
		users = dir
	}
	sum, runErr := legacy.Apply(ctx, r, dir, users, store, c.options(total), rw.Entry)
	if err := finishReport(rw, f, sum, runErr); err != nil {
		return errors.Join(runErr, err)
	}
	fmt.Fprint(c.env.stdout, sum.Text("apply"))
	fmt.Fprintf(c.env.stdout, "report: %s\n", c.flags.report)
	c.log.InfoContext(ctx, "apply done", "records", sum.Records, "inserted", sum.Inserted, "updated", sum.Updated,
		"failed", sum.Failed, "users_created", sum.UsersCreated, "interrupted", sum.Interrupted)
	if runErr != nil {
		return fmt.Errorf("apply stopped after %d batches (%d records); run it again with the same input and flags to finish — nothing is written twice: %w", sum.Batches, sum.Records, runErr)
	}
	if sum.Failed > 0 {
		return problemsError{fmt.Sprintf("%d records could not be written: see the entries with \"outcome\": \"failed\" in %s", sum.Failed, c.flags.report)}
	}
	return nil
}

func (c *command) verify(ctx context.Context) error {
	dir, err := c.directory(ctx)
	if err != nil {
		return err
	}
	store, err := c.store(ctx)
	if err != nil {
		return err
	}
	r, in, total, err := c.openInput()
	if err != nil {
		return err
	}
	defer in.Close()
	v, err := legacy.Verify(ctx, r, dir, store, c.options(total))
	if err != nil {
		return err
	}
	if c.flags.report != "" {
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(c.flags.report, append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("write the report: %w", err)
		}
	}
	fmt.Fprint(c.env.stdout, v.Text())
	c.log.InfoContext(ctx, "verify done", "records", v.Records, "expected", v.Expected, "found", v.Found,
		"missing", v.Missing, "mismatched", v.Mismatched, "orphans", v.OrphanUsers, "shared", v.SharedUsers)
	if !v.OK() {
		return problemsError{"the data does not match the plan: see above"}
	}
	return nil
}
