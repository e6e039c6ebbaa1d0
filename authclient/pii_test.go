package authclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestNoEmailInTelemetry drives the lookup by email (GET
// /api/auth/users/?email=, Django's contract, still served) and the
// listing with tracing on at both ends, with Redis and rate limits on at
// the auth service, and scans everything exported for the email: the
// client's spans and metrics, the auth service's spans, its logs and its
// /metrics.
func TestNoEmailInTelemetry(t *testing.T) {
	t.Parallel()
	const local = "pii.lookup+x"
	email := local + "@example.org"
	sys := systest.Start(t, systest.Options{Services: []string{"auth"}, Spans: true, Redis: true,
		Env: map[string]string{"AUTH_RATE_LIMITS": "", "AUTH_BOOTSTRAP_ADMIN_EMAIL": adminEmail, "AUTH_BOOTSTRAP_ADMIN_PASSWORD": adminPass}})
	in := sys.Service("auth")
	if in.Spans == nil {
		t.Skip("the auth service runs as a process: no span exporter")
	}
	spans := tracetest.NewInMemoryExporter()
	reader := sdkmetric.NewManualReader()
	cl := authclient.New(authclient.Options{BaseURL: in.URL, Timeout: 5 * time.Second,
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans)),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	ctx := context.Background()

	reg := of(cl.Register(ctx, authclient.RegisterRequest{Email: email, FirstName: "Pia", LastName: "Lu", PhoneNumber: "555 0100", Password1: userPass, Password2: userPass})).must(t)
	of(cl.Login(ctx, email, userPass)).must(t)
	if _, err := cl.Login(ctx, email, "Wrong-password-42"); err == nil {
		t.Fatal("a wrong password logged in")
	}
	svc := of(cl.ServiceToken(ctx, systest.BFFClientID, systest.BFFClientSecret)).must(t).Access
	u := of(cl.FindUserByEmail(ctx, svc, strings.ToUpper(email))).must(t)
	if u == nil || u.ID != reg.User.ID {
		t.Fatalf("lookup by email found %+v, want %s", u, reg.User.ID)
	}
	if u, err := cl.FindUserByEmail(ctx, svc, "nobody."+email); !errors.Is(err, authclient.ErrNotFound) || u != nil {
		t.Fatalf("lookup of an unknown email: %+v, %v", u, err)
	}
	of(cl.ListUsers(ctx, svc, authclient.ListUsersRequest{PageSize: 1})).must(t)

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	exported := map[string]string{
		"client spans":   fmt.Sprintf("%+v", spans.GetSpans()),
		"client metrics": fmt.Sprintf("%+v", rm),
		"auth spans":     fmt.Sprintf("%+v", in.Spans.GetSpans()),
		"auth logs":      in.Logs.String(),
		"auth /metrics":  string(testenv.Call(t, nil, http.MethodGet, in.MetricsURL+"/metrics", nil, nil).Body),
	}
	if len(spans.GetSpans()) == 0 || len(in.Spans.GetSpans()) == 0 {
		t.Fatal("no spans exported: the scan would prove nothing")
	}
	for what, text := range exported {
		for _, s := range []string{local, url.QueryEscape(local), strings.ToUpper(local), "example.org", "EXAMPLE.ORG"} {
			if strings.Contains(text, s) {
				i := strings.Index(text, s)
				t.Errorf("%s carry %q: ...%s...", what, s, text[max(0, i-300):min(len(text), i+100)])
			}
		}
	}
}
