package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/auth"
	authmongo "github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/auth/password"
	"github.com/acme/customer-platform/auth/token"
	"github.com/acme/customer-platform/bff"
	bffmongo "github.com/acme/customer-platform/bff/mongodb"
	"github.com/acme/customer-platform/customer"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/contract"
)

// A seeded customer is what a completed registration and one
// increment_service leave behind, written through the stores' own code
// (so it has whatever shape the running code gives it) instead of through
// HTTP: its auth user (with one precomputed Argon2id hash of
// benchPassword, so logins work) and its email claim, its profile, its
// service record, the registration's saga and its idempotency record (see
// seedStack.customer). Not seeded: the producers' outboxes, which hold
// only the events not relayed yet (empty at rest).
const servicesPerCustomer = 1

// seeded is what a stack's seeding leaves for the figures: the users the
// reads rotate over, and samples of the BFF's records for the store
// operations.
type seeded struct {
	users []user // evenly spread over the seeded customers
	// streams are the seeding streams' names and how long each took.
	streamNames []string
	streams     []time.Duration
	staff       string   // an employee's access token
	sagas       []string // saga ids
	keys        []string // idempotency key ids
	took        time.Duration
	ops         int64 // store operations made
}

// seedStack is one stack's databases and the stores over them.
type seedStack struct {
	name                      string // "large", "small": part of every email
	n                         int    // customers
	sample                    int    // users to keep for the reads
	authDB, customerDB, bffDB *mongo.Database
	auth                      *authmongo.Store
	customers                 *custmongo.Store
	bff                       *bffmongo.Store
	tokens                    *token.Issuer
	hash                      string
	runID                     string
	conc                      int
	seeded                    seeded
	ops                       atomic.Int64
	sampleEvery               int
}

// seedEmail is the email of seeded customer i of a stack.
func seedEmail(runID, stack string, i int) string {
	return "seed-" + runID + "-" + stack + "-" + strconv.Itoa(i) + "@example.com"
}

// newSeedStack opens the stores of one stack's databases, as the services
// do at start (their indexes exist already: the services made them).
func newSeedStack(ctx context.Context, client *mongo.Client, name string, dbs [3]string, n, sample, conc int, tokens *token.Issuer, hash, runID string) (*seedStack, error) {
	st := &seedStack{name: name, n: n, sample: min(sample, n), tokens: tokens, hash: hash, runID: runID, conc: conc,
		authDB: client.Database(dbs[0]), customerDB: client.Database(dbs[1]), bffDB: client.Database(dbs[2])}
	st.auth = authmongo.New(st.authDB)
	if err := st.auth.EnsureIndexes(ctx); err != nil {
		return nil, err
	}
	var err error
	if st.customers, err = custmongo.New(ctx, st.customerDB); err != nil {
		return nil, fmt.Errorf("customer store: %w", err)
	}
	if st.bff, err = bffmongo.New(ctx, st.bffDB); err != nil {
		return nil, fmt.Errorf("bff store: %w", err)
	}
	st.sampleEvery = max(1, n/max(1, st.sample))
	return st, nil
}

// seed writes the stack's n customers and a staff user.
func (st *seedStack) seed(ctx context.Context) (seeded, error) {
	started := time.Now()
	now := time.Now().UTC().Truncate(time.Millisecond)
	staff := auth.User{ID: contract.NewID(), Email: "staff-" + st.runID + "-" + st.name + "@example.com", FirstName: "Bench",
		LastName: "Staff", PhoneNumber: "+15035550199", Role: contract.RoleEmployee, DateJoined: now, PasswordHash: st.hash}
	if err := st.auth.CreateUser(ctx, staff); err != nil {
		return seeded{}, fmt.Errorf("seed staff user: %w", err)
	}
	var err error
	if st.seeded.staff, err = st.access(staff, now); err != nil {
		return seeded{}, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs := make([]seedCustomer, st.n)
	for i := range cs {
		cs[i] = st.customer(i, now)
	}
	// One stream per kind of record, each of conc workers taking chunks of
	// seedChunk customers: the streams write to different databases (auth,
	// customers, the BFF's), which the embedded FerretDB serves in
	// parallel, each its own SQLite file. Users go in through the auth
	// store's bulk import (ImportUsers: one insert of the chunk's email
	// claims, one of its users), profiles through the customer store's
	// (ImportProfiles, and one recount of the staff's figures at the end);
	// the others have no bulk path in their store and go in one call at a
	// time, as the services make them. A profile's service records follow
	// it in its stream.
	streams := []struct {
		name  string
		write func(ctx context.Context, cs []seedCustomer) error
	}{
		{"users", func(ctx context.Context, cs []seedCustomer) error {
			us := make([]auth.User, len(cs))
			for i := range cs {
				us[i] = cs[i].user
			}
			res, err := st.auth.ImportUsers(ctx, us)
			if err != nil {
				return err
			}
			for i, r := range res {
				if r.Err != nil {
					return fmt.Errorf("user %s: %w", us[i].Email, r.Err)
				}
			}
			st.ops.Add(2)
			return nil
		}},
		{"profiles and service records", st.profiles},
		{"sagas", func(ctx context.Context, cs []seedCustomer) error {
			for _, c := range cs {
				if err := st.bff.CreateSaga(ctx, c.saga); err != nil {
					return err
				}
				st.ops.Add(1)
			}
			return nil
		}},
		{"idempotency records", func(ctx context.Context, cs []seedCustomer) error {
			for _, c := range cs {
				if err := st.bff.InsertKey(ctx, c.key); err != nil {
					return err
				}
				st.ops.Add(1)
			}
			return nil
		}},
	}
	errs := make([]error, len(streams)*st.conc)
	st.seeded.streams = make([]time.Duration, len(streams))
	var wg sync.WaitGroup
	for k, sm := range streams {
		var next atomic.Int64
		var left atomic.Int64
		left.Store(int64(st.conc))
		for w := range st.conc {
			wg.Go(func() {
				defer func() {
					if left.Add(-1) == 0 {
						st.seeded.streams[k] = time.Since(started)
					}
				}()
				for {
					from := int(next.Add(seedChunk) - seedChunk)
					if from >= st.n || ctx.Err() != nil {
						return
					}
					if err := sm.write(ctx, cs[from:min(from+seedChunk, st.n)]); err != nil {
						errs[k*st.conc+w] = fmt.Errorf("seed the %s of customers %d+ of the %s stack: %w", sm.name, from, st.name, err)
						cancel()
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return seeded{}, err
	}
	if err := st.recount(ctx); err != nil {
		return seeded{}, err
	}
	for _, sm := range streams {
		st.seeded.streamNames = append(st.seeded.streamNames, sm.name)
	}
	for i := 0; i < st.n && len(st.seeded.users) < st.sample; i += st.sampleEvery {
		c := &cs[i]
		access, err := st.access(c.user, now)
		if err != nil {
			return seeded{}, err
		}
		st.seeded.users = append(st.seeded.users, user{id: c.user.ID, email: c.user.Email, access: access, profileID: c.profile.ID})
		st.seeded.sagas = append(st.seeded.sagas, c.saga.ID)
		st.seeded.keys = append(st.seeded.keys, c.key.KeyID)
	}
	st.seeded.took = time.Since(started)
	st.seeded.ops = st.ops.Load()
	return st.seeded, nil
}

// seedChunk is how many customers a seeding worker takes at a time (and
// the size of one bulk import of users).
const seedChunk = 100

// profiles writes the profiles of cs through the customer store's bulk
// import (ImportProfiles: their ids derived from the user ids, as the
// service's), reads them back by user id (the store names their service
// series) and records each one's services in order, as increment_service
// does (AddService with an "auto:" key; it counts them in the staff's
// figures, which the recount after the seeding replaces: the cost of
// writing records as the service does, with no bulk path for them),
// from the profile read and the count so far (so each record is its
// slot's insert, the read of the slot before, and the hint).
func (st *seedStack) profiles(ctx context.Context, cs []seedCustomer) error {
	ps := make([]customer.Customer, len(cs))
	users := make([]string, len(cs))
	for i, c := range cs {
		ps[i], users[i] = c.profile, c.user.ID
	}
	res, err := st.customers.ImportProfiles(ctx, ps, time.Now())
	if err != nil {
		return fmt.Errorf("profiles: %w", err)
	}
	for i, r := range res {
		if r.Err != nil {
			return fmt.Errorf("profile of %s: %w", users[i], r.Err)
		}
	}
	got, err := st.customers.ProfilesByUserIDs(ctx, users)
	if err != nil {
		return err
	}
	st.ops.Add(2)
	for _, c := range cs {
		p, ok := got[c.user.ID]
		if !ok {
			return fmt.Errorf("profile of %s not found after its import", c.user.ID)
		}
		for k, r := range c.services {
			p.TotalServices = k
			if _, _, err := st.customers.AddService(ctx, p, r, "auto:"+r.ID); err != nil {
				return fmt.Errorf("service record: %w", err)
			}
			st.ops.Add(1)
		}
	}
	return nil
}

// recount counts the staff's figures once the profiles are in (the bulk
// import leaves them to be recounted), as a customer replica's
// maintenance would within a minute, so that the figures measure the
// counters and not the count from the collections that stands in for
// them meanwhile.
func (st *seedStack) recount(ctx context.Context) error {
	if _, err := st.customers.RecountWhenQuiet(ctx, 20); err != nil {
		return fmt.Errorf("recount the staff's figures: %w", err)
	}
	return nil
}

// seedCustomer is everything one seeded customer consists of.
type seedCustomer struct {
	user     auth.User
	profile  customer.Customer
	services []customer.ServiceRecord
	saga     *bff.Saga
	key      *bff.IdempotencyRecord
}

// customer builds seeded customer i: the records a completed
// registration and a few services leave, written by seed through the
// stores' calls a registration makes (the profile's id is the one the
// customer service gives it, ProfileID of the user id). The sealed fields
// are random bytes of their usual sizes: nothing opens a seeded one.
func (st *seedStack) customer(i int, now time.Time) seedCustomer {
	u := auth.User{ID: contract.NewID(), Email: seedEmail(st.runID, st.name, i), FirstName: "Bench",
		LastName: "Seed" + strconv.Itoa(i%1000), PhoneNumber: "+15035550100", Role: contract.RoleCustomer,
		DateJoined: now, PasswordHash: st.hash, RegistrationKey: contract.NewID()}
	street, city, state, postal := "123 Main St", "Portland", "OR", "97201"
	c, err := customer.ValidateCreate(customer.Changes{StreetAddress: &street, City: &city, State: &state, PostalCode: &postal})
	if err != nil {
		panic(fmt.Sprintf("the seeded profile is not valid: %v", err)) // a constant input
	}
	c.ID, c.UserID = customer.ProfileID(u.ID), u.ID
	c.CustomerSince, c.CreatedAt, c.UpdatedAt = now, now, now
	sc := seedCustomer{user: u, profile: c}
	for k := range servicesPerCustomer {
		sc.services = append(sc.services, customer.ServiceRecord{ID: contract.NewID(), CustomerID: c.ID, ServiceType: "maintenance",
			Notes: "seeded", PerformedAt: now.Add(-time.Duration(servicesPerCustomer-k) * 24 * time.Hour), RecordedBy: contract.NewID(),
			CreatedAt: now, RequestHash: randomHex(32)})
	}
	// The saga as a registration leaves it: created (started, version 0),
	// the user recorded (version 1), completed with its sealed answer and
	// its secrets wiped (version 2), and the key's record completed with
	// the answer: each document as the last of those store calls leaves
	// it, written by one CreateSaga (a finished saga gets no open marker)
	// and one InsertKey. Not written: the saga's two fences, which only a
	// reader of the saga at version 0 or 1 would look for, by _id.
	keyID := bff.KeyID("bench-seed-" + u.RegistrationKey)
	sc.saga = &bff.Saga{ID: u.RegistrationKey, Kind: bff.KindRegister, State: bff.StateCompleted, UserID: u.ID, CustomerID: c.ID,
		EmailHash: randomHex(32), TokenExpiresAt: now.Add(time.Hour), IdempotencyKeyID: keyID, AnswerSealed: randomBytes(1500),
		Version: 2, NextAttemptAt: now.Add(time.Minute), CreatedAt: now, UpdatedAt: now}
	sc.key = &bff.IdempotencyRecord{KeyID: keyID, Check: randomHex(16), State: bff.KeyDone, Owner: contract.NewID(),
		LeaseExpiresAt: now.Add(30 * time.Second), SagaID: sc.saga.ID, Status: http.StatusCreated, Answer: randomBytes(1500),
		CreatedAt: now, ExpiresAt: now.Add(bff.KeyTTL)}
	return sc
}

// access issues u's access token with the auth service's issuer (the
// benchmark only reads with it).
func (st *seedStack) access(u auth.User, now time.Time) (string, error) {
	pair, err := st.tokens.Pair(u, now)
	if err != nil {
		return "", fmt.Errorf("access token of %s: %w", u.Email, err)
	}
	return pair.Access, nil
}

// seedHash is the one Argon2id hash of benchPassword every seeded user
// gets, at the auth service's parameters (so a login verifies at the same
// cost as for a registered user).
func seedHash(ctx context.Context, p password.Params) (string, error) {
	h, err := password.New(p, 1)
	if err != nil {
		return "", err
	}
	return h.Hash(ctx, benchPassword)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }
