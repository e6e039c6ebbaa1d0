package bffd_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// The registration has a parent span with a child per step, outcomes are
// counted, and the breakers show in /readyz.
func TestRegistrationTelemetry(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	// A BFF calling the services directly, with the default timeouts and
	// reconciler interval, and its spans exported.
	b := s.sys.AddReplica("bff", systest.ReplicaOptions{Spans: true, Env: map[string]string{
		"AUTH_URL": s.auth.URL, "CUSTOMER_URL": s.customer.URL,
		"AUTH_TIMEOUT": "", "CUSTOMER_TIMEOUT": "", "RECONCILE_INTERVAL": "", "SAGA_LEASE_TTL": "", "SHUTDOWN_TIMEOUT": "",
	}})
	spans := b.Spans
	base := b.URL
	registered(t, call(t, http.MethodPost, base+"/api/bff/register/", registration("spans@example.com"), nil), "spans@example.com")

	var parent string
	children := map[string]bool{}
	for _, sp := range spans.GetSpans() {
		if sp.Name == "bff.register" {
			parent = sp.SpanContext.SpanID().String()
		}
	}
	for _, sp := range spans.GetSpans() {
		if sp.Parent.SpanID().String() == parent {
			children[sp.Name] = true
		}
	}
	if parent == "" || !children["bff.register.auth_register"] || !children["bff.register.profile_create"] {
		t.Fatalf("parent %q, children %v", parent, children)
	}

	body := testenv.Call(t, nil, http.MethodGet, b.MetricsURL+"/metrics", nil, nil).Body
	outcomes := grepLines(string(body), "bff_saga_outcomes_total{")
	if !strings.Contains(outcomes, `outcome="completed"`) || !strings.Contains(outcomes, `saga_kind="register"`) {
		t.Errorf("no completed registration counted:\n%s", outcomes)
	}
	for _, m := range []string{"bff_reconciler_backlog", "bff_reconciler_passes_total", "bff_breaker_state"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("metrics lack %s:\n%s", m, grepLines(string(body), "bff_"))
		}
	}
	rz := call(t, http.MethodGet, base+"/readyz", nil, nil)
	details, _ := rz.Map(t)["details"].(map[string]any)
	breakers, _ := details["breakers"].(map[string]any)
	if rz.Status != 200 || breakers["auth"] != "closed" || breakers["customer"] != "closed" || details["service_client"] != true {
		t.Fatalf("readyz: %s", rz)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
