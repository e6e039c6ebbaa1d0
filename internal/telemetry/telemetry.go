// Package telemetry sets up a service's OpenTelemetry providers: traces
// exported by OTLP when the standard OTEL_* variables configure an endpoint
// (nothing is exported, and nothing logged about it, otherwise), sampled as
// OTEL_TRACES_SAMPLER says (parent-based always-on by default), metrics
// served in Prometheus format and also exported by OTLP when configured, and
// W3C trace-context and baggage propagation. Database client spans that
// would start a trace of their own (background housekeeping) are dropped.
//
// Whether an exporter is configured, and the sampler, are read through the
// Options' Lookup; the exporters themselves (endpoint, protocol, headers,
// timeouts) read the standard variables from the process environment.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	promexporter "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"

	"github.com/acme/customer-platform/internal/config"
)

// Options describes the service being instrumented.
type Options struct {
	Service     string // service.name: auth, customer, bff
	Version     string // service.version
	Environment string // deployment.environment
	// SpanExporter, when set, receives every span synchronously (tests use
	// an in-memory exporter); it replaces the OTLP exporter.
	SpanExporter sdktrace.SpanExporter
	Lookup       config.Lookup // nil: the process environment
}

// Telemetry holds a service's providers.
type Telemetry struct {
	Tracer     *sdktrace.TracerProvider
	Meter      *sdkmetric.MeterProvider
	Propagator propagation.TextMapPropagator
	// Metrics serves the Prometheus text format of the service's metrics.
	Metrics  http.Handler
	shutdown []func(context.Context) error
}

// Propagator is the W3C trace-context plus baggage propagator.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// exportConfigured reports whether the OTEL_* environment asks for an
// exporter of the given signal ("TRACES" or "METRICS"). OTEL_SDK_DISABLED
// turns every exporter off.
func exportConfigured(lookup config.Lookup, signal string) bool {
	if v, _ := lookup("OTEL_SDK_DISABLED"); strings.EqualFold(strings.TrimSpace(v), "true") {
		return false
	}
	if v, ok := lookup("OTEL_" + signal + "_EXPORTER"); ok && v != "" {
		// "none" exports nothing; Prometheus is always served on /metrics
		// (autoexport's "prometheus" would start a second server).
		v = strings.ToLower(strings.TrimSpace(v))
		return v != "none" && v != "prometheus"
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_" + signal + "_ENDPOINT"} {
		if v, ok := lookup(k); ok && v != "" {
			return true
		}
	}
	return false
}

// Sampler returns the sampler OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// ask for: always_on, always_off, traceidratio, parentbased_always_on (the
// default), parentbased_always_off or parentbased_traceidratio (the ratio
// defaults to 1). An unknown sampler or a bad ratio is an error.
func Sampler(lookup config.Lookup) (sdktrace.Sampler, error) {
	name, _ := lookup("OTEL_TRACES_SAMPLER")
	name = strings.ToLower(strings.TrimSpace(name))
	ratio := 1.0
	if arg, _ := lookup("OTEL_TRACES_SAMPLER_ARG"); strings.TrimSpace(arg) != "" && strings.HasSuffix(name, "traceidratio") {
		r, err := strconv.ParseFloat(strings.TrimSpace(arg), 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio between 0 and 1", arg)
		}
		ratio = r
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER: unsupported sampler %q (want always_on, always_off, traceidratio, "+
		"parentbased_always_on, parentbased_always_off or parentbased_traceidratio)", name)
}

// Setup builds the providers. Shutdown flushes and stops them.
func Setup(ctx context.Context, o Options) (*Telemetry, error) {
	lookup := o.Lookup
	if lookup == nil {
		lookup = config.Env
	}
	res, err := resource.New(ctx,
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			semconv.ServiceName(o.Service),
			semconv.ServiceVersion(o.Version),
			attribute.String("deployment.environment", o.Environment),
			semconv.DeploymentEnvironmentName(o.Environment),
		))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	sampler, err := Sampler(lookup)
	if err != nil {
		return nil, err
	}
	t := &Telemetry{Propagator: Propagator()}

	topts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(quietRoots{sampler}),
	}
	switch {
	case o.SpanExporter != nil:
		topts = append(topts, sdktrace.WithSyncer(redactingExporter{o.SpanExporter}))
	case exportConfigured(lookup, "TRACES"):
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("trace exporter: %w", err)
		}
		topts = append(topts, sdktrace.WithBatcher(redactingExporter{exp}))
	}
	t.Tracer = sdktrace.NewTracerProvider(topts...)
	t.shutdown = append(t.shutdown, t.Tracer.Shutdown)

	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("prometheus go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("prometheus process collector: %w", err)
	}
	prom, err := promexporter.New(promexporter.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	if exportConfigured(lookup, "METRICS") {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			_ = t.Tracer.Shutdown(ctx)
			return nil, fmt.Errorf("metric exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	t.Meter = sdkmetric.NewMeterProvider(mopts...)
	t.shutdown = append(t.shutdown, t.Meter.Shutdown)
	t.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return t, nil
}

// Shutdown flushes pending telemetry and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// Close is a service's last step: Shutdown within 5 seconds, detached from
// ctx's cancellation (the service is stopping because of it), with a
// failure logged rather than returned: a flush the collector no longer
// takes is not the service failing.
func (t *Telemetry) Close(ctx context.Context, log *slog.Logger) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(sctx); err != nil {
		log.Warn("telemetry shutdown", "error", err.Error())
	}
}
