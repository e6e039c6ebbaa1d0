package bff_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/bff"
	bffmongo "github.com/acme/customer-platform/bff/mongodb"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// replicas is two BFF replicas (and the restart of the first) sharing one
// real store on the embedded FerretDB and one model of the services.
type replicas struct {
	t       *testing.T
	db      *mongo.Database
	store   *bffmongo.Store
	world   *bff.World
	clock   *bff.Clock
	secrets *bff.Secrets
}

func newReplicas(t *testing.T) *replicas {
	t.Helper()
	_, db := testenv.Mongo(t)
	store, err := bffmongo.New(context.Background(), db)
	testenv.Must(t, err, "store")
	c := bff.NewClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	secrets, err := bff.NewSecrets([]byte("0123456789abcdef0123456789abcdef"))
	testenv.Must(t, err, "secrets")
	return &replicas{t: t, db: db, store: store, world: bff.NewWorld(c.Now), clock: c, secrets: secrets}
}

func (r *replicas) replica(p *bff.Plan) *bff.Service {
	auth, authAdmin, customers, customersAdmin := r.world.Ports(p)
	st := bff.CrashStore(r.store, p)
	s, err := bff.NewService(bff.Options{
		Auth: auth, AuthAdmin: authAdmin, Customers: customers, CustomersAdmin: customersAdmin,
		Sagas: st, Leases: st, Keys: st, Secrets: r.secrets, Now: r.clock.Now,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		AuthTimeout: time.Second, CustomerTimeout: time.Second, RetryBase: time.Second,
	})
	testenv.Must(r.t, err, "service")
	bff.NoProfileRetryDelay(s)
	return s
}

// twoReplicasCase kills replica A at crash point k (-1: never) during a
// registration, then lets replica B and A's restart reconcile at once
// until nothing is open, and has the client retry with its key through B.
// It returns A's crash points and what is wrong.
func twoReplicasCase(t *testing.T, k int) (points int, bad []string) {
	r := newReplicas(t)
	ctx := context.Background()
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	fp := bff.RegistrationFingerprint(t)
	const key = "client-key"
	planA := bff.CrashAt(k)
	a := r.replica(planA)
	status := 0
	var body []byte
	func() {
		defer func() {
			if p := recover(); p != nil && !bff.IsCrash(p) {
				panic(p)
			}
		}()
		status, body = bff.KeyedRegister(a, key, fp, bff.ValidRegistration)
	}()
	// A is dead (or done); B and A's restart run their reconcilers side
	// by side, one pass each per second, until nothing is open.
	b, restarted := r.replica(bff.CrashAt(-1)), r.replica(bff.CrashAt(-1))
	rcB, rcA := b.NewReconciler(time.Second, 0), restarted.NewReconciler(time.Second, 0)
	settle := func() {
		for range 120 {
			if st, err := r.store.Stats(ctx); err == nil && st.Open == 0 {
				return
			}
			r.clock.Advance(time.Second)
			var wg sync.WaitGroup
			for _, rc := range []*bff.Reconciler{rcB, rcA} {
				wg.Go(func() { _, _ = rc.Pass(ctx) })
			}
			wg.Wait()
		}
		fail("never settled")
	}
	settle()
	// The client retries with its key through B until the answer is final.
	retry, retryBody := 0, []byte(nil)
	for range 60 {
		retry, retryBody = bff.KeyedRegister(b, key, fp, bff.ValidRegistration)
		if retry != 409 && retry < 500 {
			break
		}
		r.clock.Advance(time.Second)
		settle()
	}
	settle()

	bad = append(bad, r.world.Invariants()...)
	uid, hasProfile := r.world.Holds("ada@example.com")
	if status == 201 && (bff.UserIDOf(body) != uid || !hasProfile) {
		fail("A answered 201 for %q, the world holds %q (profile %v)", bff.UserIDOf(body), uid, hasProfile)
	}
	if retry != 201 || bff.UserIDOf(retryBody) != uid || !hasProfile {
		fail("the retry got %d %s; the world holds %q (profile %v)", retry, retryBody, uid, hasProfile)
	}
	if len(r.world.Deleted()) > 1 {
		fail("users deleted: %v", r.world.Deleted())
	}
	// Never both: no saga was moved forward and back (its fences are its
	// history, one writer per version).
	cur, err := r.db.Collection(bffmongo.FencesCollection).Find(ctx, bson.D{})
	testenv.Must(t, err, "fences")
	var fences []struct {
		SagaID  string `bson:"saga_id"`
		Version int32  `bson:"version"`
		Change  struct {
			State string `bson:"state"`
		} `bson:"change"`
	}
	testenv.Must(t, cur.All(ctx, &fences), "fences")
	history := map[string]map[string]bool{}
	for _, f := range fences {
		if history[f.SagaID] == nil {
			history[f.SagaID] = map[string]bool{}
		}
		history[f.SagaID][f.Change.State] = true
	}
	for id, states := range history {
		if states[bff.StateCompleted] && (states[bff.StateCompensating] || states[bff.StateVerifying] || states[bff.StateCompensated]) {
			fail("saga %s was both finished and compensated: %v", id, states)
		}
	}
	return planA.Points(), bad
}

// Issue 14: two replicas share one store; the one running a registration
// is killed at each of its crash points in turn (before and after each
// call and each store write). The other (with the first one's restart
// reconciling beside it) finishes or compensates the saga, never both,
// and the client's retry gets the outcome. On the real store, embedded
// FerretDB.
func TestTwoReplicasOneKilledMidSaga(t *testing.T) {
	t.Parallel()
	points, bad := twoReplicasCase(t, -1)
	for _, b := range bad {
		t.Errorf("without a crash: %s", b)
	}
	t.Logf("replica A has %d crash points; each is a case", points)
	for k := range points {
		t.Run(fmt.Sprintf("killed at point %d", k), func(t *testing.T) {
			t.Parallel()
			_, bad := twoReplicasCase(t, k)
			for _, b := range bad {
				t.Error(b)
			}
		})
	}
}
