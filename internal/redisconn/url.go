package redisconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ParseURL reads the three forms REDIS_URL takes:
//
//	redis://[user:password@]host:port[/db]            one node (rediss:// for TLS)
//	redis-cluster://[user:password@]host:port,host:port,.../
//	                                                  a Redis Cluster: any seed nodes; the
//	                                                  client discovers the others (rediss-cluster:// for TLS)
//	redis-sentinel://[user:password@]host:port,host:port/master[/db]
//	                                                  the master a set of Sentinels names
//	                                                  (rediss-sentinel:// for TLS)
//
// The credentials are the data nodes'; a Sentinel's own password, when it
// has one, is the query parameter sentinel_password.
func ParseURL(raw string) (*redis.UniversalOptions, error) {
	// A list of hosts is no URL host net/url accepts ("a:7000,b" has the
	// port "7000,b"), so the host list is cut out first and the rest parsed
	// around a placeholder host.
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, errors.New("not a URL: want scheme://host:port")
	}
	hostEnd := strings.IndexAny(rest, "/?")
	if hostEnd < 0 {
		hostEnd = len(rest)
	}
	userinfo, hosts := "", rest[:hostEnd]
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		userinfo, hosts = hosts[:at+1], hosts[at+1:]
	}
	u, err := url.Parse(scheme + "://" + userinfo + "placeholder" + rest[hostEnd:])
	if err != nil {
		return nil, errors.New("not a URL") // url's error quotes the URL, password included
	}
	kind, tlsOn := strings.CutPrefix(u.Scheme, "rediss")
	if !tlsOn {
		kind, _ = strings.CutPrefix(u.Scheme, "redis")
	}
	if u.Scheme != "redis"+kind && u.Scheme != "rediss"+kind {
		return nil, fmt.Errorf("scheme %q: want redis, redis-cluster or redis-sentinel (or rediss...)", u.Scheme)
	}
	o := &redis.UniversalOptions{Username: u.User.Username()}
	o.Password, _ = u.User.Password()
	if tlsOn {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	addrs := strings.Split(hosts, ",")
	for i, a := range addrs {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			h, p = a, "6379"
		}
		if _, err := strconv.ParseUint(p, 10, 16); err != nil || h == "" || strings.ContainsAny(h, " /?#@") {
			return nil, errors.New("not a URL: a host is not host[:port]")
		}
		addrs[i] = net.JoinHostPort(h, p)
	}
	o.Addrs = addrs
	path := strings.Split(strings.Trim(u.Path, "/"), "/")
	if path[0] == "" {
		path = path[1:]
	}
	db := func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("database %q: want a number", s)
		}
		o.DB = n
		return nil
	}
	switch kind {
	case "":
		if len(addrs) != 1 {
			return nil, errors.New("redis:// names one node; use redis-cluster:// or redis-sentinel:// for several")
		}
		if len(path) > 1 {
			return nil, errors.New("path: want /db")
		}
		if len(path) == 1 {
			if err := db(path[0]); err != nil {
				return nil, err
			}
		}
	case "-cluster":
		if len(path) > 0 {
			return nil, errors.New("a cluster has only database 0: no path")
		}
		o.IsClusterMode = true
	case "-sentinel":
		if len(path) < 1 || len(path) > 2 {
			return nil, errors.New("path: want /master or /master/db")
		}
		o.MasterName = path[0]
		if len(path) == 2 {
			if err := db(path[1]); err != nil {
				return nil, err
			}
		}
		o.SentinelPassword = u.Query().Get("sentinel_password")
	default:
		return nil, fmt.Errorf("scheme %q: want redis, redis-cluster or redis-sentinel (or rediss...)", u.Scheme)
	}
	return o, nil
}
