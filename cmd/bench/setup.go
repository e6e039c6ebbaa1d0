package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/mongo"
	mongoopts "go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/stack"
)

// system is the system under test.
type system struct {
	launcher  launcher
	mongo     *mongoServer
	redis     *embedded.Redis // the cache of bff and bff-miss; the services' change feed
	redisDown *embedded.Redis // bff-down's cache, stopped for figure 6
	// The services: one auth, one customer, and four BFFs that differ
	// only in their cache (see startSystem).
	auth, customer, bff, bffMiss, bffNoCache, bffDown *proc
	procs                                             []*proc // in start order
	runID                                             string
	customerDB                                        string
	db                                                *mongo.Client // a plain driver client for figure 4
	users                                             []user
	watch                                             []cpuWatch // the processes whose CPU time is accounted
}

// user is a registered user the reads rotate over.
type user struct {
	id, access string
	viewBytes  int // size of the merged view's body
}

// Service names, as they appear in the report and the log file names.
const (
	nameAuth     = "auth"
	nameCustomer = "customer"
	nameBFF      = "bff"
	nameBFFMiss  = "bff-miss"
	nameNoCache  = "bff-nocache"
	nameBFFDown  = "bff-down"
)

func startSystem(ctx context.Context, o options, dir string, stderr io.Writer, progress func(string, ...any)) (*system, error) {
	s := &system{runID: newRunID()}
	logDir, err := subdir(dir, "logs")
	if err != nil {
		return nil, err
	}
	if o.inProcess {
		s.launcher = inProcessLauncher{logDir: logDir}
	} else {
		binDir, err := subdir(dir, "bin")
		if err != nil {
			return nil, err
		}
		progress("building cmd/auth, cmd/customer and cmd/bff")
		if err := buildBinaries(ctx, binDir, stderr); err != nil {
			return nil, err
		}
		s.launcher = childLauncher{binDir: binDir, logDir: logDir}
	}

	mongoURI := o.mongoURI
	if mongoURI == "" {
		mdir, err := subdir(dir, "ferretdb")
		if err != nil {
			return s, err
		}
		if o.inProcess {
			s.mongo, err = startMongoInProcess(ctx, mdir)
		} else {
			s.mongo, err = startMongoChild(ctx, mdir)
		}
		if err != nil {
			return s, err
		}
		mongoURI = s.mongo.uri
	}
	if s.redis, err = embedded.StartRedis(ctx, "127.0.0.1:0", true); err != nil {
		return s, err
	}
	if s.redisDown, err = embedded.StartRedis(ctx, "127.0.0.1:0", true); err != nil {
		return s, err
	}

	db := func(name string) string { return "bench_" + s.runID + "_" + name }
	s.customerDB = db("customers")
	// What the system gives every service (stack.Env, as cmd/stack and the
	// system tests give it), the benchmark's settings, and the service's own.
	wiring := stack.Wiring{
		MongoURI:             mongoURI,
		RedisURL:             s.redis.URL,
		URLs:                 map[string]string{},
		SigningKey:           randomSecret(32),
		BFFClientSecret:      randomSecret(24),
		MigrateClientSecret:  randomSecret(24),
		CustomerClientSecret: randomSecret(24),
	}
	common := map[string]string{
		"HTTP_ADDR":              "127.0.0.1:0",
		"METRICS_ADDR":           "127.0.0.1:0",
		"LOG_LEVEL":              "info",
		"SHUTDOWN_TIMEOUT":       "5s",
		"DEPLOYMENT_ENVIRONMENT": "benchmark",
	}
	envOf := func(w stack.Wiring, own ...map[string]string) map[string]string {
		env := stack.Env(w)
		maps.Copy(env, common)
		for _, o := range own {
			maps.Copy(env, o)
		}
		return env
	}
	if s.auth, err = s.start(ctx, nameAuth, "auth", "registration's Argon2id hash; the user of every view", envOf(wiring, map[string]string{
		"AUTH_DB":            db("auth"),
		"AUTH_RATE_LIMITS":   "off",
		"ACCESS_TOKEN_TTL":   "1h", // a slow machine's run outlasts the default 5 minutes
		"ARGON2_MEMORY_KIB":  strconv.Itoa(int(o.argon2.MemoryKiB)),
		"ARGON2_ITERATIONS":  strconv.Itoa(int(o.argon2.Iterations)),
		"ARGON2_PARALLELISM": strconv.Itoa(int(o.argon2.Parallelism)),
		// The baseline hashes at exactly this concurrency.
		"PASSWORD_HASH_CONCURRENCY": strconv.Itoa(o.hashConc),
	})); err != nil {
		return s, err
	}
	wiring.URLs["auth"] = s.auth.url()
	if s.customer, err = s.start(ctx, nameCustomer, "customer", "the profile of every view", envOf(wiring, map[string]string{
		"CUSTOMER_DB": s.customerDB,
	})); err != nil {
		return s, err
	}
	wiring.URLs["customer"] = s.customer.url()
	// The BFFs differ in their database and their cache's Redis ("": none).
	bff := func(bffDB, redisURL string, own map[string]string) map[string]string {
		w := wiring
		w.RedisURL = redisURL
		return envOf(w, map[string]string{"BFF_DB": db(bffDB)}, own)
	}
	for _, b := range []struct {
		p         **proc
		name, use string
		env       map[string]string
	}{
		// Hits (a TTL longer than the run, so no entry expires during a
		// hit figure), the floor, registrations.
		{&s.bff, nameBFF, "cached views, the floor, registrations", bff("bff", s.redis.URL, map[string]string{
			"CACHE_TTL": "10m", "BFF_BENCH_FLOOR": "true",
		})},
		// Misses: every entry expires a millisecond after it is written.
		// Its own Redis database, so it never finds bff's entries (the
		// change feed's channels are the same in every database).
		{&s.bffMiss, nameBFFMiss, "cache misses (CACHE_TTL=1ms)", bff("bff_miss", strings.TrimSuffix(s.redis.URL, "/0")+"/1", map[string]string{
			"CACHE_TTL": "1ms",
		})},
		// The cache bypassed on purpose: no REDIS_URL.
		{&s.bffNoCache, nameNoCache, "the cache bypassed on purpose (no REDIS_URL)", bff("bff_nocache", "", nil)},
		// Its Redis is stopped for figure 6.
		{&s.bffDown, nameBFFDown, "its Redis stopped", bff("bff_down", s.redisDown.URL, nil)},
	} {
		if *b.p, err = s.start(ctx, b.name, "bff", b.use, b.env); err != nil {
			return s, err
		}
	}
	if s.db, err = mongo.Connect(ctx, mongoopts.Client().ApplyURI(mongoURI).SetMaxPoolSize(uint64(max(100, o.conns)))); err != nil {
		return s, fmt.Errorf("mongodb driver: %w", err)
	}
	s.watch = s.watches(ctx)
	progress("%s; registering %d users", s.launcher.describe(), o.users)
	if s.users, err = s.register(ctx, o.users); err != nil {
		return s, err
	}
	return s, nil
}

// watches lists the processes of the system and the benchmark itself.
func (s *system) watches(ctx context.Context) []cpuWatch {
	self := "bench"
	if _, in := s.launcher.(inProcessLauncher); in {
		self = "bench and the services"
	}
	ws := []cpuWatch{{self, os.Getpid()}}
	for _, p := range s.procs {
		if p.pid != 0 {
			ws = append(ws, cpuWatch{p.name, p.pid})
		}
	}
	if s.mongo != nil && s.mongo.pid != 0 {
		ws = append(ws, cpuWatch{"ferretdb", s.mongo.pid})
	}
	for _, r := range []struct {
		name string
		r    *embedded.Redis
	}{{"redis-server", s.redis}, {"redis-server (bff-down's)", s.redisDown}} {
		if r.r.Kind != embedded.RedisServer {
			continue
		}
		if pid, err := redisPID(ctx, r.r.URL); err == nil {
			ws = append(ws, cpuWatch{r.name, pid})
		}
	}
	return ws
}

// start launches one service and waits until it is ready.
func (s *system) start(ctx context.Context, name, service, role string, env map[string]string) (*proc, error) {
	p, err := s.launcher.start(ctx, name, service, env)
	if err != nil {
		return nil, err
	}
	p.role = role
	s.procs = append(s.procs, p)
	if err := waitReady(ctx, p); err != nil {
		return p, fmt.Errorf("%w; its log:\n%s", err, tail(p.logPath, 20))
	}
	return p, nil
}

// stop stops everything, services first.
func (s *system) stop() error {
	var errs []error
	if s.db != nil {
		_ = s.db.Disconnect(context.Background())
	}
	for i := len(s.procs) - 1; i >= 0; i-- {
		if err := s.procs[i].stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.procs[i].name, err))
		}
	}
	for _, r := range []*embedded.Redis{s.redis, s.redisDown} {
		if r != nil {
			r.Stop()
		}
	}
	if s.mongo != nil {
		s.mongo.stop()
	}
	return errors.Join(errs...)
}

func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// benchPassword passes the auth service's rules (length, not numeric, not
// common, not like the email or names).
const benchPassword = "Quiet-Harbor-Lantern-42"

// registration is the body of a BFF registration of email.
func registration(email string, i uint64) []byte {
	b, _ := json.Marshal(map[string]string{
		"email": email, "first_name": "Bench", "last_name": "Runner" + strconv.FormatUint(i%1000, 10),
		"phone_number": "+15035550100", "password1": benchPassword, "password2": benchPassword,
		"street_address": "123 Main St", "city": "Portland", "state": "OR", "postal_code": "97201",
	})
	return b
}

func (s *system) email(i uint64) string {
	return "bench-" + s.runID + "-" + strconv.FormatUint(i, 10) + "@example.com"
}

// register registers n users through the BFF (a few at a time) and loads
// each one's merged view once, which caches it in bff's Redis.
func (s *system) register(ctx context.Context, n int) ([]user, error) {
	users := make([]user, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			users[i], errs[i] = s.registerOne(ctx, uint64(1_000_000+i))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i := range users {
		status, body, hdr, err := call(ctx, http.MethodGet, s.bff.url()+"/api/bff/me/", users[i].access, nil)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK || hdr.Get("X-Cache") != "MISS" {
			return nil, fmt.Errorf("first GET /api/bff/me/: %d X-Cache %q: %.300s", status, hdr.Get("X-Cache"), body)
		}
		users[i].viewBytes = len(body)
	}
	return users, nil
}

func (s *system) registerOne(ctx context.Context, i uint64) (user, error) {
	status, body, _, err := call(ctx, http.MethodPost, s.bff.url()+"/api/bff/register/", "", registration(s.email(i), i))
	if err != nil {
		return user{}, err
	}
	if status != http.StatusCreated {
		return user{}, fmt.Errorf("registration: %d %.300s", status, body)
	}
	var a struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		Profile *struct {
			UserID string `json:"user_id"`
		} `json:"profile"`
		Tokens struct {
			Access string `json:"access"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.User.ID == "" || a.Tokens.Access == "" || a.Profile == nil {
		return user{}, fmt.Errorf("registration answer: %v: %.300s", err, body)
	}
	return user{id: a.User.ID, access: a.Tokens.Access}, nil
}

// call is a plain HTTP call for the setup (not measured).
func call(ctx context.Context, method, url, token string, body []byte) (int, []byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, resp.Header, err
}

// memUse is one process's peak resident memory.
type memUse struct {
	name, role string
	peak       int64 // bytes; 0 when unknown
	note       string
}

// memory reads each process's peak resident set size (VmHWM).
func (s *system) memory(ctx context.Context) []memUse {
	var out []memUse
	for _, p := range s.procs {
		m := memUse{name: p.name, role: p.role}
		if p.pid == 0 {
			m.note = "in process: not attributable"
		} else if b, err := peakRSS(p.pid); err != nil {
			m.note = err.Error()
		} else {
			m.peak = b
		}
		out = append(out, m)
	}
	if s.mongo != nil && s.mongo.pid != 0 {
		m := memUse{name: "ferretdb", role: "the embedded MongoDB-protocol server (SQLite)"}
		if b, err := peakRSS(s.mongo.pid); err == nil {
			m.peak = b
		} else {
			m.note = err.Error()
		}
		out = append(out, m)
	}
	if s.redis != nil && s.redis.Kind == embedded.RedisServer {
		m := memUse{name: "redis-server", role: "the cache and the change feed"}
		if pid, err := redisPID(ctx, s.redis.URL); err != nil {
			m.note = err.Error()
		} else if b, err := peakRSS(pid); err != nil {
			m.note = err.Error()
		} else {
			m.peak = b
		}
		out = append(out, m)
	}
	return out
}

// redisInfo returns one field of INFO server.
func redisInfo(ctx context.Context, url, field string) (string, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return "", err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("redis INFO has no %s", field)
}

func redisPID(ctx context.Context, url string) (int, error) {
	v, err := redisInfo(ctx, url, "process_id")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}
