package bffd

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	if _, err := LoadConfig(config.FromMap(nil)); err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY") {
		t.Fatalf("without a signing key: %v", err)
	}
	cfg, err := LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k", "BFF_SERVICE_CLIENT_SECRET": "s3cr3t-value"}))
	if err == nil || !strings.Contains(err.Error(), "BFF_SERVICE_CLIENT_ID") {
		t.Fatalf("secret without id: %v", err)
	}
	cfg, err = LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k"}))
	if err != nil || cfg.HTTPAddr != ":8000" || cfg.MetricsAddr != ":9100" || cfg.DB != "bff" ||
		cfg.AuthURL != "http://127.0.0.1:8001" || cfg.CustomerURL != "http://127.0.0.1:8002" || cfg.CacheTTL.String() != "1m0s" ||
		cfg.RedisTimeout.String() != "50ms" || cfg.ReconcileInterval.String() != "5s" || cfg.hasServiceClient() {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	if _, err := LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k", "CUSTOMER_TIMEOUT": "soon"})); err == nil {
		t.Fatal("a bad duration was accepted")
	}
}

// The registration has a parent span with a child per step, outcomes are
// counted, and the breakers show in /readyz.
func TestRegistrationTelemetry(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{})
	spans := tracetest.NewInMemoryExporter()
	cfg, err := LoadConfig(config.FromMap(map[string]string{
		"HTTP_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		"MONGODB_URI": testenv.MongoURI(t), "BFF_DB": s.bffDB.Name(), "JWT_SIGNING_KEY": testKey,
		"AUTH_URL": s.auth.url, "CUSTOMER_URL": s.customer.url,
		"BFF_SERVICE_CLIENT_ID": serviceID, "BFF_SERVICE_CLIENT_SECRET": serviceSecret,
	}))
	testenv.Must(t, err, "config")
	ready := make(chan daemon.Addrs, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, daemon.Options{Logger: testLogger(), SpanExporter: spans, Lookup: config.FromMap(nil),
			Ready: func(a daemon.Addrs) { ready <- a }})
	}()
	addrs := <-ready
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + addrs.API.String()
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

	resp, err := http.Get("http://" + addrs.Metrics.String() + "/metrics")
	testenv.Must(t, err, "metrics")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	outcomes := grepLines(string(body), "bff_saga_outcomes_total{")
	if !strings.Contains(outcomes, `outcome="completed"`) || !strings.Contains(outcomes, `saga_kind="register"`) {
		t.Errorf("no completed registration counted:\n%s", outcomes)
	}
	for _, m := range []string{"bff_reconciler_backlog", "bff_breaker_state"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("metrics lack %s:\n%s", m, grepLines(string(body), "bff_"))
		}
	}
	rz := call(t, http.MethodGet, base+"/readyz", nil, nil)
	details, _ := rz.obj(t)["details"].(map[string]any)
	breakers, _ := details["breakers"].(map[string]any)
	if rz.status != 200 || breakers["auth"] != "closed" || breakers["customer"] != "closed" || details["service_client"] != true {
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
