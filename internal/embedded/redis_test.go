package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// A redis-server that does not come up on the address it is waited for is
// killed, not left running.
func TestStartRedisServerKillsOneNotReady(t *testing.T) {
	t.Parallel()
	if RedisServerPath() == "" {
		t.Skip("redis-server is not installed (Debian: apt-get install redis-server)")
	}
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	listens := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waited := net.JoinHostPort("127.0.0.1", strconv.Itoa(other))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	cmd, err := startRedisServer(ctx, waited, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning", "--dir", t.TempDir())
	if err == nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("redis-server listening on %s, waited for on %s: no error", listens, waited)
	}
	if c, err := net.DialTimeout("tcp", listens, 200*time.Millisecond); err == nil {
		c.Close()
		t.Errorf("redis-server still accepts on %s after the failed start", listens)
	}
}

// A redis-server started on an address another server took between the
// port's pick and the start (here a miniredis: any Redis answers PING) is
// not taken for ours: errNotOurs, so that the caller picks another port,
// and ours, which could not bind, is gone. Before, the first connection
// accepted there was taken for ours.
func TestStartRedisServerOnATakenPort(t *testing.T) {
	t.Parallel()
	if RedisServerPath() == "" {
		t.Skip("redis-server is not installed (Debian: apt-get install redis-server)")
	}
	other := miniredis.RunT(t)
	_, port, _ := net.SplitHostPort(other.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd, err := startRedisServer(ctx, other.Addr(), "--bind", "127.0.0.1", "--port", port,
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning", "--dir", t.TempDir())
	if err == nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("redis-server on %s, which miniredis holds: no error", other.Addr())
	}
	if !errors.Is(err, errNotOurs) {
		t.Fatalf("redis-server on a taken port: %v, want errNotOurs", err)
	}
	tries := 0
	err = onFreePort("127.0.0.1", func(p int) error {
		tries++
		if tries == 1 {
			return fmt.Errorf("port %d: %w", p, errNotOurs)
		}
		return nil
	})
	if err != nil || tries != 2 {
		t.Fatalf("onFreePort after a taken port: %v after %d tries, want a second try that succeeds", err, tries)
	}
}
