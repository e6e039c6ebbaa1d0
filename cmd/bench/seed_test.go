package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	mongooptions "go.mongodb.org/mongo-driver/mongo/options"

	authmongo "github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/auth/password"
	"github.com/acme/customer-platform/auth/token"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/customer"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestSeedThroughStores seeds a small stack and reads every seeded record
// back through the stores the services use, as a request would: the
// seeding must leave what registrations and increment_service leave (a
// user found by email whose password verifies, a profile under the id the
// customer service derives, with its service counted, a finished saga, a
// completed idempotency record), and nothing for anyone else.
func TestSeedThroughStores(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds the embedded FerretDB")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, _ := testenv.Mongo(t)
	dbs := [3]string{testenv.DBName(t), testenv.DBName(t), testenv.DBName(t)}
	params := password.Params{MemoryKiB: 256, Iterations: 1, Parallelism: 1}
	hash, err := seedHash(ctx, params)
	testenv.Must(t, err, "hash")
	key := []byte("0123456789abcdef0123456789abcdef")
	tokens, err := token.New(token.Config{Key: key, AccessTTL: time.Hour})
	testenv.Must(t, err, "issuer")
	const n, sample = 2*seedChunk + 7, 5 // chunks of the streams, and a partial one
	st, err := newSeedStack(ctx, client, "t", dbs, n, sample, 3, tokens, hash, "run")
	testenv.Must(t, err, "stack")
	sd, err := st.seed(ctx)
	testenv.Must(t, err, "seed")

	if len(sd.users) != sample || len(sd.sagas) != sample || len(sd.keys) != sample || sd.staff == "" {
		t.Fatalf("seeded %d users, %d sagas, %d keys, staff %q; want %d each and a staff token", len(sd.users), len(sd.sagas), len(sd.keys), sd.staff, sample)
	}
	// The tokens are the auth service's: the services' verifier takes them.
	verifier, err := authclient.NewVerifier(authclient.VerifierConfig{Key: key})
	testenv.Must(t, err, "verifier")
	for _, tok := range append([]string{sd.staff}, sd.users[0].access) {
		if _, err := verifier.Verify(tok); err != nil {
			t.Errorf("a seeded token is refused: %v", err)
		}
	}
	if len(sd.streams) != len(sd.streamNames) || len(sd.streams) == 0 {
		t.Errorf("streams %v, names %v", sd.streams, sd.streamNames)
	}
	hasher, err := password.New(params, 1)
	testenv.Must(t, err, "hasher")
	users := authmongo.New(client.Database(dbs[0]))
	for i := range n {
		u, err := users.UserByEmail(ctx, seedEmail("run", "t", i))
		if err != nil {
			t.Fatalf("user %d by email: %v", i, err)
		}
		c, err := st.customers.ByUserID(ctx, u.ID)
		if err != nil {
			t.Fatalf("profile of user %d: %v", i, err)
		}
		if c.ID != customer.ProfileID(u.ID) || c.TotalServices != servicesPerCustomer || c.LastServiceDate == nil {
			t.Fatalf("profile of user %d: id %s (derived %s), %d services, last %v", i, c.ID, customer.ProfileID(u.ID), c.TotalServices, c.LastServiceDate)
		}
	}
	total, err := st.customers.Count(ctx, customer.Filter{})
	testenv.Must(t, err, "count")
	if total != n {
		t.Errorf("%d profiles, want %d", total, n)
	}
	// The staff's figures were recounted after the bulk import: stripe 0's
	// last slot is exact (else Stats would count from the collections),
	// and they count every seeded profile and record.
	var last struct {
		Change string `bson:"change"`
		Exact  bool   `bson:"exact"`
	}
	err = client.Database(dbs[1]).Collection(custmongo.StatsCollection).FindOne(ctx, bson.D{{Key: "stripe", Value: 0}},
		mongooptions.FindOne().SetSort(bson.D{{Key: "n", Value: -1}})).Decode(&last)
	testenv.Must(t, err, "the figures' last slot")
	if !last.Exact || !strings.HasPrefix(last.Change, "recount/") {
		t.Errorf("after the seeding the figures' last slot is %+v, want an exact recount", last)
	}
	figures, err := st.customers.Stats(ctx, time.Now().Add(-30*24*time.Hour))
	testenv.Must(t, err, "stats")
	if figures.TotalCustomers != n || figures.TotalServices != n*servicesPerCustomer {
		t.Errorf("stats %+v, want %d customers and %d services", figures, n, n*servicesPerCustomer)
	}
	for i, u := range sd.users {
		got, err := users.UserByEmail(ctx, u.email)
		testenv.Must(t, err, "sampled user")
		if got.ID != u.id || u.profileID != customer.ProfileID(u.id) {
			t.Errorf("sampled user %d: %+v, stored id %s", i, u, got.ID)
		}
		if ok, _, err := hasher.Verify(ctx, benchPassword, got.PasswordHash); err != nil || !ok {
			t.Errorf("sampled user %d: the bench password does not verify (%v)", i, err)
		}
		sg, err := st.bff.GetSaga(ctx, sd.sagas[i])
		testenv.Must(t, err, "saga")
		if sg.State != bff.StateCompleted || sg.Version != 2 || sg.UserID != u.id || sg.CustomerID != u.profileID || sg.EmailSealed != nil || sg.TokenSealed != nil {
			t.Errorf("saga of sampled user %d: %+v", i, sg)
		}
		k, err := st.bff.GetKey(ctx, sd.keys[i], time.Now())
		testenv.Must(t, err, "key")
		if k.State != bff.KeyDone || k.Status != http.StatusCreated || k.SagaID != sg.ID || len(k.Answer) == 0 {
			t.Errorf("key of sampled user %d: %+v", i, k)
		}
	}
	// Finished sagas are no open work: the reconciler finds none.
	due, err := st.bff.DueSagas(ctx, time.Now().Add(time.Hour), 10)
	testenv.Must(t, err, "due sagas")
	stats, err := st.bff.Stats(ctx)
	testenv.Must(t, err, "saga stats")
	if len(due) != 0 || stats.Open != 0 || stats.NeedsAttention != 0 {
		t.Errorf("due %d, stats %+v: seeded sagas are finished", len(due), stats)
	}
}
