package bffd

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/bff"
)

const instrumentation = "github.com/acme/customer-platform/bff"

// sagaTelemetry implements bff.Telemetry with OpenTelemetry: spans of the
// saga steps, the bff.saga.outcomes counter and the bff.reconciler.backlog
// gauge.
type sagaTelemetry struct {
	tracer   trace.Tracer
	outcomes metric.Int64Counter
}

var _ bff.Telemetry = (*sagaTelemetry)(nil)

func newSagaTelemetry(tp trace.TracerProvider, mp metric.MeterProvider, backlog func() int64) (*sagaTelemetry, error) {
	m := mp.Meter(instrumentation)
	outcomes, err := m.Int64Counter("bff.saga.outcomes",
		metric.WithDescription("Sagas by kind (register, delete_account) and outcome (completed, compensated, pending, failed, needs_attention)."))
	if err != nil {
		return nil, fmt.Errorf("saga metrics: %w", err)
	}
	if _, err := m.Int64ObservableGauge("bff.reconciler.backlog",
		metric.WithDescription("Sagas not yet finished, as seen by the reconciler's last pass."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(backlog())
			return nil
		})); err != nil {
		return nil, fmt.Errorf("saga metrics: %w", err)
	}
	return &sagaTelemetry{tracer: tp.Tracer(instrumentation), outcomes: outcomes}, nil
}

func (t *sagaTelemetry) Start(ctx context.Context, name, link string, attrs ...slog.Attr) (context.Context, func(error)) {
	opts := []trace.SpanStartOption{trace.WithAttributes(otelAttrs(attrs)...)}
	if link != "" {
		lctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": link})
		if sc := trace.SpanContextFromContext(lctx); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	ctx, span := t.tracer.Start(ctx, name, opts...)
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

func (t *sagaTelemetry) Traceparent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

func (t *sagaTelemetry) Outcome(ctx context.Context, kind, outcome string) {
	t.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("saga.kind", kind), attribute.String("outcome", outcome)))
}

func otelAttrs(as []slog.Attr) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(as))
	for _, a := range as {
		v := a.Value.Resolve()
		switch v.Kind() {
		case slog.KindBool:
			out = append(out, attribute.Bool(a.Key, v.Bool()))
		case slog.KindInt64:
			out = append(out, attribute.Int64(a.Key, v.Int64()))
		case slog.KindFloat64:
			out = append(out, attribute.Float64(a.Key, v.Float64()))
		default:
			out = append(out, attribute.String(a.Key, v.String()))
		}
	}
	return out
}
