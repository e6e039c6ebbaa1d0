package main

import (
	"bufio"
	"bytes"
	"cmp"
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/mongo"
	mongoopts "go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/auth/token"
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
	// The small stack of figure 7 (nil when it is not measured): the same
	// services over databases of o.small customers.
	authS, customerS, bffS *proc
	gateway                *proc   // the Lura-style gateway of figures 8 and 9
	procs                  []*proc // in start order
	runID                  string
	signingKey             string
	// The large stack's databases (every figure's) and the small one's.
	authDB, customerDB, bffDB    string
	authDBS, customerDBS, bffDBS string
	db                           *mongo.Client // a plain driver client for figure 4, the seeding and the store figures
	users                        []user        // the users the reads rotate over (large stack)
	staff                        string        // an employee's access token (large stack)
	large, small                 *scaleStack   // figure 7's two sides (small: nil when not measured)
	seeding                      []seedLine
	watch                        []cpuWatch // the processes whose CPU time is accounted
}

// user is a seeded user the reads rotate over.
type user struct {
	id, access, email string
	profileID         string
	viewBytes         int // size of the merged view's body
}

// seedLine is one stack's seeding, for the report.
type seedLine struct {
	name      string
	customers int
	ops       int64
	took      time.Duration
	streams   []string                 // each stream's name and time
	cpu       map[string]time.Duration // each watched process's CPU time meanwhile
}

// cpuText lists the processes that spent a tenth of a second or more.
func (l seedLine) cpuText() string {
	names := slices.Sorted(maps.Keys(l.cpu))
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(l.cpu[b], l.cpu[a]) })
	var parts []string
	for _, n := range names {
		if l.cpu[n] >= 100*time.Millisecond {
			parts = append(parts, fmt.Sprintf("%s %.1f s", n, l.cpu[n].Seconds()))
		}
	}
	return strings.Join(parts, " · ")
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
	s.authDB, s.customerDB, s.bffDB = db("auth"), db("customers"), db("bff")
	s.authDBS, s.customerDBS, s.bffDBS = db("small_auth"), db("small_customers"), db("small_bff")
	s.signingKey = randomSecret(32)
	// What the system gives every service (stack.Env, as cmd/stack and the
	// system tests give it), the benchmark's settings, and the service's own.
	wiring := stack.Wiring{
		MongoURI:             mongoURI,
		RedisURL:             s.redis.URL,
		URLs:                 map[string]string{},
		SigningKey:           s.signingKey,
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
	authEnv := func(w stack.Wiring, authDB string) map[string]string {
		return envOf(w, map[string]string{
			"AUTH_DB":            authDB,
			"AUTH_RATE_LIMITS":   "off",
			"ACCESS_TOKEN_TTL":   "1h", // a slow machine's run outlasts the default 5 minutes
			"ARGON2_MEMORY_KIB":  strconv.Itoa(int(o.argon2.MemoryKiB)),
			"ARGON2_ITERATIONS":  strconv.Itoa(int(o.argon2.Iterations)),
			"ARGON2_PARALLELISM": strconv.Itoa(int(o.argon2.Parallelism)),
			// The baseline hashes at exactly this concurrency.
			"PASSWORD_HASH_CONCURRENCY": strconv.Itoa(o.hashConc),
		})
	}
	if s.auth, err = s.start(ctx, nameAuth, "auth", "registration's Argon2id hash; the user of every view", authEnv(wiring, s.authDB)); err != nil {
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
	// bff and bff-miss share one database (two replicas of one BFF, as in
	// production), which holds the seeded sagas and idempotency records.
	bff := func(bffDB, redisURL string, own map[string]string) map[string]string {
		w := wiring
		w.RedisURL = redisURL
		return envOf(w, map[string]string{"BFF_DB": bffDB}, own)
	}
	redisDB := func(n int) string { return strings.TrimSuffix(s.redis.URL, "/0") + "/" + strconv.Itoa(n) }
	for _, b := range []struct {
		p         **proc
		name, use string
		env       map[string]string
	}{
		// Hits (a TTL longer than the run, so no entry expires during a
		// hit figure), the floor, registrations.
		{&s.bff, nameBFF, "cached views, the floor, registrations", bff(s.bffDB, s.redis.URL, map[string]string{
			"CACHE_TTL": "10m", "BFF_BENCH_FLOOR": "true",
		})},
		// Misses: every entry expires a millisecond after it is written.
		// Its own Redis database, so it never finds bff's entries (the
		// change feed's channels are the same in every database).
		{&s.bffMiss, nameBFFMiss, "cache misses (CACHE_TTL=1ms); figure 7's large BFF", bff(s.bffDB, redisDB(1), map[string]string{
			"CACHE_TTL": "1ms",
		})},
		// The cache bypassed on purpose: no REDIS_URL.
		{&s.bffNoCache, nameNoCache, "the cache bypassed on purpose (no REDIS_URL)", bff(db("bff_nocache"), "", nil)},
		// Its Redis is stopped for figure 6.
		{&s.bffDown, nameBFFDown, "its Redis stopped", bff(db("bff_down"), s.redisDown.URL, nil)},
	} {
		if *b.p, err = s.start(ctx, b.name, "bff", b.use, b.env); err != nil {
			return s, err
		}
	}
	if o.wants(7) {
		// The small stack: the same services and settings over their own
		// databases, and their own Redis databases (the producers' change
		// stream in 2, the BFF's cache in 3, as the large stack's bff-miss
		// has its cache apart from the stream).
		ws := wiring
		ws.URLs = map[string]string{}
		ws.RedisURL = redisDB(2)
		if s.authS, err = s.start(ctx, nameAuth+"-s", "auth", "figure 7's small stack", authEnv(ws, s.authDBS)); err != nil {
			return s, err
		}
		ws.URLs["auth"] = s.authS.url()
		if s.customerS, err = s.start(ctx, nameCustomer+"-s", "customer", "figure 7's small stack", envOf(ws, map[string]string{
			"CUSTOMER_DB": s.customerDBS,
		})); err != nil {
			return s, err
		}
		ws.URLs["customer"] = s.customerS.url()
		ws.RedisURL = redisDB(3)
		if s.bffS, err = s.start(ctx, nameBFF+"-s", "bff", "figure 7's small stack (CACHE_TTL=1ms)", envOf(ws, map[string]string{
			"BFF_DB": s.bffDBS, "CACHE_TTL": "1ms",
		})); err != nil {
			return s, err
		}
	}
	if o.wants(8) || o.wants(9) {
		if s.gateway, err = s.startGateway(ctx); err != nil {
			return s, err
		}
	}
	if s.db, err = mongo.Connect(ctx, mongoopts.Client().ApplyURI(mongoURI).SetMaxPoolSize(uint64(max(100, o.conns)))); err != nil {
		return s, fmt.Errorf("mongodb driver: %w", err)
	}
	s.watch = s.watches(ctx)
	progress("%s; seeding %d customers (and %d for figure 7's small stack) through the stores", s.launcher.describe(), o.records, o.small)
	if err := s.seed(ctx, o, progress); err != nil {
		return s, err
	}
	if o.wants(1) || o.wants(5) { // the figures of cached views (9 loads its own, just before it)
		progress("loading the merged views of %d users into bff's cache", len(s.users))
		if err := s.prime(ctx, progress); err != nil {
			return s, err
		}
	}
	return s, nil
}

// seed writes the large stack's o.records customers and the small stack's
// o.small through the stores (seed.go).
func (s *system) seed(ctx context.Context, o options, progress func(string, ...any)) error {
	hash, err := seedHash(ctx, o.argon2)
	if err != nil {
		return err
	}
	tokens, err := token.New(token.Config{Key: []byte(s.signingKey), AccessTTL: 6 * time.Hour})
	if err != nil {
		return err
	}
	type job struct {
		name      string
		n, sample int
		dbs       [3]string
		out       **scaleStack
	}
	jobs := []job{{"large", o.records, o.users, [3]string{s.authDB, s.customerDB, s.bffDB}, &s.large}}
	if o.wants(7) {
		jobs = append(jobs, job{"small", o.small, o.small, [3]string{s.authDBS, s.customerDBS, s.bffDBS}, &s.small})
	}
	for _, j := range jobs {
		st, err := newSeedStack(ctx, s.db, j.name, j.dbs, j.n, j.sample, o.seedConc, tokens, hash, s.runID)
		if err != nil {
			return fmt.Errorf("seeding the %s stack: %w", j.name, err)
		}
		before := cpuTimes(s.watch)
		sd, err := st.seed(ctx)
		if err != nil {
			return err
		}
		after := cpuTimes(s.watch)
		line := seedLine{name: j.name, customers: j.n, ops: sd.ops, took: sd.took, cpu: map[string]time.Duration{}}
		for i, w := range s.watch {
			line.cpu[w.name] = after[i] - before[i]
		}
		for k, name := range sd.streamNames {
			line.streams = append(line.streams, fmt.Sprintf("%s %s", name, sd.streams[k].Round(10*time.Millisecond)))
		}
		progress("seeded %d customers of the %s stack in %s (%d store calls; streams: %s; CPU: %s)", j.n, j.name,
			sd.took.Round(time.Millisecond), sd.ops, strings.Join(line.streams, ", "), line.cpuText())
		s.seeding = append(s.seeding, line)
		*j.out = &scaleStack{name: j.name, records: j.n, seeded: sd, store: st.bff, victims: &tokenPool{}}
	}
	s.users, s.staff = s.large.users, s.large.staff
	s.large.auth, s.large.customer, s.large.bff = s.auth, s.customer, s.bffMiss
	if s.small != nil {
		s.small.auth, s.small.customer, s.small.bff = s.authS, s.customerS, s.bffS
	}
	return nil
}

// prime loads each rotating user's merged view once through bff, which
// caches it, and records its size (the floor of figure 1 answers as much).
// A view that cannot be loaded (twice) is not fatal: the figures that need
// it count its wrong answers and say so.
func (s *system) prime(ctx context.Context, progress func(string, ...any)) error {
	var failed atomic.Int64
	var last atomic.Value
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range s.users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			for attempt := 0; attempt < 2 && ctx.Err() == nil; attempt++ {
				status, body, hdr, err := call(ctx, http.MethodGet, s.bff.url()+"/api/bff/me/", s.users[i].access, nil)
				if err == nil && status == http.StatusOK {
					s.users[i].viewBytes = len(body)
					return
				}
				last.Store(fmt.Sprintf("%d X-Cache %q %v: %.200s", status, hdr.Get("X-Cache"), err, body))
			}
			failed.Add(1)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if n := failed.Load(); n > 0 {
		progress("%d of %d views could not be loaded (last: %s)", n, len(s.users), last.Load())
		typical := 0
		for _, u := range s.users {
			typical = max(typical, u.viewBytes)
		}
		for i := range s.users {
			if s.users[i].viewBytes == 0 {
				s.users[i].viewBytes = typical
			}
		}
	}
	return nil
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
