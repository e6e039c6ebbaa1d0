package e2e

import (
	"bufio"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/internal/faultproxy"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

func TestMain(m *testing.M) { os.Exit(systest.Main(m)) }

const (
	registerPath = "/api/auth/register/"
	createPath   = "/api/v1/customers/profile/create/"
)

// stack is the three services, each with its span exporter and a JSON log
// at debug level, the BFF reaching the other two through proxies that
// record every request's header, with a Redis for the change feed and the
// BFF's cache.
type stack struct {
	*systest.System
	auth, customer, bff  *systest.Instance
	authProxy, custProxy *faultproxy.Proxy
}

func newStack(t *testing.T, bffEnv map[string]string) *stack {
	t.Helper()
	if testing.Short() {
		t.Skip("cross-service test with real servers: not in the fast tier (-short)")
	}
	sys := systest.Start(t, systest.Options{
		Redis:      true,
		Spans:      true,
		LogLevel:   slog.LevelDebug,
		Proxies:    []systest.Link{{From: "bff", To: "auth", Record: true}, {From: "bff", To: "customer", Record: true}},
		ServiceEnv: map[string]map[string]string{"bff": bffEnv},
	})
	return &stack{System: sys, auth: sys.Service("auth"), customer: sys.Service("customer"), bff: sys.Service("bff"),
		authProxy: sys.Proxy("bff", "auth"), custProxy: sys.Proxy("bff", "customer")}
}

func (s *stack) services() []*systest.Instance { return []*systest.Instance{s.bff, s.auth, s.customer} }

// fault makes the proxy answer status to the requests matching method and
// path prefix: without forwarding them, or (after) once the service has
// handled them.
func fault(p *faultproxy.Proxy, method, path string, status int, after bool) {
	action := faultproxy.Fail
	if after {
		action = faultproxy.FailAfter
	}
	p.SetRules(faultproxy.Rule{Method: method, Path: path, Action: action, Status: status})
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

func sessionOf(t *testing.T, a testenv.Answer) tokens {
	t.Helper()
	m := a.Map(t)
	tk, _ := m["tokens"].(map[string]any)
	access, _ := tk["access"].(string)
	refresh, _ := tk["refresh"].(string)
	if access == "" || refresh == "" {
		t.Fatalf("no tokens in %s", a)
	}
	return tokens{access, refresh}
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
		for _, st := range svc.Spans.GetSpans() {
			out = append(out, span{svc: svc.Name, SpanStub: st})
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

// scrape returns a service's /metrics.
func scrape(t *testing.T, svc *systest.Instance) string {
	t.Helper()
	a := testenv.Call(t, nil, http.MethodGet, svc.MetricsURL+"/metrics", nil, nil)
	if a.Status != http.StatusOK {
		t.Fatalf("%s /metrics: %d", svc.Name, a.Status)
	}
	return string(a.Body)
}

// samples are the lines of the samples of name carrying every label in
// labels, and their values.
func samples(t *testing.T, text, name string, labels ...string) (lines []string, values []float64) {
	t.Helper()
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
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		testenv.Must(t, err, "sample %q", line)
		lines, values = append(lines, line), append(values, f)
	}
	return lines, values
}

// sample is the value of the one sample of name carrying every label in
// labels, 0 if there is none.
func sample(t *testing.T, text, name string, labels ...string) float64 {
	t.Helper()
	found, values := samples(t, text, name, labels...)
	if len(found) > 1 {
		t.Fatalf("%s %v matches %d samples:\n%s", name, labels, len(found), strings.Join(found, "\n"))
	}
	if len(values) == 0 {
		return 0
	}
	return values[0]
}
