package telemetry

import (
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// quietRoots drops the database client spans that would start a trace of
// their own: the housekeeping no request asked for (the reconciler's polls,
// the expiry sweeps, index creation at start, the Redis pool's background
// dials). Each would be a one-span trace, every few seconds, burying the
// traces of requests; the work that matters in the background has spans of
// its own (bff.reconcile.*) and its database calls stay under them. Every
// other decision is the configured sampler's.
type quietRoots struct{ sdktrace.Sampler }

func (q quietRoots) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	if p.Kind == trace.SpanKindClient && !trace.SpanContextFromContext(p.ParentContext).IsValid() && isDatabase(p.Attributes) {
		return sdktrace.SamplingResult{Decision: sdktrace.Drop}
	}
	return q.Sampler.ShouldSample(p)
}

func (q quietRoots) Description() string {
	return "QuietRoots{" + q.Sampler.Description() + "}"
}

func isDatabase(attrs []attribute.KeyValue) bool {
	for _, kv := range attrs {
		if kv.Key == "db.system" || kv.Key == "db.system.name" {
			return true
		}
	}
	return false
}
