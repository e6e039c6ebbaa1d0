package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/auth/authd"
	"github.com/acme/customer-platform/bff/bffd"
	"github.com/acme/customer-platform/customer/customerd"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/logging"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const (
	signingKey    = "e2e-signing-key-shared-by-the-three-services-0123"
	serviceID     = "bff"
	serviceSecret = "bff-service-secret-for-e2e-tests"
	registerPath  = "/api/auth/register/"
	createPath    = "/api/v1/customers/profile/create/"
)

// syncBuffer collects a service's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// service is one of the three, running in this process.
type service struct {
	name    string
	url     string // the API
	metrics string // the metrics listener
	spans   *tracetest.InMemoryExporter
	logs    *syncBuffer
}

// start runs a service until the test ends, with its own span exporter and
// a JSON log at debug level.
func start(t *testing.T, name string, run func(ctx context.Context, o daemon.Options) error) *service {
	t.Helper()
	s := &service{name: name, spans: tracetest.NewInMemoryExporter(), logs: &syncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan daemon.Addrs, 1)
	done := make(chan error, 1)
	o := daemon.Options{
		Logger:       logging.New(s.logs, slog.LevelDebug, name),
		Lookup:       config.FromMap(nil),
		SpanExporter: s.spans,
		Ready:        func(a daemon.Addrs) { ready <- a },
	}
	go func() { done <- run(ctx, o) }()
	select {
	case a := <-ready:
		s.url, s.metrics = "http://"+a.API.String(), "http://"+a.Metrics.String()
	case err := <-done:
		cancel()
		t.Fatalf("%s did not start: %v", name, err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("%s did not start within 60s", name)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s stopped with an error: %v", name, err)
		}
	})
	return s
}

// proxy stands between the BFF and a service: it records the headers of
// every request and can fail the ones a rule picks.
type proxy struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []http.Header
	rule func(r *http.Request) (status int, after bool) // status 0: forward
}

// Fault answers status to the requests matching method and path prefix:
// without forwarding them, or (after) once the service has handled them.
func (p *proxy) Fault(method, path string, status int, after bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = func(r *http.Request) (int, bool) {
		if r.Method == method && strings.HasPrefix(r.URL.Path, path) {
			return status, after
		}
		return 0, false
	}
}

// Pass forwards everything again.
func (p *proxy) Pass() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = nil
}

// Headers returns the headers of the requests seen so far.
func (p *proxy) Headers() []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]http.Header(nil), p.seen...)
}

type failAfterKey struct{}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	testenv.Must(t, err, "proxy target")
	p := &proxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if status, _ := resp.Request.Context().Value(failAfterKey{}).(int); status != 0 {
			return fmt.Errorf("injected %d after the service answered %d", status, resp.StatusCode)
		}
		return nil
	}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, _ error) {
		status, _ := r.Context().Value(failAfterKey{}).(int)
		if status == 0 {
			status = http.StatusBadGateway
		}
		w.WriteHeader(status)
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.Header.Clone())
		rule := p.rule
		p.mu.Unlock()
		if rule != nil {
			if status, after := rule(r); status != 0 && !after {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = io.WriteString(w, `{"detail": "injected fault", "code": "error"}`)
				return
			} else if status != 0 {
				r = r.WithContext(context.WithValue(r.Context(), failAfterKey{}, status))
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// stack is the three services, the BFF reaching the other two through
// proxies, with a Redis for the change feed and the BFF's cache.
type stack struct {
	t                    *testing.T
	auth, customer, bff  *service
	authProxy, custProxy *proxy
	redis                *embedded.Redis
}

func newStack(t *testing.T, bffEnv map[string]string) *stack {
	t.Helper()
	if testing.Short() {
		t.Skip("cross-service test with real servers: not in the fast tier (-short)")
	}
	s := &stack{t: t, redis: testenv.Redis(t)}
	authCfg, err := authd.LoadConfig(config.FromMap(map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		"MONGODB_URI": testenv.MongoURI(t), "AUTH_DB": testenv.DBName(t),
		"REDIS_URL":         s.redis.URL,
		"JWT_SIGNING_KEY":   signingKey,
		"ARGON2_MEMORY_KIB": "256", "ARGON2_ITERATIONS": "1",
		"AUTH_RATE_LIMITS":     "off",
		"AUTH_SERVICE_CLIENTS": serviceID + ":" + serviceSecret,
		"SHUTDOWN_TIMEOUT":     "2s",
	}))
	testenv.Must(t, err, "auth config")
	s.auth = start(t, "auth", func(ctx context.Context, o daemon.Options) error { return authd.Run(ctx, authCfg, o) })
	custCfg, err := customerd.LoadConfig(config.FromMap(map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		"MONGODB_URI": testenv.MongoURI(t), "CUSTOMER_DB": testenv.DBName(t),
		"REDIS_URL":       s.redis.URL,
		"JWT_SIGNING_KEY": signingKey, "AUTH_URL": s.auth.url, "SHUTDOWN_TIMEOUT": "2s",
	}))
	testenv.Must(t, err, "customer config")
	s.customer = start(t, "customer", func(ctx context.Context, o daemon.Options) error { return customerd.Run(ctx, custCfg, o) })
	s.authProxy, s.custProxy = newProxy(t, s.auth.url), newProxy(t, s.customer.url)
	env := map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		"MONGODB_URI": testenv.MongoURI(t), "BFF_DB": testenv.DBName(t),
		"REDIS_URL":       s.redis.URL,
		"JWT_SIGNING_KEY": signingKey,
		"AUTH_URL":        s.authProxy.srv.URL, "CUSTOMER_URL": s.custProxy.srv.URL,
		"BFF_SERVICE_CLIENT_ID": serviceID, "BFF_SERVICE_CLIENT_SECRET": serviceSecret,
		"AUTH_TIMEOUT": "3s", "CUSTOMER_TIMEOUT": "1s",
		"RECONCILE_INTERVAL": "150ms", "SHUTDOWN_TIMEOUT": "1s",
	}
	for k, v := range bffEnv {
		env[k] = v
	}
	bffCfg, err := bffd.LoadConfig(config.FromMap(env))
	testenv.Must(t, err, "bff config")
	s.bff = start(t, "bff", func(ctx context.Context, o daemon.Options) error { return bffd.Run(ctx, bffCfg, o) })
	return s
}

func (s *stack) services() []*service { return []*service{s.bff, s.auth, s.customer} }

// answer is an HTTP answer.
type answer struct {
	status int
	header http.Header
	raw    []byte
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.raw) }

func (a answer) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.raw, &m); err != nil {
		t.Fatalf("not a JSON object (%d): %q", a.status, a.raw)
	}
	return m
}

var client = &http.Client{Timeout: 30 * time.Second}

// call sends a request with a JSON body (unless nil) and headers.
func call(t *testing.T, method, u string, body any, header map[string]string) answer {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		testenv.Must(t, err, "encode")
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, u, r)
	testenv.Must(t, err, "request")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	testenv.Must(t, err, "%s %s", method, u)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	testenv.Must(t, err, "read")
	return answer{status: resp.StatusCode, header: resp.Header, raw: raw}
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// person is what one registration sends.
type person struct {
	email, password, taxID, phone string
}

func newPerson(tag string) person {
	return person{
		email:    fmt.Sprintf("%s.%d@e2e-example.com", tag, time.Now().UnixNano()),
		password: "Zebra-Quartz-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36),
		taxID:    fmt.Sprintf("TAX-%d", time.Now().UnixNano()%1e9),
		phone:    "+15035550142",
	}
}

func (p person) registration() map[string]any {
	return map[string]any{
		"email": p.email, "first_name": "Grace", "last_name": "Hopper", "phone_number": p.phone,
		"password1": p.password, "password2": p.password,
		"street_address": "1 Compiler Way", "city": "Arlington", "state": "VA", "postal_code": "22201",
		"tax_id": p.taxID,
	}
}

// tokens of a successful BFF register or login answer.
type tokens struct{ access, refresh string }

func sessionOf(t *testing.T, a answer) tokens {
	t.Helper()
	m := a.obj(t)
	tk, _ := m["tokens"].(map[string]any)
	access, _ := tk["access"].(string)
	refresh, _ := tk["refresh"].(string)
	if access == "" || refresh == "" {
		t.Fatalf("no tokens in %s", a)
	}
	return tokens{access, refresh}
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// span is an exported span and the service that emitted it.
type span struct {
	svc string
	tracetest.SpanStub
}

func (sp span) id() trace.SpanID       { return sp.SpanContext.SpanID() }
func (sp span) traceID() trace.TraceID { return sp.SpanContext.TraceID() }

func (sp span) attr(k attribute.Key) string {
	for _, kv := range sp.Attributes {
		if kv.Key == k {
			return kv.Value.String()
		}
	}
	return ""
}

func (sp span) String() string {
	return fmt.Sprintf("%s:%q(%s<-%s)", sp.svc, sp.Name, sp.id(), sp.Parent.SpanID())
}

// spans returns every span the three services exported so far.
func (s *stack) spans() []span {
	var out []span
	for _, svc := range s.services() {
		for _, st := range svc.spans.GetSpans() {
			out = append(out, span{svc: svc.name, SpanStub: st})
		}
	}
	return out
}

// find returns the spans matching pred.
func find(all []span, pred func(span) bool) []span {
	var out []span
	for _, sp := range all {
		if pred(sp) {
			out = append(out, sp)
		}
	}
	return out
}

func named(svc, name string) func(span) bool {
	return func(sp span) bool { return sp.svc == svc && sp.Name == name }
}

// one returns the only span matching pred.
func one(t *testing.T, all []span, what string, pred func(span) bool) span {
	t.Helper()
	got := find(all, pred)
	if len(got) != 1 {
		t.Fatalf("%d spans %s, want 1: %v", len(got), what, got)
	}
	return got[0]
}

// childrenOf returns the spans whose parent is p.
func childrenOf(all []span, p span) []span {
	return find(all, func(sp span) bool { return sp.Parent.SpanID() == p.id() && sp.traceID() == p.traceID() })
}

// under reports whether sp descends from p.
func under(all []span, sp, p span) bool {
	byID := map[trace.SpanID]span{}
	for _, x := range all {
		byID[x.id()] = x
	}
	for i := 0; i < 64; i++ {
		if sp.Parent.SpanID() == p.id() {
			return true
		}
		next, ok := byID[sp.Parent.SpanID()]
		if !ok {
			return false
		}
		sp = next
	}
	return false
}

func isDB(system string) func(span) bool {
	return func(sp span) bool { return sp.attr("db.system") == system || sp.attr("db.system.name") == system }
}

// metrics scrapes a service's /metrics.
func (svc *service) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(svc.metrics + "/metrics")
	testenv.Must(t, err, "scrape %s", svc.name)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	testenv.Must(t, err, "read %s metrics", svc.name)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s /metrics: %d", svc.name, resp.StatusCode)
	}
	return string(body)
}

// sample is the value of the one sample of name carrying every label in
// labels, 0 if there is none.
func sample(t *testing.T, text, name string, labels ...string) float64 {
	t.Helper()
	var found []string
	var v float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		found = append(found, line)
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		testenv.Must(t, err, "sample %q", line)
		v = f
	}
	if len(found) > 1 {
		t.Fatalf("%s %v matches %d samples:\n%s", name, labels, len(found), strings.Join(found, "\n"))
	}
	return v
}

// logLines parses a service's JSON log.
func (svc *service) logLines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(svc.logs.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%s wrote a line that is not JSON: %q", svc.name, l)
		}
		out = append(out, m)
	}
	return out
}
