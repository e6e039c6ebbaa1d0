package bffd

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/bff"
)

const instrumentation = "github.com/acme/customer-platform/bff"

// sagaTelemetry implements bff.Telemetry with OpenTelemetry: spans of the
// saga steps, the bff.saga.outcomes and bff.reconciler.attempts counters,
// the reconciler's gauges (bff.reconciler.backlog,
// bff.saga.needs_attention, bff.reconciler.oldest_open_age) and its pass
// counter (bff.reconciler.passes).
type sagaTelemetry struct {
	tracer   trace.Tracer
	outcomes metric.Int64Counter
	attempts metric.Int64Counter
}

// reconcilerGauges are what the reconciler's last pass saw.
type reconcilerGauges struct {
	backlog        func() int64
	needsAttention func() int64
	oldestOpenAge  func() time.Duration
	passes         func() int64
}

var _ bff.Telemetry = (*sagaTelemetry)(nil)

func newSagaTelemetry(tp trace.TracerProvider, mp metric.MeterProvider, g reconcilerGauges) (*sagaTelemetry, error) {
	m := mp.Meter(instrumentation)
	outcomes, err := m.Int64Counter("bff.saga.outcomes",
		metric.WithDescription("Sagas by kind (register, delete_account) and outcome (completed, compensated, pending, failed, needs_attention)."))
	if err != nil {
		return nil, fmt.Errorf("saga metrics: %w", err)
	}
	attempts, err := m.Int64Counter("bff.reconciler.attempts",
		metric.WithDescription("Reconciler attempts at a saga by kind and result (advanced, retry, error)."))
	if err != nil {
		return nil, fmt.Errorf("saga metrics: %w", err)
	}
	for _, gauge := range []struct {
		name, desc, unit string
		value            func() int64
	}{
		{"bff.reconciler.backlog", "Sagas not yet finished, as seen by the reconciler's last pass.", "{saga}", g.backlog},
		{"bff.saga.needs_attention", "Sagas parked for an operator (state needs_attention), as seen by the reconciler's last pass.", "{saga}", g.needsAttention},
		{"bff.reconciler.oldest_open_age", "Age of the oldest saga not yet finished, as seen by the reconciler's last pass (0: none).", "s",
			func() int64 { return int64(g.oldestOpenAge() / time.Second) }},
	} {
		if _, err := m.Int64ObservableGauge(gauge.name, metric.WithDescription(gauge.desc), metric.WithUnit(gauge.unit),
			metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
				o.Observe(gauge.value())
				return nil
			})); err != nil {
			return nil, fmt.Errorf("saga metrics: %w", err)
		}
	}
	if _, err := m.Int64ObservableCounter("bff.reconciler.passes",
		metric.WithDescription("Reconciler passes run by this replica, failed ones included: flat while the reconciler is not running."),
		metric.WithUnit("{pass}"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(g.passes())
			return nil
		})); err != nil {
		return nil, fmt.Errorf("saga metrics: %w", err)
	}
	return &sagaTelemetry{tracer: tp.Tracer(instrumentation), outcomes: outcomes, attempts: attempts}, nil
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

func (t *sagaTelemetry) Attempt(ctx context.Context, kind, result string) {
	t.attempts.Add(ctx, 1, metric.WithAttributes(attribute.String("saga.kind", kind), attribute.String("result", result)))
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
