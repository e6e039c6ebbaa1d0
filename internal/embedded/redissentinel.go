package embedded

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisSentinel is a running Sentinel setup of real redis-server
// processes on free local ports: one master and one Sentinel monitoring it
// under MasterName (quorum 1). Debian's redis-server binary runs as a
// Sentinel with --sentinel (the redis-sentinel package only adds a
// redis-sentinel link to it and a service), so no other package is needed.
type RedisSentinel struct {
	MasterName   string
	MasterAddr   string // host:port of the master
	SentinelAddr string // host:port of the Sentinel
	// URL is the setup's REDIS_URL form (redisconn):
	// redis-sentinel://sentinel-host:port/master-name
	URL string

	processes
}

// StartRedisSentinel starts the master and the Sentinel and waits until the
// Sentinel names the master.
func StartRedisSentinel(ctx context.Context) (_ *RedisSentinel, err error) {
	if RedisServerPath() == "" {
		return nil, ErrNoRedisServer
	}
	dir, err := os.MkdirTemp("", "redis-sentinel-*")
	if err != nil {
		return nil, fmt.Errorf("embedded redis sentinel: %w", err)
	}
	s := &RedisSentinel{MasterName: "mymaster", processes: processes{dir: dir}}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	var masterPort int
	err = onFreePort("127.0.0.1", func(port int) error {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		master, err := startRedisServer(ctx, addr, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning", "--dir", dir)
		if err != nil {
			return err
		}
		s.procs = append(s.procs, master)
		s.MasterAddr, masterPort = addr, port
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded redis sentinel: the master: %w", err)
	}
	// A Sentinel rewrites its configuration file, so it needs one of its own.
	conf := filepath.Join(dir, "sentinel.conf")
	err = onFreePort("127.0.0.1", func(port int) error {
		if err := os.WriteFile(conf, fmt.Appendf(nil, "bind 127.0.0.1\nport %d\nprotected-mode no\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 5000\n",
			port, dir, s.MasterName, masterPort, s.MasterName), 0o600); err != nil {
			return err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		sentinel, err := startRedisServer(ctx, addr, conf, "--sentinel", "--loglevel", "warning")
		if err != nil {
			return err
		}
		s.procs = append(s.procs, sentinel)
		s.SentinelAddr = addr
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("embedded redis sentinel: the Sentinel: %w", err)
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.SentinelAddr, MaxRetries: -1})
	defer sc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		addr, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		if err == nil && len(addr) == 2 && net.JoinHostPort(addr[0], addr[1]) == s.MasterAddr {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("embedded redis sentinel: the Sentinel does not name master %s within 30s (%v)", s.MasterName, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.URL = "redis-sentinel://" + s.SentinelAddr + "/" + s.MasterName
	return s, nil
}
