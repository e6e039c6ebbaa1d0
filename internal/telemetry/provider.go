package telemetry

import (
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Tracer returns tp's tracer for the instrumentation name, a no-op one when
// tp is nil (an option left unset).
func Tracer(tp trace.TracerProvider, name string) trace.Tracer {
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	return tp.Tracer(name)
}

// Meter returns mp's meter for the instrumentation name, a no-op one when mp
// is nil (an option left unset).
func Meter(mp metric.MeterProvider, name string) metric.Meter {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	return mp.Meter(name)
}
