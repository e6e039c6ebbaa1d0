// Package systest is the one harness that starts the system's services for
// a test: any subset of the services internal/stack lists, in this process
// (through their Run) or as child processes (the test binary itself running
// a service as its cmd binary does), N replicas of a service sharing its database, a fault
// proxy (internal/faultproxy) between any caller and callee, a round-robin
// balancer (internal/testenv/balancer) in front of a service's replicas, the shared
// embedded FerretDB (a fresh database per service and system) and a Redis
// (testenv.Redis). Each replica's log goes to a testenv.LogBuffer, its
// spans to an in-memory exporter when asked; a replica can be stopped and
// started again on the same addresses; everything stops when the test ends.
//
//	sys := systest.Start(t, systest.Options{
//		Services: []string{"auth", "customer", "bff"},
//		Replicas: map[string]int{"bff": 2},
//		Redis:    true,
//		Proxies:  []systest.Link{{From: "bff", To: "auth"}},
//	})
//	a := testenv.Call(t, nil, http.MethodGet, sys.URL("bff")+"/readyz", nil, nil)
//
// It is a package of its own rather than part of testenv because it imports
// the three services: a package whose tests use testenv (the stores' tests,
// say) is imported by a service, and would import itself through it. So a
// test of a service's own package that starts the system is an external
// test package (package authd_test), and testenv stays free of services.
package systest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/redis/go-redis/v9"

	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/faultproxy"
	"github.com/acme/customer-platform/internal/logging"
	"github.com/acme/customer-platform/internal/stack"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/balancer"
)

// The secrets a system shares among its services.
const (
	SigningKey           = "system-test-signing-key-shared-by-the-services-0123"
	BFFClientID          = stack.BFFClientID
	BFFClientSecret      = "bff-service-secret-for-system-tests"
	MigrateClientID      = stack.MigrateClientID
	MigrateClientSecret  = "migrate-service-secret-for-system-tests"
	CustomerClientID     = stack.CustomerClientID
	CustomerClientSecret = "customer-service-secret-for-system-tests"
)

// LogsVariable, when set in the test's environment, also copies every
// service's log to stderr.
const LogsVariable = "SYSTEST_LOGS"

// testDefaults are each service's settings in tests: cheap password hashes,
// no rate limits, short timeouts and a fast reconciler.
var testDefaults = map[string]map[string]string{
	"auth":     {"ARGON2_MEMORY_KIB": "256", "ARGON2_ITERATIONS": "1", "AUTH_RATE_LIMITS": "off", "SHUTDOWN_TIMEOUT": "2s"},
	"customer": {"AUTH_TIMEOUT": "1s", "SHUTDOWN_TIMEOUT": "2s"},
	"bff":      {"AUTH_TIMEOUT": "3s", "CUSTOMER_TIMEOUT": "1s", "RECONCILE_INTERVAL": "150ms", "SHUTDOWN_TIMEOUT": "1s"},
}

// Link is a fault proxy between a caller and a callee: the caller's
// variable naming the callee's URL points at the proxy, which forwards to
// the callee's first replica.
type Link struct {
	From, To string
	// Record keeps the header of every request through the proxy
	// (faultproxy.Proxy.Record) from the start.
	Record bool
}

// Options say what to start.
type Options struct {
	// Services are started in the order of stack.Services (callees first);
	// nil: all of them.
	Services []string
	// Replicas of a service (absent: 1; 0: none until AddReplica) share its
	// database and Redis.
	Replicas map[string]int
	// Env is set for every service, over the harness's settings;
	// ServiceEnv for one service, over Env. An empty value unsets a
	// variable.
	Env        map[string]string
	ServiceEnv map[string]map[string]string
	// Redis starts a Redis for the system (REDIS_URL of every service).
	Redis bool
	// RedisURL is a Redis the test started itself (a Redis Cluster, say:
	// testenv.RedisCluster), in any form REDIS_URL takes; it is every
	// service's REDIS_URL. Not with Redis.
	RedisURL string
	// Proxies are the fault proxies to put between services.
	Proxies []Link
	// Balanced services get a round-robin balancer in front of their
	// replicas (a replica added later joins it): their callers' variable
	// naming their URL points at it, and a proxy to one of them forwards
	// to it.
	Balanced []string
	// Processes runs the services as child processes instead of in this
	// process (no span exporter, no Run override): the test binary itself
	// running the service as its cmd binary's main does, when the
	// package's TestMain calls Main, else the cmd binary, built once.
	Processes bool
	// Spans gives each in-process replica an in-memory span exporter.
	Spans bool
	// Run replaces a service's Run in process (to set a test hook).
	Run map[string]daemon.RunFunc
	// LogLevel of the services' logs (zero: info).
	LogLevel slog.Level
	// StartTimeout bounds each replica's start (default 60s).
	StartTimeout time.Duration
}

// System is a running set of services.
type System struct {
	t         testing.TB
	opts      Options
	MongoURI  string
	Redis     *embedded.Redis // nil unless Options.Redis
	dbs       map[string]string
	envs      map[string]map[string]string // each service's environment
	instances map[string][]*Instance
	proxies   map[Link]*faultproxy.Proxy
	balancers map[string]*balancer.Balancer
	order     []*Instance
	feed      redis.UniversalClient // FeedSettled's, opened at its first call
}

// Start starts the system and stops it when the test ends; a service that
// does not start fails the test with its error.
func Start(t testing.TB, o Options) *System {
	t.Helper()
	s, err := start(t, o)
	if err != nil {
		t.Fatalf("systest: %v", err)
	}
	return s
}

func start(t testing.TB, o Options) (*System, error) {
	if o.Services == nil {
		o.Services = stack.Names()
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	s := &System{t: t, opts: o, MongoURI: testenv.MongoURI(t), dbs: map[string]string{}, envs: map[string]map[string]string{},
		instances: map[string][]*Instance{}, proxies: map[Link]*faultproxy.Proxy{}, balancers: map[string]*balancer.Balancer{}}
	for _, name := range o.Services {
		if _, ok := stack.Lookup(name); !ok {
			return nil, fmt.Errorf("unknown service %q (known: %s)", name, strings.Join(stack.Names(), ", "))
		}
	}
	for _, name := range o.Balanced {
		if !slices.Contains(o.Services, name) {
			return nil, fmt.Errorf("balancer in front of %s: the service is not started", name)
		}
	}
	if o.Redis && o.RedisURL != "" {
		return nil, errors.New("options Redis and RedisURL: choose one")
	}
	if o.Redis {
		s.Redis = testenv.Redis(t)
	}
	t.Cleanup(s.stopAll)
	urls := map[string]string{}
	for _, svc := range stack.Services() {
		if !slices.Contains(o.Services, svc.Name) {
			continue
		}
		s.dbs[svc.Name] = testenv.DBName(t)
		env := s.env(svc, urls)
		for _, l := range o.Proxies {
			if l.From != svc.Name {
				continue
			}
			p, err := s.proxy(l)
			if err != nil {
				return s, err
			}
			if to, _ := stack.Lookup(l.To); to.URLVar != "" {
				env[to.URLVar] = p.URL()
			}
		}
		maps.Copy(env, o.Env)
		maps.Copy(env, o.ServiceEnv[svc.Name])
		maps.DeleteFunc(env, func(_, v string) bool { return v == "" })
		s.envs[svc.Name] = env
		n, ok := o.Replicas[svc.Name]
		if !ok {
			n = 1
		}
		for range n {
			if _, err := s.addReplica(svc, ReplicaOptions{Spans: o.Spans}); err != nil {
				return s, err
			}
		}
		if slices.Contains(o.Balanced, svc.Name) {
			b, err := balancer.New()
			if err != nil {
				return s, err
			}
			s.balancers[svc.Name] = b
			for _, in := range s.instances[svc.Name] {
				b.Add(in.URL)
			}
			urls[svc.Name] = b.URL()
		} else if n > 0 {
			urls[svc.Name] = s.instances[svc.Name][0].URL
		}
	}
	for _, l := range o.Proxies {
		if _, ok := s.proxies[l]; !ok {
			return s, fmt.Errorf("proxy %s -> %s: both services must be started, the callee first", l.From, l.To)
		}
	}
	return s, nil
}

// env is the environment of svc: the test settings, what the stack gives
// every service (with the URLs of the services started so far), its
// database and addresses.
func (s *System) env(svc stack.Service, urls map[string]string) map[string]string {
	env := maps.Clone(testDefaults[svc.Name])
	if env == nil {
		env = map[string]string{}
	}
	w := stack.Wiring{MongoURI: s.MongoURI, URLs: urls, SigningKey: SigningKey,
		BFFClientSecret: BFFClientSecret, MigrateClientSecret: MigrateClientSecret, CustomerClientSecret: CustomerClientSecret}
	if s.Redis != nil {
		w.RedisURL = s.Redis.URL
	}
	if s.opts.RedisURL != "" {
		w.RedisURL = s.opts.RedisURL
	}
	maps.Copy(env, stack.Env(w))
	env[svc.DBVar] = s.dbs[svc.Name]
	env["HTTP_ADDR"], env["METRICS_ADDR"] = "127.0.0.1:0", "127.0.0.1:0"
	if s.opts.Processes {
		env["LOG_LEVEL"] = strings.ToLower(s.opts.LogLevel.String())
	}
	return env
}

func (s *System) proxy(l Link) (*faultproxy.Proxy, error) {
	to := s.instances[l.To]
	if len(to) == 0 {
		return nil, fmt.Errorf("proxy %s -> %s: %s is not started before %s", l.From, l.To, l.To, l.From)
	}
	target := strings.TrimPrefix(to[0].URL, "http://")
	if b := s.balancers[l.To]; b != nil {
		target = b.Addr()
	}
	p, err := faultproxy.New(target, uint64(len(s.proxies)+1))
	if err != nil {
		return nil, err
	}
	if l.Record {
		p.Record()
	}
	s.proxies[l] = p
	return p, nil
}

// stopAll stops the replicas, the last started first, then the proxies
// and balancers;
// when the test failed, it logs the end of each replica's log.
func (s *System) stopAll() {
	for _, in := range slices.Backward(s.order) {
		if err := in.Stop(); err != nil {
			s.t.Errorf("%s stopped with an error: %v", in, err)
		}
	}
	for _, p := range s.proxies {
		p.Close()
	}
	for _, b := range s.balancers {
		b.Close()
	}
	if s.t.Failed() {
		for _, in := range s.order {
			s.t.Logf("the end of %s's log:\n%s", in, in.Logs.Tail(20))
		}
	}
}

// ReplicaOptions are what one replica changes of its service's setup.
type ReplicaOptions struct {
	// Env is set over the service's environment ("" unsets a variable).
	Env map[string]string
	// Run replaces the service's Run (in process).
	Run daemon.RunFunc
	// Spans gives the replica an in-memory span exporter (in process).
	Spans bool
}

// AddReplica starts one more replica of a service of the system (one that
// Options.Services names, with Replicas 0 if none should start with the
// system), on the service's database, behind its proxies and in its
// balancer. A replica that does not start fails the test.
func (s *System) AddReplica(name string, o ReplicaOptions) *Instance {
	s.t.Helper()
	svc, ok := stack.Lookup(name)
	if !ok || s.envs[name] == nil {
		s.t.Fatalf("systest: %s is not a service of this system", name)
	}
	in, err := s.addReplica(svc, o)
	if err != nil {
		s.t.Fatalf("systest: %v", err)
	}
	if b := s.balancers[name]; b != nil {
		b.Add(in.URL)
	}
	return in
}

func (s *System) addReplica(svc stack.Service, o ReplicaOptions) (*Instance, error) {
	env := maps.Clone(s.envs[svc.Name])
	env["HTTP_ADDR"], env["METRICS_ADDR"] = "127.0.0.1:0", "127.0.0.1:0"
	maps.Copy(env, o.Env)
	maps.DeleteFunc(env, func(_, v string) bool { return v == "" })
	in := &Instance{Name: svc.Name, Replica: len(s.instances[svc.Name]), Logs: &testenv.LogBuffer{}, Env: env, sys: s, svc: svc, run: o.Run}
	if o.Spans && !s.opts.Processes {
		in.Spans = tracetest.NewInMemoryExporter()
	}
	s.instances[svc.Name] = append(s.instances[svc.Name], in)
	s.order = append(s.order, in)
	return in, in.start()
}

// Service is the first replica of the named service; a service the system
// does not run fails the test.
func (s *System) Service(name string) *Instance {
	s.t.Helper()
	rs := s.instances[name]
	if len(rs) == 0 {
		s.t.Fatalf("systest: %s is not started", name)
	}
	return rs[0]
}

// Replicas are the named service's replicas.
func (s *System) Replicas(name string) []*Instance { return s.instances[name] }

// URL is the API base URL of the named service's first replica.
func (s *System) URL(name string) string {
	s.t.Helper()
	return s.Service(name).URL
}

// DBName is the database of the named service.
func (s *System) DBName(name string) string { return s.dbs[name] }

// DB is the database of the named service.
func (s *System) DB(name string) *mongo.Database {
	s.t.Helper()
	if s.dbs[name] == "" {
		s.t.Fatalf("systest: %s is not started", name)
	}
	return testenv.MongoClient(s.t).Database(s.dbs[name])
}

// Balancer is the balancer in front of the named service's replicas
// (Options.Balanced).
func (s *System) Balancer(name string) *balancer.Balancer {
	s.t.Helper()
	b := s.balancers[name]
	if b == nil {
		s.t.Fatalf("systest: no balancer in front of %s", name)
	}
	return b
}

// Proxy is the fault proxy between from and to (Options.Proxies).
func (s *System) Proxy(from, to string) *faultproxy.Proxy {
	s.t.Helper()
	p := s.proxies[Link{From: from, To: to}]
	if p == nil {
		p = s.proxies[Link{From: from, To: to, Record: true}]
	}
	if p == nil {
		s.t.Fatalf("systest: no proxy %s -> %s", from, to)
	}
	return p
}

// Instance is one replica of a service.
type Instance struct {
	Name       string
	Replica    int
	URL        string // API base URL
	MetricsURL string // the metrics listener's base URL
	// Env is the environment it runs with; its addresses are the ones it
	// bound at its first start, so a restart keeps them.
	Env   map[string]string
	Logs  *testenv.LogBuffer
	Spans *tracetest.InMemoryExporter // nil unless Options.Spans (in process)

	sys  *System
	svc  stack.Service
	run  daemon.RunFunc // nil: the service's (or Options.Run's)
	mu   sync.Mutex
	stop func() error // nil when not running
	proc *os.Process  // the child process, when there is one
}

func (in *Instance) String() string {
	if len(in.sys.instances[in.Name]) > 1 {
		return fmt.Sprintf("%s[%d]", in.Name, in.Replica)
	}
	return in.Name
}

// Start starts a stopped replica again on its addresses; an error fails
// the test.
func (in *Instance) Start() {
	in.sys.t.Helper()
	if err := in.start(); err != nil {
		in.sys.t.Fatalf("systest: %v", err)
	}
}

// Stop stops the replica gracefully and returns the error it stopped with
// (nil when it was not running).
func (in *Instance) Stop() error {
	in.mu.Lock()
	stop := in.stop
	in.stop = nil
	in.mu.Unlock()
	if stop == nil {
		return nil
	}
	return stop()
}

// Running reports whether the replica runs.
func (in *Instance) Running() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stop != nil
}

func (in *Instance) logWriter() io.Writer {
	if os.Getenv(LogsVariable) != "" {
		return io.MultiWriter(in.Logs, os.Stderr)
	}
	return in.Logs
}

func (in *Instance) start() error {
	if in.Running() {
		return fmt.Errorf("%s is running", in)
	}
	var (
		stop func() error
		err  error
	)
	if in.sys.opts.Processes {
		stop, err = in.startProcess()
	} else {
		stop, err = in.startInProcess()
	}
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.stop = stop
	in.mu.Unlock()
	return nil
}

// listening records the bound addresses and pins them for a restart.
func (in *Instance) listening(api, metrics string) {
	in.URL, in.Env["HTTP_ADDR"] = "http://"+api, api
	if metrics != "" {
		in.MetricsURL, in.Env["METRICS_ADDR"] = "http://"+metrics, metrics
	}
}

func (in *Instance) startInProcess() (func() error, error) {
	run := in.svc.Run
	if r := in.sys.opts.Run[in.Name]; r != nil {
		run = r
	}
	if in.run != nil {
		run = in.run
	}
	log := logging.New(in.logWriter(), in.sys.opts.LogLevel, in.Name)
	if in.Replica > 0 || in.sys.opts.Replicas[in.Name] > 1 {
		log = log.With("replica", in.Replica)
	}
	lookup := config.FromMap(maps.Clone(in.Env))
	ready := make(chan daemon.Addrs, 1)
	o := daemon.Options{Logger: log, Lookup: lookup, Ready: func(a daemon.Addrs) { ready <- a }}
	if in.Spans != nil {
		o.SpanExporter = in.Spans
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, lookup, o) }()
	select {
	case a := <-ready:
		metrics := ""
		if a.Metrics != nil {
			metrics = a.Metrics.String()
		}
		in.listening(a.API.String(), metrics)
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("%s did not start: %v", in, err)
	case <-time.After(in.sys.opts.StartTimeout):
		cancel()
		return nil, fmt.Errorf("%s did not start within %s", in, in.sys.opts.StartTimeout)
	}
	return func() error { cancel(); return <-done }, nil
}

func (in *Instance) startProcess() (func() error, error) {
	bin, self, err := processBinary(in.svc)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"HTTP_ADDR", "METRICS_ADDR"} {
		if strings.HasSuffix(in.Env[k], ":0") {
			if in.Env[k], err = freeAddr(); err != nil {
				return nil, err
			}
		}
	}
	in.listening(in.Env["HTTP_ADDR"], in.Env["METRICS_ADDR"])
	cmd := exec.Command(bin)
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, v := range in.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if self {
		cmd.Env = append(cmd.Env, serviceVariable+"="+in.Name)
	}
	cmd.Stdout, cmd.Stderr = in.logWriter(), in.logWriter()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	in.mu.Lock()
	in.proc = cmd.Process
	in.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			return errors.New("did not stop within 15s of SIGTERM: killed")
		}
	}
	deadline := time.After(in.sys.opts.StartTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		if resp, err := client.Get(in.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return stop, nil
			}
		}
		select {
		case err := <-done:
			return nil, fmt.Errorf("%s did not start: %v:\n%s", in, err, in.Logs.Tail(20))
		case <-deadline:
			_ = stop()
			return nil, fmt.Errorf("%s was not ready within %s:\n%s", in, in.sys.opts.StartTimeout, in.Logs.Tail(20))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Kill ends the replica at once, as a crash would: SIGKILL for a child
// process; in process, where nothing can be killed, it is Stop.
func (in *Instance) Kill() {
	in.mu.Lock()
	proc := in.proc
	in.mu.Unlock()
	if proc != nil {
		_ = proc.Kill()
	}
	_ = in.Stop()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// serviceVariable, in a child's environment, makes a test binary whose
// TestMain calls Main run that service instead of its tests.
const serviceVariable = "SYSTEST_SERVICE"

// mainCalled is set by Main: the test binary can then run any service
// itself as a child process (serviceVariable).
var mainCalled atomic.Bool

// processBinary is what a child process of svc runs: this test binary
// (self) when its TestMain calls Main, which then runs the service as
// the service's cmd binary does; else the cmd binary, built once per test
// binary. Running itself spares each package that starts child processes
// three builds (tens of seconds each on a loaded machine).
func processBinary(svc stack.Service) (path string, self bool, err error) {
	if mainCalled.Load() {
		path, err = os.Executable()
		return path, true, err
	}
	path, err = binary(svc)
	return path, false, err
}

// runService is the main of a child process running the named service:
// what its cmd binary's main does (daemon.Main with daemon.RunLogged of
// the stack's Runner), so the child runs as the binary would.
func runService(name string) int {
	svc, ok := stack.Lookup(name)
	if !ok {
		fmt.Fprintf(os.Stderr, "systest: %s=%q names no service (known: %s)\n", serviceVariable, name, strings.Join(stack.Names(), ", "))
		return 2
	}
	daemon.Main(name, func(ctx context.Context, lookup config.Lookup, stdout io.Writer) error {
		return daemon.RunLogged(ctx, name, lookup, stdout, svc.Run)
	})
	return 0
}

// binaries are the services' binaries, built once per test binary.
var binaries struct {
	mu    sync.Mutex
	dir   string
	built map[string]*built
}

type built struct {
	once sync.Once
	path string
	err  error
}

func binary(svc stack.Service) (string, error) {
	binaries.mu.Lock()
	if binaries.built == nil {
		binaries.built = map[string]*built{}
	}
	b := binaries.built[svc.Name]
	if b == nil {
		b = &built{}
		binaries.built[svc.Name] = b
	}
	binaries.mu.Unlock()
	b.once.Do(func() { b.path, b.err = build(svc) })
	return b.path, b.err
}

func build(svc stack.Service) (string, error) {
	binaries.mu.Lock()
	if binaries.dir == "" {
		dir, err := os.MkdirTemp("", "systest-bin-*")
		if err != nil {
			binaries.mu.Unlock()
			return "", err
		}
		binaries.dir = dir
	}
	dir := binaries.dir
	binaries.mu.Unlock()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("build %s: go env GOMOD: %w", svc.Name, err)
	}
	path := filepath.Join(dir, svc.Name)
	cmd := exec.Command("go", "build", "-o", path, svc.Cmd)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", svc.Cmd, err, out)
	}
	return path, nil
}

// Main runs the tests of a package (testenv.Main), then removes the
// binaries built for child-process systems. Call it from TestMain:
// os.Exit(systest.Main(m)). In a child process the harness started (see
// Options.Processes) it runs the service instead, until SIGTERM.
func Main(m *testing.M) int {
	if name := os.Getenv(serviceVariable); name != "" {
		return runService(name)
	}
	mainCalled.Store(true)
	code := testenv.Main(m)
	binaries.mu.Lock()
	defer binaries.mu.Unlock()
	if binaries.dir != "" {
		_ = os.RemoveAll(binaries.dir)
	}
	return code
}
