package systest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/faultproxy"
	"github.com/acme/customer-platform/internal/stack"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

const password = "Tr1cky-Wombat-Lantern"

func ready(t *testing.T, in *Instance) {
	t.Helper()
	if a := testenv.Call(t, nil, http.MethodGet, in.URL+"/readyz", nil, nil); a.Status != http.StatusOK {
		t.Fatalf("%s /readyz: %s", in, a)
	}
}

// register creates a user on the auth service at base and returns its access token.
func register(t *testing.T, base, email string) string {
	t.Helper()
	a := testenv.Call(t, nil, http.MethodPost, base+"/api/auth/register/", map[string]any{
		"email": email, "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+1 555-0100",
		"password1": password, "password2": password,
	}, nil)
	if a.Status != http.StatusCreated {
		t.Fatalf("register: %s", a)
	}
	var body struct{ Tokens struct{ Access string } }
	a.JSON(t, &body)
	return body.Tokens.Access
}

func login(t *testing.T, base, email string) testenv.Answer {
	t.Helper()
	return testenv.Call(t, nil, http.MethodPost, base+"/api/auth/login/", map[string]any{"email": email, "password": password}, nil)
}

// A subset starts alone, each replica on its own addresses, and the
// replicas of a service share its database.
func TestSubsetAndReplicas(t *testing.T) {
	t.Parallel()
	sys := Start(t, Options{Services: []string{"auth"}, Replicas: map[string]int{"auth": 2}})
	rs := sys.Replicas("auth")
	if len(rs) != 2 || rs[0].URL == rs[1].URL || rs[0].MetricsURL == "" {
		t.Fatalf("replicas %v", rs)
	}
	for _, in := range rs {
		ready(t, in)
	}
	if len(sys.Replicas("customer")) != 0 || len(sys.Replicas("bff")) != 0 || sys.DBName("customer") != "" {
		t.Fatal("services that were not asked for were started")
	}
	if rs[0].Env["AUTH_DB"] != sys.DBName("auth") || rs[1].Env["AUTH_DB"] != sys.DBName("auth") {
		t.Fatalf("replicas on databases %q and %q, the system's is %q", rs[0].Env["AUTH_DB"], rs[1].Env["AUTH_DB"], sys.DBName("auth"))
	}
	register(t, rs[0].URL, "shared@example.com")
	if a := login(t, rs[1].URL, "shared@example.com"); a.Status != http.StatusOK {
		t.Fatalf("the other replica does not know the user: %s", a)
	}
	if n, err := sys.DB("auth").Collection("users").CountDocuments(context.Background(), map[string]any{}); err != nil || n != 1 {
		t.Fatalf("users in the shared database: %d, %v", n, err)
	}
	if !strings.Contains(rs[1].Logs.String(), `"replica":1`) {
		t.Errorf("the second replica's log does not say which it is: %s", rs[1].Logs.Tail(3))
	}
}

// The proxy between two services is in the path and faults what it is told to.
func TestProxyBetweenServices(t *testing.T) {
	t.Parallel()
	sys := Start(t, Options{Services: []string{"auth", "customer"}, Proxies: []Link{{From: "customer", To: "auth", Record: true}}})
	p := sys.Proxy("customer", "auth")
	if got := sys.Service("customer").Env["AUTH_URL"]; got != p.URL() {
		t.Fatalf("the customer service calls auth at %s, the proxy is %s", got, p.URL())
	}
	tok := register(t, sys.URL("auth"), "proxied@example.com")
	profile := sys.URL("customer") + "/api/v1/customers/profile/"
	create := testenv.Call(t, nil, http.MethodPost, profile+"create/", map[string]any{"street_address": "1 Main St", "city": "Springfield", "postal_code": "62701"}, testenv.Bearer(tok))
	if create.Status != http.StatusCreated || create.Map(t)["phone_number"] != "+1 555-0100" {
		t.Fatalf("create: %s", create)
	}
	if len(p.Headers()) == 0 {
		t.Fatal("the customer service's call to auth did not go through the proxy")
	}
	p.SetRules(faultproxy.Rule{Path: "/api/auth/profile/", Action: faultproxy.Fail, Status: http.StatusServiceUnavailable})
	if a := testenv.Call(t, nil, http.MethodGet, profile, nil, testenv.Bearer(tok)); a.Status != http.StatusOK || a.Map(t)["phone_number"] != nil {
		t.Fatalf("with auth failed by the proxy the profile is served without the user's fields: %s", a)
	}
	if p.Stats().Injected == 0 {
		t.Fatal("no fault injected")
	}
	_ = p.Pass()
	if a := testenv.Call(t, nil, http.MethodGet, profile, nil, testenv.Bearer(tok)); a.Map(t)["phone_number"] != "+1 555-0100" {
		t.Fatalf("after Pass: %s", a)
	}
}

// A service that cannot start reports why; the test fails with it.
func TestServiceThatFailsToStart(t *testing.T) {
	t.Parallel()
	_, err := start(t, Options{Services: []string{"auth"}, Env: map[string]string{"JWT_SIGNING_KEY": ""}})
	if err == nil || !strings.Contains(err.Error(), "auth did not start") || !strings.Contains(err.Error(), "JWT_SIGNING_KEY") {
		t.Fatalf("a service without its signing key: %v", err)
	}
	boom := func(context.Context, config.Lookup, daemon.Options) error { return errors.New("boom") }
	if _, err := start(t, Options{Services: []string{"customer"}, Run: map[string]daemon.RunFunc{"customer": boom}}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("a Run that fails: %v", err)
	}
	if _, err := start(t, Options{Services: []string{"billing"}}); err == nil || !strings.Contains(err.Error(), "billing") {
		t.Fatalf("an unknown service: %v", err)
	}
	if _, err := start(t, Options{Services: []string{"auth"}, Proxies: []Link{{From: "auth", To: "customer"}}}); err == nil {
		t.Fatal("a proxy to a service that is not started")
	}
}

// A replica stopped and started again comes back on its address, on the
// same database.
func TestRestart(t *testing.T) {
	t.Parallel()
	sys := Start(t, Options{Services: []string{"auth"}})
	auth := sys.Service("auth")
	url := auth.URL
	register(t, url, "restart@example.com")
	if err := auth.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := http.Get(url + "/readyz"); err == nil {
		t.Fatal("a stopped replica answers")
	}
	auth.Start()
	if auth.URL != url {
		t.Fatalf("restarted on %s, was %s", auth.URL, url)
	}
	if a := login(t, url, "restart@example.com"); a.Status != http.StatusOK {
		t.Fatalf("login after the restart: %s", a)
	}
}

// Child processes: this test binary running each service (its TestMain
// calls Main), with the same environment.
func TestChildProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes: not in the fast tier (-short)")
	}
	t.Parallel()
	sys := Start(t, Options{Services: []string{"auth", "customer"}, Processes: true})
	self, err := os.Executable()
	testenv.Must(t, err, "this test binary")
	for _, name := range []string{"auth", "customer"} {
		in := sys.Service(name)
		ready(t, in)
		in.mu.Lock()
		pid := in.proc.Pid
		in.mu.Unlock()
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		testenv.Must(t, err, "the executable of %s's process %d", name, pid)
		if pid == os.Getpid() || exe != self {
			t.Errorf("%s runs %s as process %d, want this test binary %s in a process of its own", name, exe, pid, self)
		}
	}
	tok := register(t, sys.URL("auth"), "child@example.com")
	a := testenv.Call(t, nil, http.MethodPost, sys.URL("customer")+"/api/v1/customers/profile/create/",
		map[string]any{"street_address": "1 Main St", "city": "Springfield", "postal_code": "62701"}, testenv.Bearer(tok))
	if a.Status != http.StatusCreated {
		t.Fatalf("create through the child processes: %s", a)
	}
	auth := sys.Service("auth")
	lines := auth.Logs.Lines(t)
	if len(lines) == 0 || lines[0]["service"] != "auth" {
		t.Fatalf("the child's log is not captured: %v", lines)
	}
	auth.Kill()
	if auth.Running() {
		t.Fatal("killed and still running")
	}
	auth.Start()
	if a := login(t, auth.URL, "child@example.com"); a.Status != http.StatusOK {
		t.Fatalf("login after the crash: %s", a)
	}
	if err := auth.Stop(); err != nil {
		t.Fatalf("a child stopped with SIGTERM exits cleanly: %v", err)
	}
}

// A replica added during the test, with its own settings and Run, is on
// the service's database.
func TestAddReplica(t *testing.T) {
	t.Parallel()
	sys := Start(t, Options{Services: []string{"auth"}, Replicas: map[string]int{"auth": 0}})
	if len(sys.Replicas("auth")) != 0 {
		t.Fatal("Replicas 0 started one")
	}
	var ran bool
	svc, _ := stack.Lookup("auth")
	run := func(ctx context.Context, lookup config.Lookup, o daemon.Options) error {
		ran = true
		return svc.Run(ctx, lookup, o)
	}
	a := sys.AddReplica("auth", ReplicaOptions{Run: run, Env: map[string]string{"SHUTDOWN_TIMEOUT": "", "AUTH_RATE_LIMITS": "login=1/1m"}})
	b := sys.AddReplica("auth", ReplicaOptions{})
	if !ran || a.Env["AUTH_DB"] != sys.DBName("auth") || b.Env["AUTH_DB"] != sys.DBName("auth") || a.URL == b.URL {
		t.Fatalf("replicas %v and %v, Run replaced: %v", a.Env, b.Env, ran)
	}
	if _, set := a.Env["SHUTDOWN_TIMEOUT"]; set || a.Env["AUTH_RATE_LIMITS"] != "login=1/1m" || b.Env["AUTH_RATE_LIMITS"] != "off" {
		t.Fatalf("replica settings: %v / %v", a.Env, b.Env)
	}
	register(t, a.URL, "added@example.com")
	if r := login(t, b.URL, "added@example.com"); r.Status != http.StatusOK {
		t.Fatalf("the other replica does not know the user: %s", r)
	}
}

// A balanced service's callers reach it through its balancer, which
// spreads their calls over the replicas (one added later too) and skips a
// replica that is down.
func TestBalanced(t *testing.T) {
	t.Parallel()
	sys := Start(t, Options{Services: []string{"auth", "customer"}, Replicas: map[string]int{"auth": 2}, Balanced: []string{"auth"}})
	b := sys.Balancer("auth")
	if got := sys.Service("customer").Env["AUTH_URL"]; got != b.URL() {
		t.Fatalf("the customer service calls auth at %s, the balancer is %s", got, b.URL())
	}
	third := sys.AddReplica("auth", ReplicaOptions{})
	rs := sys.Replicas("auth")
	if got := b.Backends(); len(got) != 3 || "http://"+got[2] != third.URL {
		t.Fatalf("the balancer's backends %v, the replicas %v", got, rs)
	}
	tok := register(t, b.URL(), "balanced@example.com")
	profile := sys.URL("customer") + "/api/v1/customers/profile/"
	testenv.Call(t, nil, http.MethodPost, profile+"create/", map[string]any{"street_address": "1 Main St", "city": "Springfield", "postal_code": "62701"}, testenv.Bearer(tok))
	if err := rs[0].Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if a := testenv.Call(t, nil, http.MethodGet, profile, nil, testenv.Bearer(tok)); a.Status != http.StatusOK || a.Map(t)["phone_number"] != "+1 555-0100" {
			t.Fatalf("read %d with one auth replica down: %s", i, a)
		}
	}
	for _, in := range rs {
		if s := b.Stats(in.URL); s.Served == 0 {
			t.Errorf("%s served nothing through the balancer: %+v", in, s)
		}
	}
	if s := b.Stats(rs[0].URL); s.Refused == 0 {
		t.Errorf("the stopped replica was not skipped: %+v", s)
	}
}
