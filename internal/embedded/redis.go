package embedded

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Redis kinds.
const (
	RedisServer = "redis-server" // the real server, as a child process
	MiniRedis   = "miniredis"    // the embedded Go implementation
)

// Redis is a running development Redis that can be stopped and started
// again on the same address (tests use that to simulate an outage).
type Redis struct {
	Kind string // RedisServer or MiniRedis
	Addr string // host:port
	URL  string // redis://host:port/0

	mu   sync.Mutex
	cmd  *exec.Cmd
	mini *miniredis.Miniredis
}

// RedisServerPath returns the path of an installed redis-server, or "".
func RedisServerPath() string {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return ""
	}
	return p
}

// StartRedis starts a real redis-server on addr when one is installed (and
// preferReal is true), else miniredis. Port 0 picks a free port.
func StartRedis(ctx context.Context, addr string, preferReal bool) (*Redis, error) {
	if err := checkFree(addr); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	if port == "0" {
		p, err := freePort(host)
		if err != nil {
			return nil, fmt.Errorf("embedded redis: %w", err)
		}
		port = strconv.Itoa(p)
	}
	r := &Redis{Addr: net.JoinHostPort(host, port)}
	r.URL = "redis://" + r.Addr + "/0"
	if preferReal && RedisServerPath() != "" {
		r.Kind = RedisServer
	} else {
		r.Kind = MiniRedis
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Start (re)starts the server on its address.
func (r *Redis) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil || r.mini != nil {
		return nil
	}
	if r.Kind == MiniRedis {
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr(r.Addr); err != nil {
			return fmt.Errorf("embedded redis: miniredis on %s: %w", r.Addr, err)
		}
		r.mini = m
		return nil
	}
	host, port, _ := net.SplitHostPort(r.Addr)
	cmd, err := startRedisServer(ctx, r.Addr,
		"--bind", host, "--port", port,
		"--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--loglevel", "warning",
		"--dir", os.TempDir())
	if err != nil {
		return fmt.Errorf("embedded redis: %w", err)
	}
	r.cmd = cmd
	return nil
}

// startRedisServer starts redis-server with args and waits until it
// accepts connections on addr; one that does not within 10 s is killed.
// Its standard error is drained, so it never blocks on a full pipe.
func startRedisServer(ctx context.Context, addr string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(RedisServerPath(), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("redis-server on %s: %w", addr, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server on %s: %w", addr, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
		}
	}()
	if err := waitDial(ctx, addr, 10*time.Second); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	return cmd, nil
}

// Stop stops the server; its data is gone (it is a cache).
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mini != nil {
		r.mini.Close()
		r.mini = nil
	}
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Close is Stop.
func (r *Redis) Close() { r.Stop() }

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
