package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/logging"
	"github.com/acme/customer-platform/internal/stack"
)

// proc is a running service (or backing server) of the system under test.
type proc struct {
	name    string
	role    string // what the benchmark uses it for
	addr    string // API host:port
	pid     int    // 0 when it runs inside this process
	logPath string
	stop    func() error
}

// url is the proc's API base URL.
func (p *proc) url() string { return "http://" + p.addr }

// launcher starts name, an instance of service (one of stack.Services),
// with an environment.
type launcher interface {
	start(ctx context.Context, name, service string, env map[string]string) (*proc, error)
	// describe says how services run, for the report.
	describe() string
}

// startTimeout bounds a service's start (a cold FerretDB may be slow).
const startTimeout = 60 * time.Second

// childLauncher runs the built binaries as child processes, each logging
// to its own file, so each has its own CPU scheduling, garbage collector
// and peak resident memory.
type childLauncher struct {
	binDir, logDir string
}

func (l childLauncher) describe() string { return "services run as child processes (go build)" }

// buildBinaries builds the services' commands (stack.Services) into dir,
// each service named after its service.
func buildBinaries(ctx context.Context, dir string, stderr io.Writer) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is needed to build the services: %w", err)
	}
	root, err := moduleRoot(ctx, goTool)
	if err != nil {
		return err
	}
	// The flags of `go run ./cmd/bench` (none), so every package the
	// services share with this benchmark comes from the build cache (another
	// build configuration, such as -trimpath, would compile them again).
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, svc := range stack.Services() {
		args = append(args, svc.Cmd)
	}
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build of the services: %w", err)
	}
	return nil
}

// moduleRoot is the directory of the module's go.mod.
func moduleRoot(ctx context.Context, goTool string) (string, error) {
	out, err := exec.CommandContext(ctx, goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run the benchmark inside the repository (go env GOMOD finds no go.mod)")
	}
	return filepath.Dir(mod), nil
}

// childEnv is what a child inherits besides its configuration: enough to
// run, plus the Go runtime's own knobs when the caller set them. Nothing
// else (no OTEL_* exporter, no stray service variable) leaks in.
func childEnv(env map[string]string) []string {
	var out []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			out = append(out, k+"="+v)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

func (l childLauncher) start(ctx context.Context, name, service string, env map[string]string) (*proc, error) {
	logPath := filepath.Join(l.logDir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(l.binDir, service))
	cmd.Env = childEnv(env)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = logf.Close() }()
	p := &proc{name: name, pid: cmd.Process.Pid, logPath: logPath}
	var once bool
	p.stop = func() error {
		if once {
			return nil
		}
		once = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return cleanExit(err)
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("%s did not stop within 20s of SIGTERM; killed", name)
		}
	}
	deadline := time.After(startTimeout)
	for {
		if addr := listeningAddr(logPath); addr != "" {
			p.addr = addr
			return p, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("%s exited at start (%v); its log:\n%s", name, err, tail(logPath, 20))
		case <-deadline:
			_ = p.stop()
			return nil, fmt.Errorf("%s did not listen within %s; its log:\n%s", name, startTimeout, tail(logPath, 20))
		case <-ctx.Done():
			_ = p.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// cleanExit treats the exit of a SIGTERM as clean.
func cleanExit(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && !ee.Exited() {
		return nil // killed by the signal before its handler ran
	}
	return err
}

// listeningAddr finds the API listener's address in a service's JSON log
// ("listening" without a "listener" attribute; the metrics listener has
// listener=metrics).
func listeningAddr(logPath string) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"listening"`)) {
			continue
		}
		var l struct {
			Msg      string `json:"msg"`
			Addr     string `json:"addr"`
			Listener string `json:"listener"`
		}
		if json.Unmarshal(line, &l) == nil && l.Msg == "listening" && l.Listener == "" && l.Addr != "" {
			return l.Addr
		}
	}
	return ""
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// inProcessLauncher runs the services' Run functions as goroutines of this
// process (for a quick run and the smoke test): no per-service memory.
type inProcessLauncher struct{ logDir string }

func (l inProcessLauncher) describe() string { return "services run inside the benchmark's process" }

func (l inProcessLauncher) start(ctx context.Context, name, service string, env map[string]string) (*proc, error) {
	svc, ok := stack.Lookup(service)
	if !ok {
		return nil, fmt.Errorf("no service %q", service)
	}
	logPath := filepath.Join(l.logDir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	lookup := config.FromMap(env)
	level, _ := lookup("LOG_LEVEL")
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ready := make(chan daemon.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- svc.Run(rctx, lookup, daemon.Options{
			Logger: logging.New(logf, logging.ParseLevel(level), service),
			Lookup: lookup,
			Ready:  func(a daemon.Addrs) { ready <- a },
		})
	}()
	p := &proc{name: name, logPath: logPath}
	var once bool
	p.stop = func() error {
		if once {
			return nil
		}
		once = true
		cancel()
		err := <-done
		_ = logf.Close()
		return err
	}
	select {
	case a := <-ready:
		p.addr = a.API.String()
		return p, nil
	case err := <-done:
		cancel()
		_ = logf.Close()
		return nil, fmt.Errorf("%s did not start: %v", name, err)
	case <-time.After(startTimeout):
		_ = p.stop()
		return nil, fmt.Errorf("%s did not start within %s", name, startTimeout)
	}
}

// waitReady polls a service's /readyz until it answers 200.
func waitReady(ctx context.Context, p *proc) error {
	deadline := time.Now().Add(startTimeout)
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url()+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s: %s", p.name, startTimeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// mongoServer is the embedded FerretDB: a child process (this binary run
// with -serve-mongo) when services are children, else inside this process.
type mongoServer struct {
	uri  string
	pid  int
	stop func()
}

// serveMongo is the -serve-mongo mode: run the embedded FerretDB with its
// files in dir, print its URI, and serve until stdin closes (the parent is
// gone) or a signal arrives.
func serveMongo(ctx context.Context, dir string, stdin io.Reader, stdout io.Writer) error {
	m, err := embedded.StartMongo(ctx, "127.0.0.1:0", dir, nil)
	if err != nil {
		return err
	}
	defer m.Close()
	if _, err := fmt.Fprintln(stdout, m.URI); err != nil {
		return err
	}
	closed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stdin); close(closed) }()
	select {
	case <-ctx.Done():
	case <-closed:
	}
	return nil
}

func startMongoChild(ctx context.Context, dir string) (*mongoServer, error) {
	uri, pid, stop, err := startSelf(ctx, "embedded FerretDB", "mongodb://", "-serve-mongo", dir)
	if err != nil {
		return nil, err
	}
	return &mongoServer{uri: uri, pid: pid, stop: stop}, nil
}

// startSelf runs this binary again with args as a child server that
// prints one line starting with prefix (its address) and serves until its
// standard input closes; it returns that line.
func startSelf(ctx context.Context, what, prefix string, args ...string) (string, int, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Env = childEnv(nil)
	cmd.SysProcAttr = childAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	stop := func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l, ok := <-line:
		if !ok || !strings.HasPrefix(l, prefix) {
			stop()
			return "", 0, nil, fmt.Errorf("%s did not start: %s", what, stderr.String())
		}
		return l, cmd.Process.Pid, stop, nil
	case <-time.After(startTimeout):
		stop()
		return "", 0, nil, fmt.Errorf("%s did not start within %s", what, startTimeout)
	case <-ctx.Done():
		stop()
		return "", 0, nil, ctx.Err()
	}
}

func startMongoInProcess(ctx context.Context, dir string) (*mongoServer, error) {
	m, err := embedded.StartMongo(ctx, "127.0.0.1:0", dir, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	return &mongoServer{uri: m.URI, stop: m.Close}, nil
}
