package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acme/customer-platform/bff"
	bffmongo "github.com/acme/customer-platform/bff/mongodb"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/balancer"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// The shape of TestReplicas's run.
const (
	replicaUsers       = 36 // registrations
	replicaRegWorkers  = 6  // clients at once
	replicaWrites      = 4  // PATCH /api/bff/me/ per user
	replicaReadsPerW   = 3  // reads by the writer after each write
	replicaBackground  = 2  // readers of random users meanwhile
	replicaRegDeadline = 60 * time.Second
)

const replicaPassword = "Zebra-Quartz-Replica-7"

// TestReplicas is issue 17's multi-replica system test: two auth, two
// customer and two BFF processes on one shared store (the embedded
// FerretDB) and one Redis, a round-robin balancer of the test's own in
// front of each service (the BFFs call auth and customer through theirs,
// and so does the customer service call auth; a balancer skips a replica
// that refuses the connection), clients calling the BFF through its
// balancer or straight at a random replica (a dead one refuses, and the
// client goes to the balancer). Six clients at once each register a user
// with an Idempotency-Key (an answer that is not final is retried with the
// key through the other replica; a third of the 201s are asked again
// through the other replica), then make that user's PATCH /api/bff/me/
// writes, each followed by reads through random replicas, then the next
// user; two readers read random users meanwhile. One replica of each
// service is killed with SIGKILL mid-run, while it has a request in
// flight (auth a quarter through the registrations, customer half-way,
// the BFF, during a registration sent to it, three quarters through), and
// stays dead. Afterwards:
//
//   - the saga: once every saga has settled (bounded wait), every email
//     holds a user and that user a profile, every 201 answered names that
//     very user (no lost 201), every profile belongs to one of those users
//     (no ghost) and none needs attention; users exist only for the
//     test's emails (the only registrations made), so checking each email
//     for its profile finds every orphan;
//   - the cache: no stale view. Each user's writes are numbered (first
//     name "Ada <n>", city "Town <n>"); a read that starts after write n
//     was acknowledged (200) through any replica must show n or a later
//     write's number, whichever replica serves it, as a HIT or not; never
//     a number not yet sent. A write that was not acknowledged (cut by a
//     kill) may or may not show, and may even land after later writes (the
//     store still runs an update whose caller died: on the embedded
//     FerretDB, a read-modify-write that can finish last); a view showing
//     such a write is no stale view when the origin holds it too, and is
//     counted apart. Finally one more write per user through a random
//     surviving replica is shown by every surviving replica.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("system test: six child processes (not in the fast tier, -short)")
	}
	t.Parallel()
	start := time.Now()
	sys := systest.Start(t, systest.Options{
		Replicas:  map[string]int{"auth": 2, "customer": 2, "bff": 2},
		Balanced:  []string{"auth", "customer", "bff"},
		Processes: true,
		Redis:     true,
		ServiceEnv: map[string]map[string]string{
			"auth": adminEnv,
			// Generous timeouts: on a loaded machine a call that times
			// out may still land after the next write (a lost update the
			// stale-view check would see, though no cache is involved);
			// here calls fail when a replica dies, at once.
			"bff": {"AUTH_TIMEOUT": "5s", "CUSTOMER_TIMEOUT": "5s", "STORE_TIMEOUT": "5s", "SAGA_LEASE_TTL": "12s",
				"RECONCILE_INTERVAL": "300ms"},
		},
	})
	started := time.Since(start)
	for _, in := range slices.Concat(sys.Replicas("bff"), sys.Replicas("customer")) {
		for _, svc := range []string{"auth", "customer"} {
			if got, ok := in.Env[strings.ToUpper(svc)+"_URL"]; ok && got != sys.Balancer(svc).URL() {
				t.Fatalf("%s calls %s at %s, not through its balancer %s", in, svc, got, sys.Balancer(svc).URL())
			}
		}
	}
	r := &replicaRun{t: t, sys: sys, bffs: sys.Replicas("bff"), lb: sys.Balancer("bff"),
		client: &http.Client{Timeout: 30 * time.Second}}

	// Registrations, the users' writes and reads, and the kills.
	regs := make([]*replicaReg, replicaUsers)
	var (
		readers sync.WaitGroup
		regDone atomic.Int32
		done    = make(chan struct{})
		killed  = map[string]*systest.Instance{}
		killMu  sync.Mutex
	)
	// kill kills the second replica of svc while it has a request in
	// flight (one of the BFF's callers' through its balancer; for the BFF,
	// a registration sent straight to it), or after 5 s without one.
	var killers sync.WaitGroup
	kill := func(svc string) {
		in := sys.Replicas(svc)[1]
		busy := func() bool { return sys.Balancer(svc).Stats(in.URL).InFlight > 0 }
		if svc == "bff" {
			busy = func() bool { return r.registering(in.URL) > 0 }
		}
		mid := false
		for end := time.Now().Add(5 * time.Second); !mid && time.Now().Before(end); time.Sleep(time.Millisecond) {
			mid = busy()
		}
		in.Kill()
		killMu.Lock()
		killed[svc] = in
		killMu.Unlock()
		t.Logf("%v: killed %s (SIGKILL), mid-request: %v", time.Since(start).Round(time.Millisecond), in, mid)
	}
	for range replicaBackground {
		readers.Go(func() { r.backgroundReader(done) })
	}
	next := atomic.Int32{}
	var regWorkers sync.WaitGroup
	for w := range replicaRegWorkers {
		regWorkers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 17))
			for {
				i := int(next.Add(1)) - 1
				if i >= replicaUsers {
					return
				}
				g := r.register(rng, i)
				regs[i] = g
				if g.session != nil {
					r.writeAndRead(rng, g.session)
				}
				switch regDone.Add(1) {
				case replicaUsers / 4:
					killers.Go(func() { kill("auth") })
				case replicaUsers / 2:
					killers.Go(func() { kill("customer") })
				case 3 * replicaUsers / 4:
					killers.Go(func() { kill("bff") })
				}
			}
		})
	}
	regWorkers.Wait()
	killers.Wait()
	close(done)
	readers.Wait()
	ran := time.Since(start)
	if len(killed) != 3 {
		t.Fatalf("killed %v, want one replica of each service", killed)
	}

	// Every saga settles (bounded), none needs attention.
	testenv.Eventually(t, 60*time.Second, testenv.Holds("every saga settles", func() bool { return r.settled() }))
	if st := r.sagaStates(); st[bff.StateNeedsAttention] > 0 {
		t.Errorf("sagas that need attention: %v", st)
	}

	// The saga's invariants, through the services' APIs (and their
	// balancers, since one replica of each is dead).
	token := adminToken(t, sys.Balancer("auth").URL())
	owners := map[string]string{} // user id → email
	for _, g := range regs {
		uid := r.lookupUser(token, g.email)
		hasProfile := uid != "" && r.profileExists(token, uid)
		if uid == "" {
			t.Errorf("%s: no user; answers %s", g.email, g.answersText())
			continue
		}
		owners[uid] = g.email
		if !hasProfile {
			t.Errorf("%s: orphan user %s (no profile); answers %s", g.email, uid, g.answersText())
		}
		for _, a := range slices.Concat(g.answers, g.replays) {
			if a.status == http.StatusCreated && (a.userID() != uid || !hasProfile) {
				t.Errorf("%s: answered 201 for user %q, the email holds %q (profile %v): a lost 201", g.email, a.userID(), uid, hasProfile)
			}
		}
		if last := g.answers[len(g.answers)-1]; last.status != http.StatusCreated {
			t.Errorf("%s: the registration never got its 201 within %s: %s", g.email, replicaRegDeadline, g.answersText())
		}
	}
	profiles := r.allProfiles(token)
	for _, p := range profiles {
		if owners[p] == "" {
			t.Errorf("profile of user %s, who does not exist: a ghost", p)
		}
	}
	if len(profiles) != len(owners) {
		t.Errorf("%d profiles for %d users", len(profiles), len(owners))
	}

	// The cache: what the run saw, then one more write per user through a
	// surviving replica, read through each surviving one.
	for _, v := range r.violations() {
		t.Error(v)
	}
	alive := []string{r.lb.URL()}
	for _, in := range r.bffs {
		if in.Running() {
			alive = append(alive, in.URL)
		}
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for _, g := range regs {
		s := g.session
		if s == nil {
			continue
		}
		n := s.attempted.Load() + 1
		s.attempted.Store(n)
		target := alive[rng.IntN(len(alive))]
		if a := r.patch(target, s, n); a.status != http.StatusOK {
			t.Errorf("%s: the last write through %s: %s", s.email, target, a)
			continue
		}
		s.acked.Store(n)
		for _, base := range alive {
			a := r.get(base, s)
			if got := r.check(s, a, s.acked.Load(), s.attempted.Load()); got != "" {
				t.Error(got)
			} else if a.status != http.StatusOK {
				t.Errorf("%s: the read through %s after the last write: %s", s.email, base, a)
			}
		}
	}

	// The balancers were in the path, and skipped the dead replicas.
	for _, svc := range []string{"auth", "customer", "bff"} {
		b := sys.Balancer(svc)
		for _, in := range sys.Replicas(svc) {
			if st := b.Stats(in.URL); st.Served == 0 {
				t.Errorf("%s served nothing through its balancer: %+v", in, st)
			}
		}
		if st := b.Stats(killed[svc].URL); st.Refused == 0 {
			t.Errorf("the balancer never skipped the dead %s: %+v", killed[svc], st)
		}
	}
	t.Logf("six processes started in %v; %d registrations (%d at the first call, %d retried, %d replays asked), %d writes (%d acknowledged), %d reads (%d HIT, %d failed, %d showing an unacknowledged write that landed late) in %v with three replicas killed; settled and checked in %v",
		started.Round(time.Millisecond), replicaUsers, r.firstTry.Load(), r.retried.Load(), r.replays.Load(), r.writes.Load(), r.acks.Load(),
		r.reads.Load(), r.hits.Load(), r.failedReads.Load(), r.late.Load(), (ran - started).Round(time.Millisecond),
		(time.Since(start) - ran).Round(time.Millisecond))
	for _, a := range r.failedAnswers() {
		t.Logf("a failed call: %s", a)
	}
	if r.hits.Load() == 0 {
		t.Error("no read was a cache HIT: the stale-view check checked nothing of the cache")
	}
}

// replicaRun is the clients' side of TestReplicas.
type replicaRun struct {
	t      *testing.T
	sys    *systest.System
	bffs   []*systest.Instance
	lb     *balancer.Balancer
	client *http.Client

	mu       sync.Mutex
	sessions []*replicaSession
	inFlight map[string]int // registrations sent straight to a replica, by its URL
	bad      []string
	failed   []string // the first failed writes and reads

	firstTry, retried, replays             atomic.Int64
	writes, acks, reads, hits, failedReads atomic.Int64
	late                                   atomic.Int64 // reads showing an unacknowledged write that landed late
}

// replicaReg is one registration and every answer it got.
type replicaReg struct {
	email, key string
	answers    []replicaAnswer // the registration's, until the final one
	replays    []replicaAnswer // asking again with the key after its 201
	session    *replicaSession // nil when it never got its 201
}

func (g *replicaReg) answersText() string {
	var b strings.Builder
	for _, a := range g.answers {
		fmt.Fprintf(&b, "[%s] ", a)
	}
	for _, a := range g.replays {
		fmt.Fprintf(&b, "[replay %s] ", a)
	}
	return b.String()
}

// replicaSession is a registered user's tokens and the numbers of its
// writes: attempted is the last one sent, acked the last one answered 200.
type replicaSession struct {
	email, access string
	attempted     atomic.Int64
	acked         atomic.Int64

	mu     sync.Mutex
	failed map[int64]bool // writes not answered 200: in doubt
}

// doubt records that write n was not acknowledged.
func (s *replicaSession) doubt(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed == nil {
		s.failed = map[int64]bool{}
	}
	s.failed[n] = true
}

func (s *replicaSession) inDoubt(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed[n]
}

// replicaAnswer is what a client got: status 0 when the connection failed.
type replicaAnswer struct {
	via     string // the BFF replica (or balancer) it was sent to
	backend string // the replica the balancer sent it to
	status  int
	body    []byte
	header  http.Header
	err     error
}

func (a replicaAnswer) String() string {
	b := a.body
	if len(b) > 160 {
		b = b[:160]
	}
	who := a.via
	if a.backend != "" {
		who += "→" + a.backend
	}
	if a.err != nil {
		return fmt.Sprintf("%s: %v", who, a.err)
	}
	return fmt.Sprintf("%s: %d %s (X-Cache %q)", who, a.status, b, a.header.Get("X-Cache"))
}

func (a replicaAnswer) final() bool {
	return a.status == http.StatusCreated || a.status == http.StatusBadRequest
}

// view is the merged view of an answer: the user's first name and the
// profile's city, "" for a part that is absent.
func (a replicaAnswer) view() (firstName, city string) {
	var v struct {
		User *struct {
			FirstName string `json:"first_name"`
		} `json:"user"`
		Profile *struct {
			City string `json:"city"`
		} `json:"profile"`
	}
	if json.Unmarshal(a.body, &v) != nil {
		return "", ""
	}
	if v.User != nil {
		firstName = v.User.FirstName
	}
	if v.Profile != nil {
		city = v.Profile.City
	}
	return firstName, city
}

func (a replicaAnswer) userID() string {
	var v struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	_ = json.Unmarshal(a.body, &v)
	return v.User.ID
}

// send sends a request to base; a replica that refuses the connection (a
// dead one) makes the client go to the balancer instead, as a client
// would.
func (r *replicaRun) send(method, base, path string, body any, header map[string]string) replicaAnswer {
	a := r.sendOnce(method, base, path, body, header)
	if a.err != nil && errors.Is(a.err, syscall.ECONNREFUSED) && base != r.lb.URL() {
		a = r.sendOnce(method, r.lb.URL(), path, body, header)
	}
	return a
}

func (r *replicaRun) sendOnce(method, base, path string, body any, header map[string]string) replicaAnswer {
	a := replicaAnswer{via: strings.TrimPrefix(base, "http://")}
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		a.err = err
		return a
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	a.body, a.err = io.ReadAll(resp.Body)
	a.status, a.header, a.backend = resp.StatusCode, resp.Header, resp.Header.Get(balancer.BackendHeader)
	return a
}

// pick is where a client sends its next request: the balancer half the
// time, else a random replica.
func (r *replicaRun) pick(rng *rand.Rand) string {
	if rng.IntN(2) == 0 {
		return r.lb.URL()
	}
	return r.bffs[rng.IntN(len(r.bffs))].URL
}

// other is a replica other than the one that gave a.
func (r *replicaRun) other(a replicaAnswer) string {
	gave := a.backend
	if gave == "" {
		gave = a.via
	}
	for _, in := range r.bffs {
		if strings.TrimPrefix(in.URL, "http://") != gave {
			return in.URL
		}
	}
	return r.lb.URL()
}

func (r *replicaRun) registration(email string) map[string]any {
	return map[string]any{
		"email": email, "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+15035550100",
		"password1": replicaPassword, "password2": replicaPassword,
		"street_address": "123 Main St", "city": "Portland", "state": "OR", "postal_code": "97201",
	}
}

// register registers user i with its key, retrying through the other
// replica until the answer is final (or the deadline), and asks a third
// of the 201s again through the other replica, retried the same way: a
// replay, too, can be cut by a kill, and a client would send it again
// with its key.
func (r *replicaRun) register(rng *rand.Rand, i int) *replicaReg {
	g := &replicaReg{email: fmt.Sprintf("replica-%03d@e2e-example.com", i), key: fmt.Sprintf("replica-key-%03d", i)}
	header := map[string]string{"Idempotency-Key": g.key}
	g.answers = r.untilFinal(r.pick(rng), g.email, header, true)
	if len(g.answers) == 1 {
		r.firstTry.Add(1)
	} else {
		r.retried.Add(1)
	}
	first := g.answers[len(g.answers)-1]
	if first.status != http.StatusCreated {
		return g
	}
	if i%3 == 0 {
		r.replays.Add(1)
		g.replays = r.untilFinal(r.other(first), g.email, header, false)
		if a := g.replays[len(g.replays)-1]; a.status != http.StatusCreated || a.userID() != first.userID() {
			r.fail("%s: asked again with its key through another replica: %s; the first 201 was for %s", g.email, a, first.userID())
		}
	}
	access := accessOf(first.body)
	if access == "" { // a 201 replayed without tokens (sign_in_required): sign in
		login := r.send(http.MethodPost, r.lb.URL(), "/api/bff/login/", map[string]string{"email": g.email, "password": replicaPassword}, nil)
		if access = accessOf(login.body); login.status != http.StatusOK || access == "" {
			r.fail("%s: login after a 201 without tokens: %s", g.email, login)
			return g
		}
	}
	g.session = &replicaSession{email: g.email, access: access}
	r.mu.Lock()
	r.sessions = append(r.sessions, g.session)
	r.mu.Unlock()
	return g
}

// untilFinal sends the registration of email with header to target,
// then through the other replica after each answer that is not final,
// until one is or replicaRegDeadline has passed; noted counts the
// requests sent straight to a replica in flight (the BFF's kill waits for
// one).
func (r *replicaRun) untilFinal(target, email string, header map[string]string, noted bool) []replicaAnswer {
	var answers []replicaAnswer
	deadline := time.Now().Add(replicaRegDeadline)
	for {
		if noted {
			r.note(target, 1)
		}
		a := r.send(http.MethodPost, target, "/api/bff/register/", r.registration(email), header)
		if noted {
			r.note(target, -1)
		}
		answers = append(answers, a)
		if a.final() || time.Now().After(deadline) {
			return answers
		}
		wait := 200 * time.Millisecond
		if s, err := strconv.Atoi(a.header.Get("Retry-After")); err == nil && s > 0 {
			wait = min(time.Duration(s)*time.Second, 2*time.Second)
		}
		time.Sleep(wait)
		target = r.other(a)
	}
}

// note counts a registration sent straight to a replica in or out of
// flight.
func (r *replicaRun) note(target string, d int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inFlight == nil {
		r.inFlight = map[string]int{}
	}
	r.inFlight[target] += d
}

// registering counts the registrations in flight sent straight to the
// replica at url.
func (r *replicaRun) registering(url string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inFlight[url]
}

func accessOf(body []byte) string {
	var v struct {
		Tokens *struct {
			Access string `json:"access"`
		} `json:"tokens"`
	}
	if json.Unmarshal(body, &v) != nil || v.Tokens == nil {
		return ""
	}
	return v.Tokens.Access
}

func (r *replicaRun) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bad = append(r.bad, fmt.Sprintf(format, args...))
}

// failedAnswers are the first failed writes and reads.
func (r *replicaRun) failedAnswers() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.failed...)
}

func (r *replicaRun) noteFailure(what string, a replicaAnswer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failed) < 12 {
		r.failed = append(r.failed, what+": "+a.String())
	}
}

func (r *replicaRun) violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

func (r *replicaRun) patch(base string, s *replicaSession, n int64) replicaAnswer {
	r.writes.Add(1)
	a := r.send(http.MethodPatch, base, "/api/bff/me/", map[string]any{"first_name": fmt.Sprintf("Ada %d", n), "city": fmt.Sprintf("Town %d", n)},
		testenv.Bearer(s.access))
	if a.status == http.StatusOK {
		r.acks.Add(1)
	} else {
		s.doubt(n)
		r.noteFailure("PATCH", a)
	}
	return a
}

func (r *replicaRun) get(base string, s *replicaSession) replicaAnswer {
	r.reads.Add(1)
	a := r.send(http.MethodGet, base, "/api/bff/me/", nil, testenv.Bearer(s.access))
	switch {
	case a.status != http.StatusOK:
		r.failedReads.Add(1)
		r.noteFailure("GET", a)
	case a.header.Get("X-Cache") == "HIT":
		r.hits.Add(1)
	}
	return a
}

// writeAndRead numbers the user's writes and reads through random
// replicas after each.
func (r *replicaRun) writeAndRead(rng *rand.Rand, s *replicaSession) {
	for range replicaWrites {
		n := s.attempted.Load() + 1
		s.attempted.Store(n)
		a := r.patch(r.pick(rng), s, n)
		switch {
		case a.status == http.StatusOK:
			if got := r.check(s, a, n, n); got != "" {
				r.fail("the write's own answer: %s", got)
			}
			s.acked.Store(n)
		case a.status == http.StatusBadRequest || a.status == http.StatusUnauthorized:
			r.fail("%s: write %d refused: %s", s.email, n, a)
		}
		for range replicaReadsPerW {
			r.read(rng, s)
		}
	}
}

// backgroundReader reads random users through random replicas until done.
func (r *replicaRun) backgroundReader(done <-chan struct{}) {
	rng := rand.New(rand.NewPCG(99, uint64(time.Now().UnixNano())))
	for {
		select {
		case <-done:
			return
		default:
		}
		r.mu.Lock()
		var s *replicaSession
		if len(r.sessions) > 0 {
			s = r.sessions[rng.IntN(len(r.sessions))]
		}
		r.mu.Unlock()
		if s == nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		r.read(rng, s)
		time.Sleep(2 * time.Millisecond)
	}
}

// read reads s's view through a random replica and checks it against the
// writes acknowledged before it started and sent before it ended.
func (r *replicaRun) read(rng *rand.Rand, s *replicaSession) {
	lo := s.acked.Load()
	a := r.get(r.pick(rng), s)
	if got := r.check(s, a, lo, s.attempted.Load()); got != "" {
		r.fail("%s", got)
	}
}

// check reports a view of s that shows a write older than lo (a stale
// view), newer than hi (never sent), or lacks the user or the profile (a
// registered user has both; the BFF answers an error, not a part, when a
// service is unavailable); a failed read shows nothing and passes.
func (r *replicaRun) check(s *replicaSession, a replicaAnswer, lo, hi int64) string {
	if a.status != http.StatusOK {
		return ""
	}
	firstName, city := a.view()
	for _, f := range []struct{ name, value, prefix, initial string }{
		{"first_name", firstName, "Ada ", "Ada"}, {"city", city, "Town ", "Portland"},
	} {
		if f.value == "" {
			return fmt.Sprintf("%s: a view without its %s: %s", s.email, f.name, a)
		}
		n := int64(0)
		if f.value != f.initial {
			v, err := strconv.ParseInt(strings.TrimPrefix(f.value, f.prefix), 10, 64)
			if err != nil || !strings.HasPrefix(f.value, f.prefix) {
				return fmt.Sprintf("%s: %s %q is no write of the test: %s", s.email, f.name, f.value, a)
			}
			n = v
		}
		if n < lo {
			if s.inDoubt(n) && r.originHolds(s, f.name, f.value) {
				// A write that was not acknowledged (its request cut by a
				// kill) landed after later ones: the origin holds its
				// value, so this is no view the cache kept.
				r.late.Add(1)
				r.noteFailure(fmt.Sprintf("late write %d of %s (%s, after write %d)", n, s.email, f.name, lo), a)
				continue
			}
			return fmt.Sprintf("%s: stale view: %s shows write %d after write %d was acknowledged: %s; %s", s.email, f.name, n, lo, a, r.origins(s))
		}
		if n > hi {
			return fmt.Sprintf("%s: %s shows write %d, only %d were sent: %s", s.email, f.name, n, hi, a)
		}
	}
	return ""
}

// originHolds reports whether the service that owns field (first_name:
// auth, city: customer) holds value for s now.
func (r *replicaRun) originHolds(s *replicaSession, field, value string) bool {
	url := r.sys.Balancer("auth").URL() + "/api/auth/profile/"
	if field == "city" {
		url = r.sys.Balancer("customer").URL() + "/api/v1/customers/profile/"
	}
	a := r.sendOnce(http.MethodGet, url, "", nil, testenv.Bearer(s.access))
	var v map[string]any
	return a.status == http.StatusOK && json.Unmarshal(a.body, &v) == nil && v[field] == value
}

// origins says what the auth and customer services hold for s now: a
// stale view the origins show too is a late write, not the cache.
func (r *replicaRun) origins(s *replicaSession) string {
	user := r.sendOnce(http.MethodGet, r.sys.Balancer("auth").URL(), "/api/auth/profile/", nil, testenv.Bearer(s.access))
	profile := r.sendOnce(http.MethodGet, r.sys.Balancer("customer").URL(), "/api/v1/customers/profile/", nil, testenv.Bearer(s.access))
	var u struct {
		FirstName string `json:"first_name"`
	}
	var p struct {
		City string `json:"city"`
	}
	_ = json.Unmarshal(user.body, &u)
	_ = json.Unmarshal(profile.body, &p)
	return fmt.Sprintf("the origins now hold first_name %q (%d) and city %q (%d)", u.FirstName, user.status, p.City, profile.status)
}

// sagaStates counts the BFF's sagas by state.
func (r *replicaRun) sagaStates() map[string]int {
	out := map[string]int{}
	for _, d := range testenv.Find(r.t, r.sys.DB("bff").Collection(bffmongo.SagasCollection), map[string]any{}) {
		st, _ := d["state"].(string)
		out[st]++
	}
	return out
}

func (r *replicaRun) settled() bool {
	for st, n := range r.sagaStates() {
		if n > 0 && !bff.Terminal(st) {
			return false
		}
	}
	return true
}

func (r *replicaRun) lookupUser(token, email string) string {
	r.t.Helper()
	a := testenv.Call(r.t, nil, http.MethodGet, r.sys.Balancer("auth").URL()+"/api/auth/users/?email="+url.QueryEscape(email), nil, testenv.Bearer(token))
	var v struct {
		Count   int `json:"count"`
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
	}
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &v) != nil || v.Count > 1 {
		r.t.Fatalf("user lookup of %s: %s", email, a)
	}
	if v.Count == 0 {
		return ""
	}
	return v.Results[0].ID
}

func (r *replicaRun) profileExists(token, userID string) bool {
	r.t.Helper()
	a := testenv.Call(r.t, nil, http.MethodPost, r.sys.Balancer("customer").URL()+"/api/v1/customers/check_profile_exists/",
		map[string]string{"user_id": userID}, testenv.Bearer(token))
	var v struct {
		Exists bool `json:"exists"`
	}
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &v) != nil {
		r.t.Fatalf("profile check of %s: %s", userID, a)
	}
	return v.Exists
}

// allProfiles lists the user ids of every customer profile (the staff
// listing, page by page).
func (r *replicaRun) allProfiles(token string) []string {
	r.t.Helper()
	var ids []string
	for page := 1; ; page++ {
		a := testenv.Call(r.t, nil, http.MethodGet, fmt.Sprintf("%s/api/v1/customers/?page=%d&page_size=100", r.sys.Balancer("customer").URL(), page),
			nil, testenv.Bearer(token))
		var v struct {
			Count   int     `json:"count"`
			Next    *string `json:"next"`
			Results []struct {
				UserID string `json:"user_id"`
			} `json:"results"`
		}
		if a.Status != http.StatusOK || json.Unmarshal(a.Body, &v) != nil {
			r.t.Fatalf("profile listing, page %d: %s", page, a)
		}
		for _, p := range v.Results {
			ids = append(ids, p.UserID)
		}
		if v.Next == nil || len(v.Results) == 0 {
			return ids
		}
	}
}
