package telemetry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/acme/customer-platform/internal/config"
)

func setup(t *testing.T, env map[string]string) (*Telemetry, *tracetest.InMemoryExporter) {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tel, err := Setup(context.Background(), Options{Service: "svc", Version: "1.2.3", Environment: "test",
		SpanExporter: spans, Lookup: config.FromMap(env)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel, spans
}

func remoteParent(sampled bool) context.Context {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	var flags trace.TraceFlags
	if sampled {
		flags = trace.FlagsSampled
	}
	return trace.ContextWithRemoteSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true}))
}

func TestSampler(t *testing.T) {
	t.Parallel()
	type sampled struct{ root, underSampled, underUnsampled bool }
	cases := []struct {
		env  map[string]string
		want sampled
	}{
		{nil, sampled{true, true, false}}, // parent-based by default
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, sampled{true, true, false}},
		{map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}, sampled{true, true, true}},
		{map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, sampled{false, false, false}},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, sampled{false, true, false}},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, sampled{false, false, false}},
		{map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, sampled{false, true, false}},
		{map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio"}, sampled{true, true, true}}, // the ratio defaults to 1
	}
	for _, tc := range cases {
		tel, _ := setup(t, tc.env)
		tr := tel.Tracer.Tracer("test")
		var got sampled
		for _, c := range []struct {
			ctx context.Context
			out *bool
		}{{context.Background(), &got.root}, {remoteParent(true), &got.underSampled}, {remoteParent(false), &got.underUnsampled}} {
			_, span := tr.Start(c.ctx, "op")
			*c.out = span.SpanContext().IsSampled()
			span.End()
		}
		if got != tc.want {
			t.Errorf("%v: sampled %+v, want %+v", tc.env, got, tc.want)
		}
	}
	for _, env := range []map[string]string{
		{"OTEL_TRACES_SAMPLER": "jaeger_remote"},
		{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"},
		{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"},
	} {
		if _, err := Setup(context.Background(), Options{Service: "svc", Lookup: config.FromMap(env)}); err == nil ||
			!strings.Contains(err.Error(), "OTEL_TRACES_SAMPLER") {
			t.Errorf("%v: error %v", env, err)
		}
	}
}

func TestExportConfigured(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env             map[string]string
		traces, metrics bool
	}{
		{nil, false, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_METRICS_EXPORTER": "none"}, true, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_METRICS_EXPORTER": "prometheus"}, true, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, false, false},
	}
	for _, tc := range cases {
		l := config.FromMap(tc.env)
		if got := exportConfigured(l, "TRACES"); got != tc.traces {
			t.Errorf("%v: traces %v", tc.env, got)
		}
		if got := exportConfigured(l, "METRICS"); got != tc.metrics {
			t.Errorf("%v: metrics %v", tc.env, got)
		}
	}
}

func TestResource(t *testing.T) {
	t.Parallel()
	tel, spans := setup(t, nil)
	_, span := tel.Tracer.Tracer("test").Start(context.Background(), "op")
	span.End()
	got := map[attribute.Key]string{}
	for _, kv := range spans.GetSpans()[0].Resource.Attributes() {
		got[kv.Key] = kv.Value.String()
	}
	for k, want := range map[attribute.Key]string{"service.name": "svc", "service.version": "1.2.3",
		"deployment.environment": "test", "deployment.environment.name": "test"} {
		if got[k] != want {
			t.Errorf("resource %s = %q, want %q (all: %v)", k, got[k], want, got)
		}
	}
}

func TestRedactQuery(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                     "",
		"email=a%40b.com":      "email=REDACTED",
		"email=a@b.com&page=2": "email=REDACTED&page=REDACTED",
		"a@b.com":              "REDACTED",
		"flag&x=1":             "REDACTED&x=REDACTED",
		"a%40b.com=1&x=2":      "REDACTED&x=REDACTED",
		"%zz=1":                "REDACTED",
	} {
		if got := RedactQuery(in); got != want {
			t.Errorf("RedactQuery(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"http://auth:8001/api/auth/users/":                   "http://auth:8001/api/auth/users/",
		"http://auth:8001/api/auth/users/?email=a%40b.com":   "http://auth:8001/api/auth/users/?email=REDACTED",
		"http://user:pw@auth:8001/x?token=abc#frag":          "http://auth:8001/x?token=REDACTED",
		"http://auth:8001/api/auth/users/?email=a@b.com&x=1": "http://auth:8001/api/auth/users/?email=REDACTED&x=REDACTED",
		"::not a url?email=a@b.com":                          Redacted,
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
	if got := redactTarget("/api/auth/users/?email=a@b.com"); got != "/api/auth/users/?email=REDACTED" {
		t.Errorf("redactTarget: %q", got)
	}
}

// An outbound call whose query carries an email leaves no email in its span.
func TestClientSpanQueryRedacted(t *testing.T) {
	t.Parallel()
	tel, spans := setup(t, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	client := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tel.Tracer))}
	resp, err := client.Get(srv.URL + "/api/auth/users/?email=someone%40example.com")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := spans.GetSpans()
	if len(got) != 1 {
		t.Fatalf("%d spans", len(got))
	}
	var full string
	for _, kv := range got[0].Attributes {
		if strings.Contains(strings.ToLower(kv.Value.String()), "example.com") {
			t.Errorf("attribute %s carries the email: %q", kv.Key, kv.Value.String())
		}
		if kv.Key == "url.full" {
			full = kv.Value.AsString()
		}
	}
	if full != srv.URL+"/api/auth/users/?email=REDACTED" {
		t.Errorf("url.full = %q", full)
	}
}

func TestPrometheusMetrics(t *testing.T) {
	t.Parallel()
	tel, _ := setup(t, nil)
	c, err := tel.Meter.Meter("test").Int64Counter("things.done")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3, metric.WithAttributes(attribute.String("kind", "x")))
	rec := httptest.NewRecorder()
	tel.Metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{`things_done_total{kind="x"`, `target_info{`, `service_name="svc"`, "go_goroutines", "process_"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// collector is an OTLP/HTTP receiver.
type collector struct {
	mu    sync.Mutex
	paths []string
	spans []string // "service.name/span name"
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paths = append(c.paths, r.URL.Path)
	if r.URL.Path == "/v1/traces" {
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err == nil {
			for _, rs := range req.ResourceSpans {
				svc := ""
				for _, kv := range rs.Resource.Attributes {
					if kv.Key == "service.name" {
						svc = kv.Value.GetStringValue()
					}
				}
				for _, ss := range rs.ScopeSpans {
					for _, s := range ss.Spans {
						c.spans = append(c.spans, svc+"/"+s.Name)
					}
				}
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, spans and metrics go to the
// collector over OTLP/HTTP, named after the service. (The exporters read the process environment:
// this test cannot run in parallel.)
func TestOTLPExport(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	// The service's own name wins over OTEL_SERVICE_NAME (cmd/stack runs
	// three services in one environment).
	t.Setenv("OTEL_SERVICE_NAME", "not-this-one")
	tel, err := Setup(context.Background(), Options{Service: "exported", Version: "1", Environment: "test"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.Tracer.Tracer("test").Start(context.Background(), "exported-op")
	span.End()
	c, _ := tel.Meter.Meter("test").Int64Counter("exported.count")
	c.Add(context.Background(), 1)
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if strings.Join(col.spans, ",") != "exported/exported-op" {
		t.Errorf("spans received: %v (requests %v)", col.spans, col.paths)
	}
	if !strings.Contains(strings.Join(col.paths, ","), "/v1/metrics") {
		t.Errorf("no metrics exported: requests %v", col.paths)
	}
}

// A URL quoted by an error (as *url.Error does) is redacted in the event
// and the status too; other spans pass untouched.
func TestErrorTextRedacted(t *testing.T) {
	t.Parallel()
	tel, spans := setup(t, nil)
	tr := tel.Tracer.Tracer("test")
	_, span := tr.Start(context.Background(), "failing")
	err := &url.Error{Op: "Get", URL: "http://auth:8001/api/auth/users/?email=someone%40example.com", Err: io.ErrUnexpectedEOF}
	span.AddEvent("first", trace.WithAttributes(attribute.Int("n", 1)))
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(attribute.String("note", "see "+err.URL+" and retry"))
	span.End()
	_, plain := tr.Start(context.Background(), "plain", trace.WithAttributes(attribute.String("k", "v")))
	plain.End()
	got := spans.GetSpans()
	if len(got) != 2 {
		t.Fatalf("%d spans", len(got))
	}
	s := got[0]
	var texts []string
	for _, kv := range s.Attributes {
		texts = append(texts, kv.Value.String())
	}
	for _, ev := range s.Events {
		for _, kv := range ev.Attributes {
			texts = append(texts, kv.Value.String())
		}
	}
	texts = append(texts, s.Status.Description)
	all := strings.Join(texts, "\n")
	if strings.Contains(all, "example.com") {
		t.Errorf("the email survived:\n%s", all)
	}
	for _, want := range []string{"email=REDACTED", "unexpected EOF", "see http://auth:8001/api/auth/users/?email=REDACTED and retry"} {
		if !strings.Contains(all, want) {
			t.Errorf("lost %q:\n%s", want, all)
		}
	}
	if len(s.Events) != 2 || s.Events[0].Name != "first" || s.Events[0].Attributes[0].Value.AsInt64() != 1 {
		t.Errorf("events changed: %+v", s.Events)
	}
	if p := got[1]; p.Name != "plain" || len(p.Attributes) != 1 || p.Attributes[0].Value.AsString() != "v" {
		t.Errorf("plain span: %+v", p.Attributes)
	}
}

// Database spans outside any trace (background housekeeping) are dropped;
// under a request, and every other root, they are kept.
func TestQuietRoots(t *testing.T) {
	t.Parallel()
	tel, spans := setup(t, nil)
	tr := tel.Tracer.Tracer("test")
	db := trace.WithAttributes(attribute.String("db.system", "mongodb"))
	dbNew := trace.WithAttributes(attribute.String("db.system.name", "redis"))
	client := trace.WithSpanKind(trace.SpanKindClient)
	_, orphan := tr.Start(context.Background(), "sagas.find", client, db)
	orphan.End()
	_, dial := tr.Start(context.Background(), "redis.dial", client, dbNew)
	dial.End()
	ctx, req := tr.Start(context.Background(), "POST /x", trace.WithSpanKind(trace.SpanKindServer))
	_, child := tr.Start(ctx, "users.insert", client, db)
	child.End()
	req.End()
	_, http := tr.Start(context.Background(), "auth GET", client)
	http.End()
	var names []string
	for _, s := range spans.GetSpans() {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "users.insert,POST /x,auth GET" {
		t.Errorf("exported %v", names)
	}
}

// grpcCollector is an OTLP/gRPC trace receiver.
type grpcCollector struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []string
}

func (g *grpcCollector) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				g.spans = append(g.spans, s.Name)
			}
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

// With OTEL_EXPORTER_OTLP_PROTOCOL=grpc (what the deployments set), spans
// go to the collector over OTLP/gRPC. Not parallel: process environment.
func TestOTLPExportGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &grpcCollector{}
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_METRICS_EXPORTER", "none")
	tel, err := Setup(context.Background(), Options{Service: "grpc-exported", Version: "1", Environment: "test"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tel.Tracer.Tracer("test").Start(context.Background(), "over-grpc")
	span.End()
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if strings.Join(col.spans, ",") != "over-grpc" {
		t.Errorf("spans received: %v", col.spans)
	}
}

// Close flushes even though the service's context is already cancelled
// (that is why it stops), and a failed flush is logged, not fatal.
func TestCloseFlushesDetachedAndLogsAFailure(t *testing.T) {
	t.Parallel()
	var flushCtxErr error
	var deadline bool
	tel := &Telemetry{shutdown: []func(context.Context) error{func(ctx context.Context) error {
		flushCtxErr = ctx.Err()
		_, deadline = ctx.Deadline()
		return errors.New("collector gone")
	}}}
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tel.Close(ctx, slog.New(slog.NewTextHandler(&logs, nil)))
	if flushCtxErr != nil || !deadline {
		t.Fatalf("flush context: err %v, deadline %v; want a live context with a deadline", flushCtxErr, deadline)
	}
	if !strings.Contains(logs.String(), "telemetry shutdown") || !strings.Contains(logs.String(), "collector gone") {
		t.Fatalf("the failed flush was not logged: %q", logs.String())
	}
}
