package bffd_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	authhttp "github.com/acme/customer-platform/auth/httpapi"
	authmongo "github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/bffd"
	bffhttp "github.com/acme/customer-platform/bff/httpapi"
	bffmongo "github.com/acme/customer-platform/bff/mongodb"
	customerhttp "github.com/acme/customer-platform/customer/httpapi"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/faultproxy"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

func TestMain(m *testing.M) { os.Exit(systest.Main(m)) }

const testPassword = "Tr1cky-Wombat-Lantern"

// stack is the auth and customer services, the BFF reaching each through a
// fault proxy, and the databases of the three services; the BFFs are
// started by the tests (startBFF).
type stack struct {
	t          *testing.T
	sys        *systest.System
	auth       *systest.Instance
	customer   *systest.Instance
	authProxy  *faultproxy.Proxy
	custProxy  *faultproxy.Proxy
	authDB     *mongo.Database
	customerDB *mongo.Database
	bffDB      *mongo.Database
	redis      *embedded.Redis
}

type stackOptions struct {
	redis   bool              // a Redis for the change feed and the BFF's cache
	authEnv map[string]string // overrides of the auth service's environment
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	sys := systest.Start(t, systest.Options{
		Replicas: map[string]int{"bff": 0},
		Redis:    o.redis,
		Proxies:  []systest.Link{{From: "bff", To: "auth"}, {From: "bff", To: "customer"}},
		ServiceEnv: map[string]map[string]string{
			"auth": o.authEnv,
			"bff":  {"CUSTOMER_TIMEOUT": "600ms", "SAGA_LEASE_TTL": "6s"},
		},
	})
	return &stack{t: t, sys: sys, auth: sys.Service("auth"), customer: sys.Service("customer"),
		authProxy: sys.Proxy("bff", "auth"), custProxy: sys.Proxy("bff", "customer"),
		authDB: sys.DB("auth"), customerDB: sys.DB("customer"), bffDB: sys.DB("bff"), redis: sys.Redis}
}

// bffServer is a running BFF.
type bffServer struct {
	*systest.Instance
	url string
	t   *testing.T
}

func (b *bffServer) stop() error { return b.Stop() }

// startBFF runs a BFF against the proxies, with fast timeouts and
// reconciler, the saga runner's afterStep hook (nil: none); env overrides
// the defaults ("" unsets one).
func (s *stack) startBFF(env map[string]string, afterStep func(ctx context.Context, step string) error) *bffServer {
	s.t.Helper()
	o := systest.ReplicaOptions{Env: env}
	if afterStep != nil {
		o.Run = withAfterStep(afterStep)
	}
	in := s.sys.AddReplica("bff", o)
	return &bffServer{Instance: in, url: in.URL, t: s.t}
}

// withAfterStep is the BFF's Run with the saga runner's test hook.
func withAfterStep(afterStep func(ctx context.Context, step string) error) daemon.RunFunc {
	return func(ctx context.Context, lookup config.Lookup, o daemon.Options) error {
		cfg, err := bffd.LoadConfig(lookup)
		if err != nil {
			return err
		}
		bffd.SetAfterStep(&cfg, afterStep)
		return bffd.Run(ctx, cfg, o)
	}
}

// apiDocs holds every exchange of these tests to the OpenAPI document of the
// service that answered it.
var apiDocs = apitest.Docs{
	apitest.MustLoad("bff", bffhttp.OpenAPI()),
	apitest.MustLoad("auth", authhttp.OpenAPI()),
	apitest.MustLoad("customer", customerhttp.OpenAPI()),
}

// call is testenv.Call with every exchange checked against the documents.
func call(t testing.TB, method, url string, body any, header map[string]string) testenv.Answer {
	t.Helper()
	return testenv.Call(t, apiDocs.Client(t, testenv.DefaultClient), method, url, body, header)
}

// registration is a valid registration body for email.
func registration(email string) map[string]any {
	return map[string]any{
		"email": email, "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+15035550100",
		"password1": testPassword, "password2": testPassword,
		"street_address": "123 Main St", "city": "Portland", "state": "OR", "postal_code": "97201",
	}
}

func (b *bffServer) register(body any, header map[string]string) testenv.Answer {
	b.t.Helper()
	return call(b.t, http.MethodPost, b.url+"/api/bff/register/", body, header)
}

// users lists the auth users with email.
func (s *stack) users(t testing.TB, email string) []bson.M {
	t.Helper()
	return testenv.Find(t, s.authDB.Collection(authmongo.UsersCollection), bson.D{{Key: "email", Value: strings.ToLower(email)}})
}

// profiles lists the customer profiles of userID.
func (s *stack) profiles(t testing.TB, userID string) []bson.M {
	t.Helper()
	return testenv.Find(t, s.customerDB.Collection(custmongo.CustomersCollection), bson.D{{Key: "user_id", Value: userID}})
}

// sagas lists the BFF's saga records.
func (s *stack) sagas(t testing.TB) []bson.M {
	t.Helper()
	return testenv.Find(t, s.bffDB.Collection(bffmongo.SagasCollection), bson.D{})
}

// sagaStates counts the BFF's sagas by state.
func (s *stack) sagaStates(t testing.TB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, d := range s.sagas(t) {
		out[d["state"].(string)]++
	}
	return out
}

// checkPairs checks the saga's invariants over what the services hold:
// every user has exactly one profile (no orphan user) and every profile a
// user (no ghost profile). It returns how many users there are.
func (s *stack) checkPairs(t testing.TB) int {
	t.Helper()
	users := testenv.Find(t, s.authDB.Collection(authmongo.UsersCollection), bson.D{})
	profiles := testenv.Find(t, s.customerDB.Collection(custmongo.CustomersCollection), bson.D{})
	profilesOf := map[string]int{}
	for _, p := range profiles {
		profilesOf[p["user_id"].(string)]++
	}
	userIDs := map[string]bool{}
	for _, u := range users {
		id := u["_id"].(string)
		userIDs[id] = true
		if profilesOf[id] != 1 {
			t.Errorf("user %s (%s) has %d profiles (an orphan user when 0)", id, u["email"], profilesOf[id])
		}
	}
	for uid := range profilesOf {
		if !userIDs[uid] {
			t.Errorf("ghost profile of user %s", uid)
		}
	}
	return len(users)
}

// redisProxy is a fault proxy in front of r, closed with the test: a BFF
// given redis://<its address>/0 can be cut off from Redis alone.
func redisProxy(t testing.TB, r *embedded.Redis) *faultproxy.Proxy {
	t.Helper()
	proxy, err := faultproxy.New(strings.TrimPrefix(strings.TrimSuffix(r.URL, "/0"), "redis://"), 1)
	testenv.Must(t, err, "redis proxy")
	t.Cleanup(proxy.Close)
	return proxy
}

// settled reports whether every saga is terminal.
func (s *stack) settled(t testing.TB) bool {
	t.Helper()
	for st := range s.sagaStates(t) {
		if !bff.Terminal(st) {
			return false
		}
	}
	return true
}
