package embedded

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"
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
