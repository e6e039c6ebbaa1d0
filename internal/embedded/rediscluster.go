package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a running Redis Cluster of real redis-server masters on
// free local ports, each owning an even share of the 16,384 hash slots, no
// replicas. Tests use it to run the code as it runs against a production
// cluster: every key routed by its slot, every multi-key command refused
// across slots (CROSSSLOT).
type RedisCluster struct {
	Addrs []string // host:port of each master
	// URL is the cluster's REDIS_URL form (redisconn):
	// redis-cluster://host:port,host:port,.../
	URL string

	processes
}

// processes are the redis-server processes of a test deployment and the
// directory of their files.
type processes struct {
	dir   string
	procs []*exec.Cmd
}

// Stop kills the processes and removes their files.
func (p *processes) Stop() {
	for _, cmd := range p.procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	p.procs = nil
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}

// ErrNoRedisServer is returned when redis-server is not installed.
var ErrNoRedisServer = errors.New("redis-server is not installed")

// StartRedisCluster starts masters cluster-enabled redis-servers on
// 127.0.0.1, assigns the slots (CLUSTER ADDSLOTSRANGE), joins them
// (CLUSTER MEET) and waits until every node reports cluster_state:ok.
func StartRedisCluster(ctx context.Context, masters int) (_ *RedisCluster, err error) {
	if RedisServerPath() == "" {
		return nil, ErrNoRedisServer
	}
	if masters < 1 {
		return nil, fmt.Errorf("embedded redis cluster: %d masters", masters)
	}
	dir, err := os.MkdirTemp("", "redis-cluster-*")
	if err != nil {
		return nil, fmt.Errorf("embedded redis cluster: %w", err)
	}
	c := &RedisCluster{processes: processes{dir: dir}}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	for i := range masters {
		nodeDir := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(nodeDir, 0o700); err != nil {
			return nil, fmt.Errorf("embedded redis cluster: %w", err)
		}
		err := onFreePort("127.0.0.1", func(port int) error {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			cmd, err := startRedisServer(ctx, addr,
				"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
				"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(nodeDir, "nodes.conf"),
				"--cluster-node-timeout", "5000",
				"--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning",
				"--dir", nodeDir)
			if err != nil {
				return err
			}
			c.procs = append(c.procs, cmd)
			c.Addrs = append(c.Addrs, addr)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("embedded redis cluster: node %d: %w", i, err)
		}
	}
	if err := c.form(ctx); err != nil {
		return nil, fmt.Errorf("embedded redis cluster: %w", err)
	}
	c.URL = "redis-cluster://" + strings.Join(c.Addrs, ",") + "/"
	return c, nil
}

// form assigns each node its range of slots, introduces the nodes to the
// first one and waits for the cluster to agree.
func (c *RedisCluster) form(ctx context.Context) error {
	const slots = 16384
	clients := make([]*redis.Client, len(c.Addrs))
	for i, a := range c.Addrs {
		clients[i] = redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		defer clients[i].Close()
	}
	n := len(c.Addrs)
	for i, cl := range clients {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("%s: CLUSTER ADDSLOTSRANGE %d %d: %w", c.Addrs[i], lo, hi, err)
		}
	}
	for _, a := range c.Addrs[1:] {
		host, port, _ := net.SplitHostPort(a)
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET %s: %w", a, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the cluster did not reach cluster_state:ok within 30s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
