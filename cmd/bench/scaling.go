package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/acme/customer-platform/bff"
	bffmongo "github.com/acme/customer-platform/bff/mongodb"
	"github.com/acme/customer-platform/internal/contract"
)

// Figure 7 measures every hot path at two sizes side by side: a small
// stack (auth, customer and a BFF over databases of o.small customers) and
// the large one (the services of every other figure, over o.records).
// Both run the same binaries with the same settings on the same embedded
// FerretDB server, so the two sides differ only in their data, and their
// rounds interleave (small, large, then large, small, ...) so that what the
// machine does meanwhile weighs on both alike. One connection per side: a
// latency (p50) figure, measured where queueing does not dominate it.

// scaleStack is one side of figure 7.
type scaleStack struct {
	name                string // "small" or "large"
	records             int    // customers seeded
	auth, customer, bff *proc
	store               *bffmongo.Store // the BFF's store over its database
	seeded
	// victims are the access tokens of users registered through this
	// stack's BFF during the figure; DELETE /api/bff/me/ removes them.
	victims *tokenPool
}

// tokenPool hands out tokens, each once.
type tokenPool struct {
	mu     sync.Mutex
	tokens []string
}

func (p *tokenPool) push(t string) {
	p.mu.Lock()
	p.tokens = append(p.tokens, t)
	p.mu.Unlock()
}

func (p *tokenPool) pop() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.tokens) == 0 {
		return "", false
	}
	t := p.tokens[len(p.tokens)-1]
	p.tokens = p.tokens[:len(p.tokens)-1]
	return t, true
}

// scalePath is one line of figure 7.
type scalePath struct {
	name    string
	mayGrow bool // reported without a target (staff listings, background polls)
	// side makes the path's side for one stack.
	side func(st *scaleStack) *side
}

// scaleRow is a measured line of figure 7.
type scaleRow struct {
	name               string
	mayGrow            bool
	p50Small, p50Large time.Duration
	ratio              float64
	per                []float64
	nSmall, nLarge     int
	dbSmall, dbLarge   time.Duration // FerretDB's CPU time per operation
	hasDB              bool
	// svc is each service's CPU time per operation at the large size
	// (keys: the roles of capacityRoles), the capacity model's input.
	svc   map[string]time.Duration
	err   error
	notes []string
}

func (r scaleRow) met() bool { return r.err == nil && !math.IsNaN(r.ratio) && r.ratio <= scaleTarget }

// scaleTarget is the bound on p50 at the large size ÷ p50 at the small.
const scaleTarget = 1.5

// victimsPerRound is how many accounts each round of the deletion
// measures (and each round of the BFF registration creates at least).
func victimsPerRound(o options) int { return 2 * o.scaleMin }

// storeOp is a side of one worker running op against a stack's BFF store.
func storeOp(name string, call func(ctx context.Context, i uint64) error) *side {
	var seq uint64
	return &side{name: name, workers: []op{func(ctx context.Context) error {
		seq++
		return call(ctx, seq-1)
	}}}
}

// scalePaths lists figure 7's lines, reads before the writes that change
// what they read.
func scalePaths(o options, s *system) []scalePath {
	rot := func(st *scaleStack, f func(u user) []byte) func(uint64) []byte {
		reqs := make([][]byte, len(st.users))
		for i, u := range st.users {
			reqs[i] = f(u)
		}
		return rotate(reqs)
	}
	one := func(name string, p func(st *scaleStack) *proc, want int, cache string, req func(st *scaleStack, addr string) func(uint64) []byte) func(st *scaleStack) *side {
		return func(st *scaleStack) *side {
			addr := p(st).addr
			return httpSide(name+" @"+strconv.Itoa(st.records), addr, 1, req(st, addr), status(want, cache))
		}
	}
	cust := func(st *scaleStack) *proc { return st.customer }
	authp := func(st *scaleStack) *proc { return st.auth }
	bffp := func(st *scaleStack) *proc { return st.bff }
	get := func(path func(u user) string, staff bool) func(st *scaleStack, addr string) func(uint64) []byte {
		return func(st *scaleStack, addr string) func(uint64) []byte {
			return rot(st, func(u user) []byte {
				tok := u.access
				if staff {
					tok = st.staff
				}
				return getRequest(addr, path(u), tok)
			})
		}
	}
	fixed := func(p string) func(user) string { return func(user) string { return p } }
	send := func(method string, path func(u user) string, body []byte, staff bool) func(st *scaleStack, addr string) func(uint64) []byte {
		return func(st *scaleStack, addr string) func(uint64) []byte {
			return rot(st, func(u user) []byte {
				tok := u.access
				if staff {
					tok = st.staff
				}
				return jsonRequest(method, addr, path(u), tok, body, nil)
			})
		}
	}
	email := func(st *scaleStack, kind string, i uint64) string {
		return "scale-" + s.runID + "-" + st.name + "-" + kind + "-" + strconv.FormatUint(i, 10) + "@example.com"
	}
	paths := []scalePath{
		{name: "customer GET profile/", side: one("customer GET profile/", cust, 200, "", get(fixed("/api/v1/customers/profile/"), false))},
		{name: "customer GET <id>/ (staff)", side: one("customer GET <id>/", cust, 200, "", get(func(u user) string { return "/api/v1/customers/" + u.profileID + "/" }, true))},
		{name: "customer POST check_profile_exists/", side: one("customer check_profile_exists", cust, 200, "",
			send(http.MethodPost, fixed("/api/v1/customers/check_profile_exists/"), []byte(`{}`), false))},
		{name: "customer GET stats/ (customer, scope self)", side: one("customer stats self", cust, 200, "", get(fixed("/api/v1/customers/stats/"), false))},
		{name: "customer PATCH profile/update/", side: one("customer PATCH profile/update/", cust, 200, "",
			send(http.MethodPatch, fixed("/api/v1/customers/profile/update/"), []byte(`{"company_name":"Scaling Figure Co"}`), false))},
		{name: "customer POST <id>/increment_service/ (staff)", side: one("customer increment_service", cust, 200, "",
			send(http.MethodPost, func(u user) string { return "/api/v1/customers/" + u.profileID + "/increment_service/" }, []byte(`{"service_type":"inspection"}`), true))},

		{name: "auth GET profile/", side: one("auth GET profile/", authp, 200, "", get(fixed("/api/auth/profile/"), false))},
		{name: "auth GET users/?email= (staff)", side: one("auth users/?email=", authp, 200, "", get(func(u user) string { return "/api/auth/users/?email=" + url.QueryEscape(u.email) }, true))},
		{name: "auth POST login/", side: one("auth login/", authp, 200, "", func(st *scaleStack, addr string) func(uint64) []byte {
			return rot(st, func(u user) []byte {
				b, _ := json.Marshal(map[string]string{"email": u.email, "password": benchPassword})
				return postRequest(addr, "/api/auth/login/", b, nil)
			})
		})},
		{name: "auth POST register/", side: one("auth register/", authp, 201, "", func(st *scaleStack, addr string) func(uint64) []byte {
			return func(i uint64) []byte {
				b, _ := json.Marshal(map[string]string{"email": email(st, "auth", i), "first_name": "Scale", "last_name": "Runner",
					"phone_number": "+15035550100", "password1": benchPassword, "password2": benchPassword})
				return postRequest(addr, "/api/auth/register/", b, nil)
			}
		})},

		{name: "BFF GET /api/bff/me/ (miss)", side: one("BFF GET /me miss", bffp, 200, "MISS", get(fixed("/api/bff/me/"), false))},
		{name: "BFF PATCH /api/bff/me/", side: one("BFF PATCH /me", bffp, 200, "",
			send(http.MethodPatch, fixed("/api/bff/me/"), []byte(`{"last_name":"Runner","city":"Salem"}`), false))},
		{name: "BFF POST /api/bff/register/", side: func(st *scaleStack) *side {
			addr := st.bff.addr
			sd := httpSide("BFF register @"+strconv.Itoa(st.records), addr, 1, func(i uint64) []byte {
				return postRequest(addr, "/api/bff/register/", registration(email(st, "bff", i), i),
					map[string]string{"Idempotency-Key": "scale-" + s.runID + "-" + st.name + "-" + strconv.FormatUint(i, 10)})
			}, func(r reply) error {
				if err := expect(r, http.StatusCreated, ""); err != nil {
					return err
				}
				var a struct {
					Tokens struct {
						Access string `json:"access"`
					} `json:"tokens"`
				}
				if err := json.Unmarshal(r.body, &a); err != nil || a.Tokens.Access == "" {
					return fmt.Errorf("registration answer without an access token: %.200s", r.body)
				}
				st.victims.push(a.Tokens.Access)
				return nil
			})
			sd.minOps = victimsPerRound(o) // the deletions' accounts
			return sd
		}},
		{name: "BFF DELETE /api/bff/me/", side: func(st *scaleStack) *side {
			addr := st.bff.addr
			sd := httpSide("BFF DELETE /me @"+strconv.Itoa(st.records), addr, 1, func(uint64) []byte {
				tok, ok := st.victims.pop()
				if !ok {
					return nil
				}
				return jsonRequest(http.MethodDelete, addr, "/api/bff/me/", tok, nil, nil)
			}, status(http.StatusNoContent, ""))
			sd.minOps, sd.maxOps = victimsPerRound(o), victimsPerRound(o)
			return sd
		}},

		{name: "saga store GetSaga", side: func(st *scaleStack) *side {
			return storeOp("GetSaga", func(ctx context.Context, i uint64) error {
				_, err := st.store.GetSaga(ctx, st.sagas[i%uint64(len(st.sagas))])
				return err
			})
		}},
		{name: "saga store CreateSaga + 2 TransitionSaga", side: func(st *scaleStack) *side {
			return storeOp("saga life", func(ctx context.Context, _ uint64) error { return sagaLife(ctx, st.store) })
		}},
		{name: "lease store AcquireLease + ReleaseLease", side: func(st *scaleStack) *side {
			return storeOp("lease", func(ctx context.Context, _ uint64) error {
				id, owner, now := contract.NewID(), contract.NewID(), time.Now()
				held, err := st.store.AcquireLease(ctx, id, owner, now, now.Add(30*time.Second))
				if err == nil && !held {
					err = errors.New("a fresh lease was not acquired")
				}
				if err != nil {
					return err
				}
				return st.store.ReleaseLease(ctx, id, owner)
			})
		}},
		{name: "idempotency store GetKey", side: func(st *scaleStack) *side {
			return storeOp("GetKey", func(ctx context.Context, i uint64) error {
				_, err := st.store.GetKey(ctx, st.keys[i%uint64(len(st.keys))], time.Now())
				return err
			})
		}},
		{name: "idempotency store InsertKey + CompleteKey", side: func(st *scaleStack) *side {
			return storeOp("key complete", func(ctx context.Context, _ uint64) error {
				keyID, owner, err := insertKey(ctx, st.store)
				if err != nil {
					return err
				}
				return st.store.CompleteKey(ctx, keyID, owner, http.StatusCreated, randomBytes(1500), time.Now())
			})
		}},
		{name: "idempotency store InsertKey + DeleteKey", side: func(st *scaleStack) *side {
			return storeOp("key delete", func(ctx context.Context, _ uint64) error {
				keyID, owner, err := insertKey(ctx, st.store)
				if err != nil {
					return err
				}
				return st.store.DeleteKey(ctx, keyID, owner, time.Now())
			})
		}},

		{name: "customer GET stats/ (staff, scope all)", side: one("customer stats all", cust, 200, "", get(fixed("/api/v1/customers/stats/"), true))},
		{name: "customer GET list, first page of 20 (staff)", mayGrow: true, side: one("customer list", cust, 200, "", get(fixed("/api/v1/customers/?page=1&page_size=20"), true))},
		{name: "saga store DueSagas (reconciler poll, background)", mayGrow: true, side: func(st *scaleStack) *side {
			return storeOp("DueSagas", func(ctx context.Context, _ uint64) error {
				_, err := st.store.DueSagas(ctx, time.Now(), 100)
				return err
			})
		}},
		{name: "saga store Stats (metrics, background)", mayGrow: true, side: func(st *scaleStack) *side {
			return storeOp("saga Stats", func(ctx context.Context, _ uint64) error {
				_, err := st.store.Stats(ctx)
				return err
			})
		}},
	}
	return paths
}

// sagaLife is a registration's saga in the store: created, then its two
// transitions (each a fence and the saga's update).
func sagaLife(ctx context.Context, st *bffmongo.Store) error {
	now := time.Now().UTC()
	sg := &bff.Saga{ID: contract.NewID(), Kind: bff.KindRegister, State: bff.StateStarted, EmailHash: randomHex(32),
		EmailSealed: randomBytes(64), NextAttemptAt: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now}
	if err := st.CreateSaga(ctx, sg); err != nil {
		return err
	}
	if err := st.TransitionSaga(ctx, sg.ID, 0, bff.SagaChange{State: bff.StateUserCreated, At: now, UserID: contract.NewID(),
		TokenSealed: randomBytes(300), TokenExpiresAt: now.Add(time.Hour)}); err != nil {
		return err
	}
	return st.TransitionSaga(ctx, sg.ID, 1, bff.SagaChange{State: bff.StateCompleted, At: now, CustomerID: contract.NewID(),
		AnswerSealed: randomBytes(1500), WipeSecrets: true})
}

// insertKey inserts a fresh in-flight idempotency record and returns its
// key and owner (the store's handle of the claim).
func insertKey(ctx context.Context, st *bffmongo.Store) (keyID, owner string, err error) {
	now := time.Now().UTC()
	keyID = bff.KeyID(contract.NewID())
	rec := &bff.IdempotencyRecord{KeyID: keyID, Check: randomHex(16), State: bff.KeyInFlight, Owner: contract.NewID(),
		LeaseExpiresAt: now.Add(30 * time.Second), SagaID: contract.NewID(), CreatedAt: now, ExpiresAt: now.Add(bff.KeyTTL)}
	err = st.InsertKey(ctx, rec)
	return keyID, rec.Owner, err
}

// capacityRole names a service of the capacity model and the process
// that plays it in figure 7's large stack.
type capacityRole struct{ role, proc string }

// capacityRoleNames are the capacity model's roles, in its columns' order.
var capacityRoleNames = []string{"BFF", "auth", "customer", "FerretDB"}

func capacityRoles(s *system) []capacityRole {
	procs := []string{s.large.bff.name, s.large.auth.name, s.large.customer.name, "ferretdb"}
	roles := make([]capacityRole, len(capacityRoleNames))
	for i, name := range capacityRoleNames {
		roles[i] = capacityRole{name, procs[i]}
	}
	return roles
}

// figure7 measures every path at both sizes.
func figure7(ctx context.Context, o options, s *system, progress func(string)) (figure, []scaleRow, error) {
	var rows []scaleRow
	paths := scalePaths(o, s)
	for i, p := range paths {
		small, large := p.side(s.small), p.side(s.large)
		if small.minOps == 0 {
			small.minOps, large.minOps = o.scaleMin, o.scaleMin
		}
		rounds, warm := o.scaleRounds, o.scaleWarm
		if p.mayGrow {
			// Lines without a target may take seconds at the large size:
			// one round, no warm-up, at least one operation.
			rounds, warm = 1, 0
			small.minOps, large.minOps = 1, 1
		}
		err := interleave(ctx, []*side{small, large}, rounds, o.scaleRound, warm, s.watch, func(string) {})
		closeAll(small, large)
		if err != nil {
			return figure{}, nil, err
		}
		row := scaleRow{name: p.name, mayGrow: p.mayGrow, err: errors.Join(small.check(), large.check())}
		ts, tl := small.total(), large.total()
		row.nSmall, row.nLarge = ts.n, tl.n
		row.p50Small, row.p50Large = percentile(ts.lat, 0.5), percentile(tl.lat, 0.5)
		row.ratio, row.per = latencyRatio(0.5, large, small)
		if ds, ok := small.cpu["ferretdb"]; ok && ts.n+ts.drained > 0 && tl.n+tl.drained > 0 {
			row.hasDB = true
			row.dbSmall = ds / time.Duration(ts.n+ts.drained)
			row.dbLarge = large.cpu["ferretdb"] / time.Duration(tl.n+tl.drained)
		}
		if n := tl.n + tl.drained; n > 0 {
			row.svc = map[string]time.Duration{}
			for _, r := range capacityRoles(s) {
				row.svc[r.role] = large.cpu[r.proc] / time.Duration(n)
			}
		}
		for _, sd := range []*side{small, large} {
			if n := sd.failures(); n != "" {
				row.notes = append(row.notes, n)
			}
		}
		rows = append(rows, row)
		progress(fmt.Sprintf("%d/%d %s: %s → %s (%s)", i+1, len(paths), p.name, ms(row.p50Small), ms(row.p50Large), num(row.ratio)))
	}
	f := figure{num: 7, target: scaleTarget, atMost: true,
		title: fmt.Sprintf("hot paths, p50 at %d ÷ at %d customers (worst of each, 1 conn)", s.large.records, s.small.records)}
	var worst *scaleRow
	hot, met := 0, 0
	var errs []error
	for i := range rows {
		r := &rows[i]
		if r.mayGrow {
			continue
		}
		hot++
		if r.met() {
			met++
		}
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.name, r.err))
			continue
		}
		if worst == nil || r.ratio > worst.ratio {
			worst = r
		}
	}
	f.err = errors.Join(errs...)
	f.value = math.NaN()
	if worst != nil {
		f.value, f.per = worst.ratio, worst.per
		f.detail = fmt.Sprintf("%d of %d hot paths ≤ %.1f×; worst: %s, %s → %s", met, hot, scaleTarget, worst.name, ms(worst.p50Small), ms(worst.p50Large))
	}
	return f, rows, nil
}
