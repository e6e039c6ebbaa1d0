package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acme/customer-platform/auth/password"
	"github.com/acme/customer-platform/internal/config"
)

// options are the benchmark's flags and the environment it honours.
type options struct {
	rounds    int           // interleaved rounds of the ratios
	round     time.Duration // one side's window in a round
	warm      time.Duration // unmeasured warm-up of each side
	regRounds int           // rounds of the registration figure
	regRound  time.Duration // its window (a registration takes tens of ms)
	conns     int           // connections of the throughput and under-load figures
	regConns  int           // connections of the registration figure
	light     int           // connections of the latency ratios (figures 2 and 6)
	users     int           // seeded users the reads rotate over
	records   int           // customers seeded in the databases of every figure
	small     int           // customers of figure 7's small stack
	seedConc  int           // concurrent seeding workers
	// Figure 7's rounds: short windows, each lasting until scaleMin
	// operations finished (a slow operation is measured that often).
	scaleRounds int
	scaleRound  time.Duration
	scaleWarm   time.Duration
	scaleMin    int
	figures     []int // which figures to measure (all by default)
	inProcess   bool
	keep        bool
	cpuProf     string
	mongoDir    string // -serve-mongo: run the embedded FerretDB (internal)
	gatewayAddr string // -serve-gateway: run the Lura-style gateway (internal)
	gatewayAuth string // its backends' URLs
	gatewayCust string

	argon2   password.Params // ARGON2_*: the auth service's and the hash baseline's
	hashConc int             // PASSWORD_HASH_CONCURRENCY (0: GOMAXPROCS)
	mongoURI string          // MONGODB_URI: an external server instead of the embedded one
}

var allFigures = []int{1, 2, 3, 4, 5, 6, 7, 8, 9}

func parseOptions(args []string, lookup config.Lookup, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds per ratio")
	fs.DurationVar(&o.round, "round", time.Second, "length of one side's window in a round")
	fs.DurationVar(&o.warm, "warm", time.Second, "unmeasured warm-up of each side before its rounds")
	fs.IntVar(&o.regRounds, "reg-rounds", 3, "rounds of the registration figure")
	fs.DurationVar(&o.regRound, "reg-round", 3*time.Second, "length of one side's window in a registration round")
	fs.IntVar(&o.conns, "conns", 64, "concurrent connections of the throughput and under-load figures")
	fs.IntVar(&o.regConns, "reg-conns", 0, "concurrent registrations of figure 3 (0: twice the hash concurrency, enough to keep every hash slot busy)")
	fs.IntVar(&o.light, "light", 1, "concurrent connections of the latency ratios (figures 2 and 6)")
	fs.IntVar(&o.users, "users", 1000, "seeded users the reads rotate over (spread over the -records customers)")
	fs.IntVar(&o.records, "records", 10_000, "customers seeded (through the stores) in the databases every figure uses")
	fs.IntVar(&o.small, "small", 100, "customers seeded in figure 7's small stack")
	fs.IntVar(&o.seedConc, "seed-conc", 16, "concurrent seeding workers")
	fs.IntVar(&o.scaleRounds, "scale-rounds", 4, "interleaved rounds of figure 7")
	fs.DurationVar(&o.scaleRound, "scale-round", 300*time.Millisecond, "length of one side's window in a figure 7 round")
	fs.DurationVar(&o.scaleWarm, "scale-warm", 200*time.Millisecond, "unmeasured warm-up of each figure 7 side")
	fs.IntVar(&o.scaleMin, "scale-min", 3, "operations each figure 7 round measures at least (its window lasts until they finished)")
	figs := fs.String("figures", "1,2,3,4,5,6,7,8,9", "figures to measure, comma-separated")
	fs.BoolVar(&o.inProcess, "in-process", false, "run the services inside this process (no per-service memory figures)")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's directory (service logs, FerretDB files)")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write this process's CPU profile to the file (with -in-process it covers the services)")
	fs.StringVar(&o.mongoDir, "serve-mongo", "", "internal: serve the embedded FerretDB with its files in this directory")
	fs.StringVar(&o.gatewayAddr, "serve-gateway", "", "internal: serve the Lura-style gateway of figures 8 and 9 on this address")
	fs.StringVar(&o.gatewayAuth, "gateway-auth", "", "internal: the gateway's auth backend URL")
	fs.StringVar(&o.gatewayCust, "gateway-customer", "", "internal: the gateway's customer backend URL")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	r := config.New(lookup)
	p := password.OWASP()
	mem := r.Int("ARGON2_MEMORY_KIB", int(p.MemoryKiB))
	iter := r.Int("ARGON2_ITERATIONS", int(p.Iterations))
	par := r.Int("ARGON2_PARALLELISM", int(p.Parallelism))
	o.hashConc = r.Int("PASSWORD_HASH_CONCURRENCY", 0)
	o.mongoURI = r.String("MONGODB_URI", "")
	r.Check(mem > 0 && mem <= 1<<20 && iter > 0 && iter <= 64 && par > 0 && par <= 255, "ARGON2_*",
		"want ARGON2_MEMORY_KIB 1..1048576, ARGON2_ITERATIONS 1..64, ARGON2_PARALLELISM 1..255")
	r.Check(o.hashConc >= 0, "PASSWORD_HASH_CONCURRENCY", "want 0 (GOMAXPROCS) or more")
	o.argon2 = password.Params{MemoryKiB: uint32(mem), Iterations: uint32(iter), Parallelism: uint8(par)}
	if o.hashConc == 0 {
		o.hashConc = runtime.GOMAXPROCS(0)
	}
	if o.regConns == 0 {
		o.regConns = 2 * o.hashConc
	}
	r.Check(o.rounds > 0 && o.regRounds > 0, "-rounds", "want at least one round")
	r.Check(o.round > 0 && o.regRound > 0, "-round", "want a positive window")
	r.Check(o.conns > 0 && o.light > 0, "-conns", "want at least one connection")
	r.Check(o.users > 0, "-users", "want at least one user")
	r.Check(o.records > 0 && o.small > 0, "-records", "want at least one customer in each stack")
	r.Check(o.seedConc > 0, "-seed-conc", "want at least one worker")
	r.Check(o.scaleRounds > 0 && o.scaleRound > 0 && o.scaleMin > 0, "-scale-rounds", "want at least one round, a positive window and at least one operation")
	o.users = min(o.users, o.records)
	for f := range strings.SplitSeq(*figs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		r.Check(err == nil && slices.Contains(allFigures, n), "-figures", fmt.Sprintf("%q is not a figure (1 to 9)", f))
		if err == nil && !slices.Contains(o.figures, n) {
			o.figures = append(o.figures, n)
		}
	}
	return o, r.Err()
}

func (o options) wants(f int) bool { return slices.Contains(o.figures, f) }

func run(ctx context.Context, args []string, lookup config.Lookup, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	o, err := parseOptions(args, lookup, stderr)
	if err != nil {
		return err
	}
	if o.mongoDir != "" {
		return serveMongo(ctx, o.mongoDir, stdin, stdout)
	}
	if o.gatewayAddr != "" {
		return serveGateway(ctx, o.gatewayAddr, o.gatewayAuth, o.gatewayCust, stdin, stdout)
	}
	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	progress := func(format string, args ...any) {
		fmt.Fprintf(stderr, "bench: %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}

	dir, err := os.MkdirTemp("", "bench-*")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep || err != nil {
			fmt.Fprintf(stderr, "bench: the run's logs and files are kept in %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	started := time.Now()
	sys, err := startSystem(ctx, o, dir, stderr, progress)
	if sys != nil {
		defer func() { err = errors.Join(err, sys.stop()) }()
	}
	if err != nil {
		return err
	}
	res, err := measure(ctx, o, sys, progress)
	if err != nil {
		return err
	}
	res.memory = sys.memory(ctx)
	res.elapsed = time.Since(started)
	return writeReport(stdout, o, sys, res)
}

// newRunID is a short random id that keeps one run's names (databases,
// emails) apart from another's.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// subdir creates dir/name.
func subdir(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.MkdirAll(p, 0o750)
}
