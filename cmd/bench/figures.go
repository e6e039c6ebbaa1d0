package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/acme/customer-platform/auth/password"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
)

// figure is one ratio of the table.
type figure struct {
	num    int
	title  string
	value  float64
	target float64
	atMost bool      // the target is an upper bound
	per    []float64 // the ratio round by round
	detail string
	err    error // the measurement is not valid (failed operations)
	cpu    []sideCPU
	notes  []string // operations not counted, when within the tolerance
}

// noteFailures records the sides' uncounted operations.
func (f *figure) noteFailures(sides ...*side) {
	for _, s := range sides {
		if n := s.failures(); n != "" {
			f.notes = append(f.notes, n)
		}
	}
}

// sideCPU is the CPU time per operation each process spent for one side.
type sideCPU struct {
	side  string
	perOp map[string]time.Duration
}

func cpuOf(sides ...*side) []sideCPU {
	var out []sideCPU
	for _, s := range sides {
		t := s.total()
		n := t.n + t.drained // every operation whose CPU time was measured
		if t.n == 0 {
			continue
		}
		c := sideCPU{side: s.name, perOp: map[string]time.Duration{}}
		for name, d := range s.cpu {
			c.perOp[name] = d / time.Duration(n)
		}
		out = append(out, c)
	}
	return out
}

func (f figure) met() bool {
	if f.err != nil || math.IsNaN(f.value) {
		return false
	}
	if f.atMost {
		return f.value <= f.target
	}
	return f.value >= f.target
}

// latencyRow is a line of figure 5.
type latencyRow struct {
	note           string // operations not counted, within the tolerance
	name           string
	conns          int
	n              int
	rate           float64
	p50, p99, p999 time.Duration
	err            error
}

func latencyOf(name string, conns int, s *side) latencyRow {
	return latencyWithin(name, conns, s, maxFailures)
}

// latencyWithin is latencyOf tolerating another share of uncounted
// operations.
func latencyWithin(name string, conns int, s *side, share float64) latencyRow {
	t := s.total()
	return latencyRow{name: name, conns: conns, n: t.n, rate: t.rate(),
		p50: percentile(t.lat, 0.50), p99: percentile(t.lat, 0.99), p999: percentile(t.lat, 0.999),
		err: s.checkWithin(share), note: s.failures()}
}

// results are everything the report shows.
type results struct {
	figures []figure
	latency []latencyRow // figure 5
	scaling []scaleRow   // figure 7
	memory  []memUse
	elapsed time.Duration
}

// measure runs the selected figures. The reads come first; the writes of
// figure 7 and the registrations, which grow the databases, come last.
func measure(ctx context.Context, o options, s *system, progress func(string, ...any)) (*results, error) {
	res := &results{}
	step := func(name string) func(string) {
		return func(msg string) { progress("%s: %s", name, msg) }
	}
	if o.wants(1) {
		f, hit, floor, err := figure1(ctx, o, s, step("figure 1"))
		if err != nil {
			return nil, err
		}
		res.figures = append(res.figures, f)
		if o.wants(5) {
			res.latency = append(res.latency,
				latencyOf("cached GET /api/bff/me/ (HIT)", o.conns, hit),
				latencyOf("floor (token check, static body)", o.conns, floor))
		}
	}
	if o.wants(2) {
		f, err := figure2(ctx, o, s, step("figure 2"))
		if err != nil {
			return nil, err
		}
		res.figures = append(res.figures, f)
	}
	if o.wants(5) {
		row, err := missesUnderLoad(ctx, o, s, step("figure 5"))
		if err != nil {
			return nil, err
		}
		res.latency = append(res.latency, row)
	}
	if o.wants(4) {
		f, err := figure4(ctx, o, s, step("figure 4"))
		if err != nil {
			return nil, err
		}
		res.figures = append(res.figures, f)
	}
	if o.wants(6) {
		f, err := figure6(ctx, o, s, step("figure 6"))
		if err != nil {
			return nil, err
		}
		res.figures = append(res.figures, f)
	}
	if o.wants(8) || o.wants(9) {
		// The cached side needs the views in bff's cache: load them again
		// (an outage of bff's Redis breaker during the figures before
		// retires every view written before it).
		if err := s.prime(ctx, progress); err != nil {
			return nil, err
		}
		fs, err := figuresGateway(ctx, o, s, step("figures 8 and 9"))
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			if o.wants(f.num) {
				res.figures = append(res.figures, f)
			}
		}
	}
	// Figure 7 writes (registrations, deletions, increments), so it comes
	// after the read figures and before figure 3's registrations grow
	// the large stack beyond its seeded size.
	if o.wants(7) {
		f, rows, err := figure7(ctx, o, s, step("figure 7"))
		if err != nil {
			return nil, err
		}
		res.figures = append(res.figures, f)
		res.scaling = rows
	}
	if o.wants(3) {
		f, err := figure3(ctx, o, s, step("figure 3"))
		if err != nil {
			return nil, err
		}
		res.figures = append(res.figures, f)
	}
	if o.wants(5) {
		row, err := registrationsUnderLoad(ctx, o, s, step("figure 5"))
		if err != nil {
			return nil, err
		}
		res.latency = append(res.latency, row)
	}
	return res, nil
}

// rotate cycles through prepared requests.
func rotate(reqs [][]byte) func(uint64) []byte {
	return func(i uint64) []byte { return reqs[i%uint64(len(reqs))] }
}

// perUser prepares one request per user.
func perUser(s *system, f func(u user) []byte) [][]byte {
	out := make([][]byte, len(s.users))
	for i, u := range s.users {
		out[i] = f(u)
	}
	return out
}

func status(want int, cache string) func(reply) error {
	return func(r reply) error { return expect(r, want, cache) }
}

func closeAll(sides ...*side) {
	for _, s := range sides {
		s.close()
	}
}

func perSecond(s *side) string { return fmt.Sprintf("%.0f/s", s.total().rate()) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// figure1: cached merged view against the floor served by the same binary.
func figure1(ctx context.Context, o options, s *system, progress func(string)) (figure, *side, *side, error) {
	addr := s.bff.addr
	hit := httpSide("cached view", addr, o.conns, rotate(perUser(s, func(u user) []byte {
		return getRequest(addr, "/api/bff/me/", u.access)
	})), status(http.StatusOK, "HIT"))
	floor := httpSide("floor", addr, o.conns, rotate(perUser(s, func(u user) []byte {
		return getRequest(addr, "/api/bff/bench/floor/?bytes="+strconv.Itoa(u.viewBytes), u.access)
	})), status(http.StatusOK, ""))
	defer closeAll(hit, floor)
	if err := interleave(ctx, []*side{hit, floor}, o.rounds, o.round, o.warm, s.watch, progress); err != nil {
		return figure{}, nil, nil, err
	}
	f := figure{num: 1, target: 0.80,
		title: fmt.Sprintf("cached GET /me ÷ floor, throughput (%d conns)", o.conns),
		err:   errors.Join(hit.check(), floor.check()),
	}
	f.value, f.per = throughputRatio(hit, floor)
	f.cpu = cpuOf(hit, floor)
	f.noteFailures(hit, floor)
	f.detail = fmt.Sprintf("HIT %s, floor %s", perSecond(hit), perSecond(floor))
	return f, hit, floor, nil
}

// figure2: a miss against the slower of the two origin calls it makes,
// each made directly, as the BFF makes it, with the same token: the
// customer's profile without the user fields (include_user=false), which
// the BFF fills from the user it loads.
func figure2(ctx context.Context, o options, s *system, progress func(string)) (figure, error) {
	miss := httpSide("miss", s.bffMiss.addr, o.light, rotate(perUser(s, func(u user) []byte {
		return getRequest(s.bffMiss.addr, "/api/bff/me/", u.access)
	})), status(http.StatusOK, "MISS"))
	authDirect := httpSide("auth GET profile/", s.auth.addr, o.light, rotate(perUser(s, func(u user) []byte {
		return getRequest(s.auth.addr, "/api/auth/profile/", u.access)
	})), status(http.StatusOK, ""))
	custDirect := httpSide("customer GET profile/?include_user=false", s.customer.addr, o.light, rotate(perUser(s, func(u user) []byte {
		return getRequest(s.customer.addr, "/api/v1/customers/profile/?include_user=false", u.access)
	})), status(http.StatusOK, ""))
	defer closeAll(miss, authDirect, custDirect)
	if err := interleave(ctx, []*side{miss, authDirect, custDirect}, o.rounds, o.round, o.warm, s.watch, progress); err != nil {
		return figure{}, err
	}
	f := figure{num: 2, target: 1.3, atMost: true,
		title: fmt.Sprintf("GET /me miss p50 ÷ slower origin p50 (%d conn)", o.light),
		err:   errors.Join(miss.check(), authDirect.check(), custDirect.check()),
	}
	f.value, f.per = latencyRatio(0.5, miss, authDirect, custDirect)
	f.cpu = cpuOf(miss, authDirect, custDirect)
	f.noteFailures(miss, authDirect, custDirect)
	f.detail = fmt.Sprintf("MISS %s; direct: auth %s, customer %s",
		ms(percentile(miss.total().lat, 0.5)), ms(percentile(authDirect.total().lat, 0.5)), ms(percentile(custDirect.total().lat, 0.5)))
	return f, nil
}

// missesUnderLoad is figure 5's miss line: GET /me misses at full load.
func missesUnderLoad(ctx context.Context, o options, s *system, progress func(string)) (latencyRow, error) {
	miss := httpSide("miss", s.bffMiss.addr, o.conns, rotate(perUser(s, func(u user) []byte {
		return getRequest(s.bffMiss.addr, "/api/bff/me/", u.access)
	})), status(http.StatusOK, "MISS"))
	defer miss.close()
	if err := interleave(ctx, []*side{miss}, min(o.rounds, 2), o.round, o.warm, s.watch, progress); err != nil {
		return latencyRow{}, err
	}
	// With as many connections as users, a slow request now and then
	// overlaps the next request for its user, which finds the view it has
	// just written (a HIT, not counted): tolerated up to 5 %.
	return latencyWithin("GET /api/bff/me/ (MISS)", o.conns, miss, 0.05), nil
}

// figure3: registrations through the BFF against bare Argon2id hashes at
// the auth service's parameters and hash concurrency.
func figure3(ctx context.Context, o options, s *system, progress func(string)) (figure, error) {
	reg := registrations(s, o.regConns, 0)
	defer reg.close()
	h, err := password.New(o.argon2, o.hashConc)
	if err != nil {
		return figure{}, err
	}
	hash := &side{name: "Argon2id hash"}
	for range o.hashConc {
		hash.workers = append(hash.workers, func(ctx context.Context) error {
			_, err := h.Hash(ctx, benchPassword)
			return err
		})
	}
	if err := interleave(ctx, []*side{reg, hash}, o.regRounds, o.regRound, o.warm, s.watch, progress); err != nil {
		return figure{}, err
	}
	p := o.argon2
	f := figure{num: 3, target: 0.80, // issue 16: at 10,000 users
		title: fmt.Sprintf("registrations/s ÷ Argon2id hashes/s (m=%d KiB t=%d p=%d, %d at a time)", p.MemoryKiB, p.Iterations, p.Parallelism, o.hashConc),
		err:   errors.Join(reg.check(), hash.check()),
	}
	f.value, f.per = throughputRatio(reg, hash)
	f.cpu = cpuOf(reg, hash)
	f.noteFailures(reg, hash)
	f.detail = fmt.Sprintf("%s registrations (%d conns), %s hashes", perSecond(reg), o.regConns, perSecond(hash))
	return f, nil
}

// registrations is a side of registrations through bff, with emails
// numbered from first.
func registrations(s *system, conns int, first uint64) *side {
	addr := s.bff.addr
	return httpSide("registration", addr, conns, func(i uint64) []byte {
		i += first
		return postRequest(addr, "/api/bff/register/", registration(s.email(i), i),
			map[string]string{"Idempotency-Key": "bench-" + s.runID + "-" + strconv.FormatUint(i, 10)})
	}, status(http.StatusCreated, ""))
}

// registrationsUnderLoad is figure 5's registration line: one window of
// registrations at full load.
func registrationsUnderLoad(ctx context.Context, o options, s *system, progress func(string)) (latencyRow, error) {
	reg := registrations(s, o.conns, 500_000)
	defer reg.close()
	if err := interleave(ctx, []*side{reg}, 1, 2*o.regRound, 0, s.watch, progress); err != nil {
		return latencyRow{}, err
	}
	return latencyOf("POST /api/bff/register/", o.conns, reg), nil
}

// figure4: the customer service's GET profile/ against the findOne it
// starts with, issued through the driver against the same database.
func figure4(ctx context.Context, o options, s *system, progress func(string)) (figure, error) {
	addr := s.customer.addr
	svc := httpSide("customer GET profile/", addr, o.conns, rotate(perUser(s, func(u user) []byte {
		return getRequest(addr, "/api/v1/customers/profile/", u.access)
	})), status(http.StatusOK, ""))
	defer svc.close()
	coll := s.db.Database(s.customerDB).Collection(custmongo.CustomersCollection)
	find := &side{name: "driver findOne"}
	var seq atomic.Uint64
	for range o.conns {
		find.workers = append(find.workers, func(ctx context.Context) error {
			u := s.users[(seq.Add(1)-1)%uint64(len(s.users))]
			// The lookup GET profile/ starts with: the profile by its
			// id, derived from the user id (customer.ProfileID).
			raw, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: u.profileID}}).Raw()
			if err != nil {
				return err
			}
			if _, err := raw.LookupErr("_id"); err != nil {
				return fmt.Errorf("findOne answered a document without _id: %w", err)
			}
			return nil
		})
	}
	if err := interleave(ctx, []*side{svc, find}, o.rounds, o.round, o.warm, s.watch, progress); err != nil {
		return figure{}, err
	}
	n, _ := coll.CountDocuments(ctx, bson.D{})
	f := figure{num: 4, target: 0.60,
		title: fmt.Sprintf("customer GET profile/ ÷ driver findOne, throughput (%d conns)", o.conns),
		err:   errors.Join(svc.check(), find.check()),
	}
	f.value, f.per = throughputRatio(svc, find)
	f.cpu = cpuOf(svc, find)
	f.noteFailures(svc, find)
	f.detail = fmt.Sprintf("service %s, findOne %s (%d profiles)", perSecond(svc), perSecond(find), n)
	return f, nil
}

// figure6: Redis stopped against the cache bypassed on purpose.
func figure6(ctx context.Context, o options, s *system, progress func(string)) (figure, error) {
	// Use the cache first, as a BFF whose Redis then goes away would have.
	for _, u := range s.users[:min(len(s.users), 16)] {
		if st, body, _, err := call(ctx, http.MethodGet, s.bffDown.url()+"/api/bff/me/", u.access, nil); err != nil || st != http.StatusOK {
			return figure{}, fmt.Errorf("%s before the outage: %d %v %.200s", nameBFFDown, st, err, body)
		}
	}
	s.redisDown.Stop()
	progress("its Redis is stopped")
	down := httpSide("Redis stopped", s.bffDown.addr, o.light, rotate(perUser(s, func(u user) []byte {
		return getRequest(s.bffDown.addr, "/api/bff/me/", u.access)
	})), status(http.StatusOK, "BYPASS"))
	bypass := httpSide("no cache", s.bffNoCache.addr, o.light, rotate(perUser(s, func(u user) []byte {
		return getRequest(s.bffNoCache.addr, "/api/bff/me/", u.access)
	})), status(http.StatusOK, "BYPASS"))
	defer closeAll(down, bypass)
	if err := interleave(ctx, []*side{down, bypass}, o.rounds, o.round, o.warm, s.watch, progress); err != nil {
		return figure{}, err
	}
	f := figure{num: 6, target: 1.2, atMost: true,
		title: fmt.Sprintf("GET /me p99, Redis stopped ÷ cache bypassed (%d conn)", o.light),
		err:   errors.Join(down.check(), bypass.check()),
	}
	f.value, f.per = latencyRatio(0.99, down, bypass)
	f.cpu = cpuOf(down, bypass)
	f.noteFailures(down, bypass)
	f.detail = fmt.Sprintf("p99 %s vs %s (p50 %s vs %s); redis breaker %s",
		ms(percentile(down.total().lat, 0.99)), ms(percentile(bypass.total().lat, 0.99)),
		ms(percentile(down.total().lat, 0.5)), ms(percentile(bypass.total().lat, 0.5)), breakerState(ctx, s.bffDown, "redis"))
	return f, nil
}

// breakerState reads a breaker's state from a BFF's /readyz details.
func breakerState(ctx context.Context, p *proc, name string) string {
	_, body, _, err := call(ctx, http.MethodGet, p.url()+"/readyz", "", nil)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	var r struct {
		Details struct {
			Breakers map[string]string `json:"breakers"`
		} `json:"details"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Details.Breakers[name] == "" {
		return "unknown"
	}
	return r.Details.Breakers[name]
}
