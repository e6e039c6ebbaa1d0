package embedded

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
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
	kind := MiniRedis
	if preferReal && RedisServerPath() != "" {
		kind = RedisServer
	}
	var r *Redis
	start := func(port string) error {
		r = &Redis{Kind: kind, Addr: net.JoinHostPort(host, port)}
		r.URL = "redis://" + r.Addr + "/0"
		return r.Start(ctx)
	}
	if port != "0" {
		err = start(port)
	} else {
		err = onFreePort(host, func(p int) error { return start(strconv.Itoa(p)) })
	}
	if err != nil {
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
			if errors.Is(err, syscall.EADDRINUSE) {
				err = errors.Join(err, errNotOurs)
			}
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

// errNotOurs is a redis-server that did not come up on its address: it
// exited (the port taken meanwhile, say) or another process answers there.
// A caller that picked the port itself picks another (onFreePort).
var errNotOurs = errors.New("the address is not this redis-server's")

// startRedisServer starts redis-server with args and waits until it
// answers on addr as itself (INFO's process_id is its pid: not another
// process that took a free port between its pick and this start); one that
// does not within 10 s, exits or finds another process there is killed.
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
	exited := make(chan struct{}) // its standard error closed: it exited
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
		}
		close(exited)
	}()
	if err := waitOwn(ctx, addr, cmd.Process.Pid, exited, 10*time.Second); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	return cmd, nil
}

// waitOwn waits until the redis-server of pid answers on addr.
func waitOwn(ctx context.Context, addr string, pid int, exited <-chan struct{}, limit time.Duration) error {
	cl := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer cl.Close()
	deadline := time.Now().Add(limit)
	for {
		info, err := cl.Info(ctx, "server").Result()
		switch {
		case err == nil && strings.Contains(info, "\nprocess_id:"+strconv.Itoa(pid)+"\r\n"):
			return nil
		case err == nil:
			return fmt.Errorf("%s: another process answers: %w", addr, errNotOurs)
		case time.Now().After(deadline):
			return fmt.Errorf("%s did not answer within %s: %w", addr, limit, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("%s: it exited before answering: %w", addr, errNotOurs)
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// onFreePort runs start on a free port of host, and again on another when
// the port was taken before the server bound it (errNotOurs).
func onFreePort(host string, start func(port int) error) error {
	var err error
	for range 3 {
		var port int
		if port, err = freePort(host); err != nil {
			return err
		}
		if err = start(port); !errors.Is(err, errNotOurs) {
			return err
		}
	}
	return err
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
