package bffd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/auth/authd"
	authhttp "github.com/acme/customer-platform/auth/httpapi"
	authmongo "github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/bff"
	bffhttp "github.com/acme/customer-platform/bff/httpapi"
	bffmongo "github.com/acme/customer-platform/bff/mongodb"
	"github.com/acme/customer-platform/customer/customerd"
	customerhttp "github.com/acme/customer-platform/customer/httpapi"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/faultproxy"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	testKey       = "test-signing-key-shared-by-the-three-services-0123"
	serviceID     = "bff"
	serviceSecret = "bff-service-secret-for-tests"
	testPassword  = "Tr1cky-Wombat-Lantern"
)

func testLogger() *slog.Logger {
	if os.Getenv("BFF_TEST_LOGS") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewJSONHandler(io.Discard, nil))
}

// proc is a service running in this process.
type proc struct {
	url  string
	stop func() error // cancels it and waits for Run to return
}

// runProc runs a service's Run until stop, and waits until it listens.
func runProc(t *testing.T, name string, run func(ctx context.Context, o daemon.Options) error) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan daemon.Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, daemon.Options{Logger: testLogger().With("service", name), Lookup: config.FromMap(nil),
			Ready: func(a daemon.Addrs) { ready <- a }})
	}()
	var addrs daemon.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("%s did not start: %v", name, err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("%s did not start within 60s", name)
	}
	var stopped atomic.Bool
	var result error
	p := &proc{url: "http://" + addrs.API.String()}
	p.stop = func() error {
		if stopped.CompareAndSwap(false, true) {
			cancel()
			result = <-done
		}
		return result
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("%s stopped with an error: %v", name, err)
		}
	})
	return p
}

// stack is the auth and customer services, each behind a fault proxy, and
// the databases of the three services.
type stack struct {
	t          *testing.T
	auth       *proc
	customer   *proc
	authProxy  *faultproxy.Proxy
	custProxy  *faultproxy.Proxy
	authDB     *mongo.Database
	customerDB *mongo.Database
	bffDB      *mongo.Database
	redis      *embedded.Redis
	custEnv    map[string]string
}

type stackOptions struct {
	redis   bool              // a Redis for the change feed and the BFF's cache
	authEnv map[string]string // overrides of the auth service's environment
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	_, authDB := testenv.Mongo(t)
	_, custDB := testenv.Mongo(t)
	_, bffDB := testenv.Mongo(t)
	s := &stack{t: t, authDB: authDB, customerDB: custDB, bffDB: bffDB}
	if o.redis {
		s.redis = testenv.Redis(t)
	}
	authEnv := map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		"MONGODB_URI": testenv.MongoURI(t), "AUTH_DB": authDB.Name(),
		"JWT_SIGNING_KEY":   testKey,
		"ARGON2_MEMORY_KIB": "256", "ARGON2_ITERATIONS": "1",
		"AUTH_RATE_LIMITS":     "off",
		"AUTH_SERVICE_CLIENTS": serviceID + ":" + serviceSecret,
		"SHUTDOWN_TIMEOUT":     "2s",
	}
	if s.redis != nil {
		authEnv["REDIS_URL"] = s.redis.URL
	}
	maps.Copy(authEnv, o.authEnv)
	acfg, err := authd.LoadConfig(config.FromMap(authEnv))
	testenv.Must(t, err, "auth config")
	s.auth = runProc(t, "auth", func(ctx context.Context, o daemon.Options) error { return authd.Run(ctx, acfg, o) })

	s.custEnv = map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		"MONGODB_URI": testenv.MongoURI(t), "CUSTOMER_DB": custDB.Name(),
		"JWT_SIGNING_KEY": testKey, "AUTH_URL": s.auth.url, "SHUTDOWN_TIMEOUT": "2s",
	}
	if s.redis != nil {
		s.custEnv["REDIS_URL"] = s.redis.URL
	}
	s.customer = s.startCustomer()

	s.authProxy, err = faultproxy.New(strings.TrimPrefix(s.auth.url, "http://"), 1)
	testenv.Must(t, err, "auth proxy")
	t.Cleanup(s.authProxy.Close)
	s.custProxy, err = faultproxy.New(strings.TrimPrefix(s.customer.url, "http://"), 2)
	testenv.Must(t, err, "customer proxy")
	t.Cleanup(s.custProxy.Close)
	return s
}

// startCustomer (re)starts the customer service.
func (s *stack) startCustomer() *proc {
	ccfg, err := customerd.LoadConfig(config.FromMap(s.custEnv))
	testenv.Must(s.t, err, "customer config")
	return runProc(s.t, "customer", func(ctx context.Context, o daemon.Options) error { return customerd.Run(ctx, ccfg, o) })
}

// bffServer is a running BFF.
type bffServer struct {
	*proc
	t *testing.T
}

// startBFF runs a BFF against the proxies, with fast timeouts and
// reconciler; env overrides the defaults.
func (s *stack) startBFF(env map[string]string, afterStep func(ctx context.Context, step string) error) *bffServer {
	s.t.Helper()
	e := map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		"MONGODB_URI": testenv.MongoURI(s.t), "BFF_DB": s.bffDB.Name(),
		"JWT_SIGNING_KEY": testKey,
		"AUTH_URL":        s.authProxy.URL(), "CUSTOMER_URL": s.custProxy.URL(),
		"BFF_SERVICE_CLIENT_ID": serviceID, "BFF_SERVICE_CLIENT_SECRET": serviceSecret,
		"AUTH_TIMEOUT": "3s", "CUSTOMER_TIMEOUT": "600ms",
		"RECONCILE_INTERVAL": "150ms", "SAGA_LEASE_TTL": "6s",
		"SHUTDOWN_TIMEOUT": "1s",
	}
	if s.redis != nil {
		e["REDIS_URL"] = s.redis.URL
	}
	maps.Copy(e, env)
	for k, v := range e {
		if v == "" {
			delete(e, k)
		}
	}
	cfg, err := LoadConfig(config.FromMap(e))
	testenv.Must(s.t, err, "bff config")
	cfg.afterStep = afterStep
	p := runProc(s.t, "bff", func(ctx context.Context, o daemon.Options) error { return Run(ctx, cfg, o) })
	return &bffServer{proc: p, t: s.t}
}

// answer is an HTTP answer.
type answer struct {
	status int
	header http.Header
	raw    []byte
}

func (a answer) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.raw, &m); err != nil {
		t.Fatalf("body is not a JSON object (%d): %v: %q", a.status, err, a.raw)
	}
	return m
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.raw) }

var httpClient = &http.Client{Timeout: 30 * time.Second}

// apiDocs holds every exchange of these tests to the OpenAPI document of the
// service that answered it.
var apiDocs = apitest.Docs{
	apitest.MustLoad("bff", bffhttp.OpenAPI()),
	apitest.MustLoad("auth", authhttp.OpenAPI()),
	apitest.MustLoad("customer", customerhttp.OpenAPI()),
}

// call sends a request; body is JSON-encoded unless it is a string.
func call(t testing.TB, method, url string, body any, header map[string]string) answer {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		testenv.Must(t, err, "encode")
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, r)
	testenv.Must(t, err, "request")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := apiDocs.Client(t, httpClient).Do(req)
	testenv.Must(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	testenv.Must(t, err, "read answer")
	return answer{status: resp.StatusCode, header: resp.Header, raw: raw}
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// registration is a valid registration body for email.
func registration(email string) map[string]any {
	return map[string]any{
		"email": email, "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+15035550100",
		"password1": testPassword, "password2": testPassword,
		"street_address": "123 Main St", "city": "Portland", "state": "OR", "postal_code": "97201",
	}
}

func (b *bffServer) register(body any, header map[string]string) answer {
	b.t.Helper()
	return call(b.t, http.MethodPost, b.url+"/api/bff/register/", body, header)
}

// users lists the auth users with email.
func (s *stack) users(t testing.TB, email string) []bson.M {
	t.Helper()
	return find(t, s.authDB.Collection(authmongo.UsersCollection), bson.D{{Key: "email", Value: strings.ToLower(email)}})
}

// profiles lists the customer profiles of userID.
func (s *stack) profiles(t testing.TB, userID string) []bson.M {
	t.Helper()
	return find(t, s.customerDB.Collection(custmongo.CustomersCollection), bson.D{{Key: "user_id", Value: userID}})
}

// sagas lists the BFF's saga records.
func (s *stack) sagas(t testing.TB) []bson.M {
	t.Helper()
	return find(t, s.bffDB.Collection(bffmongo.SagasCollection), bson.D{})
}

func find(t testing.TB, c *mongo.Collection, filter bson.D) []bson.M {
	t.Helper()
	cur, err := c.Find(context.Background(), filter)
	testenv.Must(t, err, "find in %s", c.Name())
	var out []bson.M
	testenv.Must(t, cur.All(context.Background(), &out), "read %s", c.Name())
	return out
}

// eventually polls cond until it holds or the time is up.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
