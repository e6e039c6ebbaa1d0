// Package telemetry sets up a service's OpenTelemetry providers: traces
// exported by OTLP when the standard OTEL_* variables configure an endpoint
// (nothing is exported, and nothing logged about it, otherwise), metrics
// served in Prometheus format and also exported by OTLP when configured, and
// W3C trace-context and baggage propagation.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
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
// exporter of the given signal ("TRACES" or "METRICS").
func exportConfigured(lookup config.Lookup, signal string) bool {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_" + signal + "_ENDPOINT", "OTEL_" + signal + "_EXPORTER"} {
		if v, ok := lookup(k); ok && v != "" {
			return true
		}
	}
	return false
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
	t := &Telemetry{Propagator: Propagator()}

	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	switch {
	case o.SpanExporter != nil:
		topts = append(topts, sdktrace.WithSyncer(o.SpanExporter))
	case exportConfigured(lookup, "TRACES"):
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("trace exporter: %w", err)
		}
		topts = append(topts, sdktrace.WithBatcher(exp))
	}
	t.Tracer = sdktrace.NewTracerProvider(topts...)
	t.shutdown = append(t.shutdown, t.Tracer.Shutdown)

	reg := prometheus.NewRegistry()
	prom, err := promexporter.New(promexporter.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	if exportConfigured(lookup, "METRICS") {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
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
