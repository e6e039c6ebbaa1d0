// Package breaker puts circuit breakers (sony/gobreaker) in front of the
// BFF's dependencies: Redis, the auth service and the customer service.
//
// A Breaker opens after a run of consecutive failures and then fails fast
// with ErrOpen (callers answer 503 upstream_unavailable, or serve without the
// cache) until its open timeout has passed; it then lets a few probe calls
// through (half-open) and closes again when they succeed. What counts:
//
//   - a nil error, or an error the Settings.IsSuccessful policy accepts (a
//     Redis cache miss, a 404 from an upstream: the dependency answered), is
//     a success;
//   - a call whose caller gave up (its context cancelled, or its own deadline
//     passed) is not counted at all: it says nothing about the dependency;
//   - anything else, including the breaker's own per-call timeout, is a
//     failure.
//
// Every state change is logged, recorded as an event on the span of the call
// that observed it, counted, and exposed as the gauge bff.breaker.state
// (0 closed, 1 half-open, 2 open). Registry.States feeds /readyz details.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
)

// ErrOpen is returned, wrapped with the breaker's name, when a breaker
// refuses a call: it is open, or half-open with its probes already in flight.
var ErrOpen = errors.New("circuit breaker open")

// State is a breaker's state as shown in logs and /readyz.
type State string

// States.
const (
	Closed   State = "closed"
	HalfOpen State = "half-open"
	Open     State = "open"
)

// gauge is the value of the bff.breaker.state gauge for the state.
func (s State) gauge() int64 {
	switch s {
	case HalfOpen:
		return 1
	case Open:
		return 2
	}
	return 0
}

func stateOf(s gobreaker.State) State {
	switch s {
	case gobreaker.StateOpen:
		return Open
	case gobreaker.StateHalfOpen:
		return HalfOpen
	}
	return Closed
}

// Settings tune one breaker; zero values take the defaults.
type Settings struct {
	// FailuresToOpen is how many consecutive failures open the breaker (default 5).
	FailuresToOpen uint32
	// OpenTimeout is how long the breaker stays open before probing (default 5s).
	OpenTimeout time.Duration
	// HalfOpenMax is how many probe calls a half-open breaker lets through;
	// that many consecutive successes close it (default 1).
	HalfOpenMax uint32
	// CallTimeout, when positive, bounds each call: fn gets a context with
	// this timeout, and running out of it is a failure.
	CallTimeout time.Duration
	// IsSuccessful reports whether a non-nil error still shows the
	// dependency working (e.g. redis.Nil, an upstream's 404 or 400).
	// Nil: every error is a failure.
	IsSuccessful func(err error) bool
}

// Defaults.
const (
	DefaultFailuresToOpen = 5
	DefaultOpenTimeout    = 5 * time.Second
	DefaultHalfOpenMax    = 1
)

func (s Settings) withDefaults() Settings {
	if s.FailuresToOpen == 0 {
		s.FailuresToOpen = DefaultFailuresToOpen
	}
	if s.OpenTimeout <= 0 {
		s.OpenTimeout = DefaultOpenTimeout
	}
	if s.HalfOpenMax == 0 {
		s.HalfOpenMax = DefaultHalfOpenMax
	}
	return s
}

// Registry holds a service's named breakers and publishes their states.
type Registry struct {
	logger      *slog.Logger
	transitions metric.Int64Counter
	rejections  metric.Int64Counter

	mu       sync.Mutex
	breakers map[string]*Breaker
}

const meterName = "github.com/acme/customer-platform/bff/breaker"

// NewRegistry returns an empty registry whose metrics go to mp (nil: no
// metrics) and whose state changes are logged to logger (nil: slog.Default).
func NewRegistry(logger *slog.Logger, mp metric.MeterProvider) (*Registry, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	r := &Registry{logger: logger, breakers: map[string]*Breaker{}}
	m := mp.Meter(meterName)
	var err error
	if r.transitions, err = m.Int64Counter("bff.breaker.transitions",
		metric.WithDescription("Circuit breaker state changes, by breaker and new state.")); err != nil {
		return nil, fmt.Errorf("breaker metrics: %w", err)
	}
	if r.rejections, err = m.Int64Counter("bff.breaker.rejections",
		metric.WithDescription("Calls refused by an open or saturated half-open circuit breaker.")); err != nil {
		return nil, fmt.Errorf("breaker metrics: %w", err)
	}
	if _, err = m.Int64ObservableGauge("bff.breaker.state",
		metric.WithDescription("Circuit breaker state: 0 closed, 1 half-open, 2 open."),
		metric.WithInt64Callback(func(ctx context.Context, o metric.Int64Observer) error {
			for _, b := range r.list() {
				o.Observe(b.State(ctx).gauge(), metric.WithAttributes(attribute.String("breaker", b.name)))
			}
			return nil
		})); err != nil {
		return nil, fmt.Errorf("breaker metrics: %w", err)
	}
	return r, nil
}

func (r *Registry) list() []*Breaker {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Collect(maps.Values(r.breakers))
}

// New creates and registers the breaker called name.
func (r *Registry) New(name string, s Settings) (*Breaker, error) {
	if name == "" {
		return nil, errors.New("breaker: empty name")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.breakers[name]; dup {
		return nil, fmt.Errorf("breaker: %q registered twice", name)
	}
	s = s.withDefaults()
	b := &Breaker{name: name, settings: s, reg: r}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        name,
		MaxRequests: s.HalfOpenMax,
		Timeout:     s.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= s.FailuresToOpen },
		IsExcluded:  func(err error) bool { return errors.Is(err, errNotCounted) },
		IsSuccessful: func(err error) bool {
			return err == nil || (s.IsSuccessful != nil && s.IsSuccessful(err))
		},
		// Called with gobreaker's lock held, by whichever call caused the
		// change: only queue it; the caller reports it once the lock is free.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.mu.Lock()
			b.pending = append(b.pending, change{from: stateOf(from), to: stateOf(to), at: time.Now()})
			b.mu.Unlock()
		},
	})
	r.breakers[name] = b
	return b, nil
}

// States returns every breaker's state by name, for /readyz details.
func (r *Registry) States() map[string]string {
	out := map[string]string{}
	for _, b := range r.list() {
		out[b.name] = string(b.State(context.Background()))
	}
	return out
}

// Breaker guards calls to one dependency. A nil *Breaker runs every call
// unguarded.
type Breaker struct {
	name     string
	settings Settings
	reg      *Registry
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]

	mu      sync.Mutex
	pending []change
}

type change struct {
	from, to State
	at       time.Time
}

// errNotCounted marks an outcome the breaker must ignore.
var errNotCounted = errors.New("caller gave up")

// Name is the breaker's name.
func (b *Breaker) Name() string {
	if b == nil {
		return ""
	}
	return b.name
}

// State returns the breaker's current state (an open breaker whose timeout
// has passed reports half-open). A nil breaker is always closed.
func (b *Breaker) State(ctx context.Context) State {
	if b == nil {
		return Closed
	}
	s := stateOf(b.cb.State())
	b.report(ctx)
	return s
}

// Do runs fn through the breaker. It returns an error wrapping ErrOpen
// without calling fn when the breaker refuses the call.
func (b *Breaker) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	_, err := Call(ctx, b, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

// Call runs fn through b and returns its result; see Breaker.Do.
func Call[T any](ctx context.Context, b *Breaker, fn func(ctx context.Context) (T, error)) (result T, err error) {
	if b == nil {
		return fn(ctx)
	}
	done, aerr := b.cb.Allow()
	b.report(ctx)
	if aerr != nil {
		b.reg.rejections.Add(ctx, 1, metric.WithAttributes(attribute.String("breaker", b.name)))
		return result, fmt.Errorf("%s: %w", b.name, ErrOpen)
	}
	callCtx := ctx
	if b.settings.CallTimeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, b.settings.CallTimeout)
		defer cancel()
	}
	finished := false
	defer func() {
		if !finished { // fn panicked: a failure, and the panic goes on
			done(errors.New("panic"))
			b.report(ctx)
		}
	}()
	result, err = fn(callCtx)
	finished = true
	outcome := err
	if err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)) {
		// The caller was cancelled or ran out of its own time: that says
		// nothing about the dependency. (The breaker's own CallTimeout ends
		// in DeadlineExceeded with ctx still live, and is counted.)
		outcome = errNotCounted
	}
	done(outcome)
	b.report(ctx)
	return result, err
}

// report logs, traces and counts the state changes queued since the last
// report, attributing them to the call (and span) in ctx.
func (b *Breaker) report(ctx context.Context) {
	b.mu.Lock()
	if len(b.pending) == 0 {
		b.mu.Unlock()
		return
	}
	changes := b.pending
	b.pending = nil
	b.mu.Unlock()
	span := trace.SpanFromContext(ctx)
	for _, c := range changes {
		level := slog.LevelInfo
		if c.to == Open {
			level = slog.LevelWarn
		}
		b.reg.logger.Log(ctx, level, "circuit breaker state changed",
			slog.String("breaker", b.name), slog.String("from", string(c.from)), slog.String("to", string(c.to)))
		attrs := []attribute.KeyValue{
			attribute.String("breaker.name", b.name),
			attribute.String("breaker.from", string(c.from)),
			attribute.String("breaker.to", string(c.to)),
		}
		span.AddEvent("breaker.state_change", trace.WithTimestamp(c.at), trace.WithAttributes(attrs...))
		b.reg.transitions.Add(ctx, 1, metric.WithAttributes(attribute.String("breaker", b.name), attribute.String("to", string(c.to))))
	}
}
