package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/internal/faultproxy"
	"github.com/acme/customer-platform/internal/testenv"
)

// One registration through the BFF is one trace across the three services:
// the BFF's server span, the saga span with a child per step, the client
// spans of the auth and customer calls under them, the services' server
// spans under those (W3C traceparent and baggage on the wire), and the
// MongoDB and Redis spans under the servers.
func TestRegistrationIsOneTrace(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	p := newPerson("trace")
	sent := time.Now()
	a := testenv.Call(t, nil, http.MethodPost, s.bff.URL+"/api/bff/register/", p.registration(), map[string]string{"baggage": "tenant=acme"})
	if a.Status != http.StatusCreated {
		t.Fatalf("register: %s", a)
	}
	var all []span
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the BFF's server span of the registration is exported", func() bool {
		all = s.spans()
		return len(find(all, named("bff", "POST /api/bff/register/"))) == 1
	}))
	root := one(t, all, "of the BFF's request", named("bff", "POST /api/bff/register/"))
	if root.Parent.IsValid() {
		t.Errorf("the BFF's server span has a parent: %v", root.Parent)
	}
	tid := root.traceID()

	// Every server span of the three services, and everything under them,
	// is in the registration's trace: nothing else called them.
	servers := find(all, func(sp span) bool { return sp.SpanKind == trace.SpanKindServer })
	seen := map[string]bool{}
	for _, sp := range servers {
		seen[sp.svc] = true
		if sp.traceID() != tid {
			t.Errorf("server span %v is in trace %s, not the registration's %s", sp, sp.traceID(), tid)
		}
		if got := sp.Resource.Set(); got.Len() == 0 {
			t.Errorf("span %v has no resource", sp)
		}
		if name, _ := sp.Resource.Set().Value("service.name"); name.AsString() != sp.svc {
			t.Errorf("span %v has service.name %q", sp, name.AsString())
		}
	}
	if len(seen) != 3 {
		t.Fatalf("server spans of %v only: %v", seen, servers)
	}
	// Everything the auth and customer services did since is in it too
	// (the BFF also runs background work of its own: its reconciler).
	for _, sp := range find(all, func(sp span) bool { return sp.svc != "bff" && !sp.StartTime.Before(sent) }) {
		if sp.traceID() != tid {
			t.Errorf("%v is in trace %s, not the registration's", sp, sp.traceID())
		}
	}

	saga := one(t, all, "bff.register", named("bff", "bff.register"))
	if !under(all, saga, root) {
		t.Errorf("the saga span %v is not under the request %v", saga, root)
	}
	steps := map[string]span{}
	for _, c := range childrenOf(all, saga) {
		steps[c.Name] = c
	}
	for _, step := range []string{"bff.register.auth_register", "bff.register.profile_create"} {
		if _, ok := steps[step]; !ok {
			t.Fatalf("the saga has no %s child: %v", step, childrenOf(all, saga))
		}
	}

	// step -> client span -> the service's server span -> its database spans.
	for _, c := range []struct {
		step, client, server, svc string
	}{
		{"bff.register.auth_register", "auth POST", "POST /api/auth/register/", "auth"},
		{"bff.register.profile_create", "customer POST", "POST /api/v1/customers/profile/create/", "customer"},
	} {
		cl := one(t, childrenOf(all, steps[c.step]), "client span of "+c.step, func(sp span) bool { return sp.Name == c.client })
		if cl.SpanKind != trace.SpanKindClient {
			t.Errorf("%v is not a client span", cl)
		}
		srv := one(t, all, "server span "+c.server, named(c.svc, c.server))
		if srv.Parent.SpanID() != cl.id() || !srv.Parent.IsRemote() || srv.traceID() != tid {
			t.Errorf("%s's server span %v does not continue the client span %v", c.svc, srv, cl)
		}
		if len(find(all, func(sp span) bool { return isDB("mongodb")(sp) && under(all, sp, srv) })) == 0 {
			t.Errorf("no MongoDB span under %v", srv)
		}
	}
	// The customer service records the new profile's event in its outbox,
	// and its relay adds it to the change stream in the same trace: the
	// relay's span and its Redis call are under the request (shortly after).
	custSrv := one(t, all, "customer server span", named("customer", "POST /api/v1/customers/profile/create/"))
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the relay's Redis call under the customer request", func() bool {
		all = s.spans()
		return len(find(all, func(sp span) bool { return isDB("redis")(sp) && under(all, sp, custSrv) })) > 0 &&
			len(find(all, func(sp span) bool { return sp.Name == "send customer.changed" && under(all, sp, custSrv) })) == 1
	}))
	// The BFF hears of the new profile on the change stream, in the same
	// trace: its handling of the event is a consumer span under the relay's
	// (so under the customer service's request), and the cache invalidation
	// is under it.
	var process span
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the BFF's handling of the customer.changed message is exported", func() bool {
		all = s.spans()
		ps := find(all, named("bff", "process customer.changed"))
		if len(ps) == 1 {
			process = ps[0]
		}
		return len(ps) == 1
	}))
	if process.SpanKind != trace.SpanKindConsumer || process.traceID() != tid || !under(all, process, custSrv) {
		t.Errorf("the BFF's message span %v is not a consumer span under the customer service's request %v", process, custSrv)
	}
	if len(find(all, func(sp span) bool { return sp.Name == "cache.invalidate" && under(all, sp, process) })) != 1 {
		t.Errorf("no cache invalidation under %v", process)
	}
	// The BFF records the saga in its own database, under the saga span.
	if len(find(all, func(sp span) bool { return sp.svc == "bff" && isDB("mongodb")(sp) && under(all, sp, saga) })) == 0 {
		t.Error("no MongoDB span under the saga")
	}
	// The auth service's password hash is a span of the register request.
	authSrv := one(t, all, "auth server span", named("auth", "POST /api/auth/register/"))
	if len(find(all, func(sp span) bool { return sp.Name == "auth.password.hash" && under(all, sp, authSrv) })) != 1 {
		t.Error("no password hash span under the auth service's register")
	}

	// On the wire: W3C traceparent of the registration's trace, and the
	// caller's baggage, on both outbound calls.
	for name, p := range map[string]*faultproxy.Proxy{"auth": s.authProxy, "customer": s.custProxy} {
		hs := p.Headers()
		if len(hs) == 0 {
			t.Fatalf("no call reached %s", name)
		}
		for _, h := range hs {
			tp := h.Get("traceparent")
			if !strings.HasPrefix(tp, "00-"+tid.String()+"-") || !strings.HasSuffix(tp, "-01") {
				t.Errorf("call to %s carries traceparent %q, want the trace %s, sampled", name, tp, tid)
			}
			if h.Get("baggage") != "tenant=acme" {
				t.Errorf("call to %s carries baggage %q", name, h.Get("baggage"))
			}
		}
	}
}

// A caller's traceparent is honoured: the BFF's server span continues it.
func TestIncomingTraceparentHonoured(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	const (
		tid    = "4bf92f3577b34da6a3ce929d0e0e4736"
		parent = "00f067aa0ba902b7"
	)
	p := newPerson("parent")
	if a := testenv.Call(t, nil, http.MethodPost, s.bff.URL+"/api/bff/register/", p.registration(),
		map[string]string{"traceparent": "00-" + tid + "-" + parent + "-01"}); a.Status != http.StatusCreated {
		t.Fatalf("register: %s", a)
	}
	var all []span
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the BFF's server span is exported", func() bool {
		all = s.spans()
		return len(find(all, named("bff", "POST /api/bff/register/"))) == 1
	}))
	root := one(t, all, "of the request", named("bff", "POST /api/bff/register/"))
	if root.traceID().String() != tid || root.Parent.SpanID().String() != parent || !root.Parent.IsRemote() {
		t.Fatalf("server span %v in trace %s does not continue the caller's %s/%s", root, root.traceID(), tid, parent)
	}
	for _, sp := range find(all, func(sp span) bool { return sp.SpanKind == trace.SpanKindServer }) {
		if sp.traceID().String() != tid {
			t.Errorf("%v left the caller's trace", sp)
		}
	}
}

// A registration whose profile cannot be created shows the compensation
// in its trace; the reconciler's verification afterwards is a trace of its
// own, linked to the registration's.
func TestFailedRegistrationTrace(t *testing.T) {
	t.Parallel()
	s := newStack(t, nil)
	// The customer service fails the create: the BFF cannot know whether
	// it was made, so it checks, deletes the user, and leaves the last
	// check to the reconciler.
	fault(s.custProxy, http.MethodPost, createPath, http.StatusInternalServerError, false)
	p := newPerson("failed")
	a := testenv.Call(t, nil, http.MethodPost, s.bff.URL+"/api/bff/register/", p.registration(), nil)
	if a.Status < 500 || a.Map(t)["compensated"] != true {
		t.Fatalf("register: %s", a)
	}
	_ = s.custProxy.Pass()

	var all []span
	testenv.Eventually(t, 15*time.Second, testenv.Holds("the reconciler verifies the compensation", func() bool {
		all = s.spans()
		return len(find(all, named("bff", "bff.reconcile.register"))) > 0
	}))
	saga := one(t, all, "bff.register", named("bff", "bff.register"))
	tid := saga.traceID()
	steps := map[string]int{}
	for _, c := range childrenOf(all, saga) {
		steps[c.Name]++
	}
	if steps["bff.register.auth_register"] != 1 || steps["bff.register.profile_create"] != 2 || steps["bff.register.compensate"] != 1 {
		t.Fatalf("saga steps %v: want the register, two create attempts and the compensation", steps)
	}
	comp := one(t, all, "compensation", named("bff", "bff.register.compensate"))
	if comp.Status.Code.String() != "Error" {
		t.Errorf("the compensation span's status is %v", comp.Status)
	}
	del := one(t, all, "user deletion", func(sp span) bool { return sp.Name == "bff.saga.delete_user" && sp.traceID() == tid })
	if !under(all, del, comp) {
		t.Errorf("the user deletion %v is not under the compensation %v", del, comp)
	}
	authDel := find(all, func(sp span) bool { return sp.svc == "auth" && strings.HasPrefix(sp.Name, "DELETE ") })
	if len(authDel) == 0 || !under(all, authDel[0], del) {
		t.Errorf("the auth service's DELETE %v is not under %v", authDel, del)
	}

	rec := find(all, named("bff", "bff.reconcile.register"))[0]
	if rec.traceID() == tid || rec.Parent.IsValid() {
		t.Errorf("the reconciler's span %v is not the root of its own trace", rec)
	}
	if len(rec.Links) != 1 || rec.Links[0].SpanContext.TraceID() != tid || rec.Links[0].SpanContext.SpanID() != saga.id() {
		t.Errorf("the reconciler's span links %v, want the registration's saga span %s/%s", rec.Links, tid, saga.id())
	}
	if len(find(all, func(sp span) bool { return sp.Name == "bff.saga.check_profile" && under(all, sp, rec) })) == 0 {
		t.Error("the reconciler's profile check is not in its trace")
	}
}
