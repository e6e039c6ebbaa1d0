package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/internal/logging"
)

type loggerKey struct{}

// Logger returns the request's logger (the service logger with the request's
// context fields), or slog.Default outside a request.
func Logger(c *gin.Context) *slog.Logger {
	if l, ok := c.Request.Context().Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// LoggerFrom returns the logger stored in ctx by the engine, or slog.Default.
func LoggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// EngineOptions configures NewEngine.
type EngineOptions struct {
	Service        string
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider // nil: the global one
	MeterProvider  metric.MeterProvider // nil: the global one
	// Propagator extracts the caller's trace context and baggage (nil: W3C
	// traceparent and baggage; never the global one, which is a no-op
	// unless someone sets it).
	Propagator propagation.TextMapPropagator
	// ContentSecurityPolicy of every answer (empty: APIContentSecurityPolicy,
	// for a service that serves only JSON).
	ContentSecurityPolicy string
}

// NewEngine returns a gin engine with the shared middleware chain: the
// security headers, tracing (otelgin, W3C propagation), request id, recovery in the contract's shape,
// the access log and request metrics, and JSON 404/405 answers.
func NewEngine(o EngineOptions) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// No proxy is trusted unless a service says so (SetTrustedProxies after
	// NewEngine): gin's default believes X-Forwarded-For from anyone, which
	// would let a client choose the address it is rate limited by.
	_ = e.SetTrustedProxies(nil)
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	prop := o.Propagator
	if prop == nil {
		prop = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	tracing := []otelgin.Option{otelgin.WithPropagators(prop)}
	if o.TracerProvider != nil {
		tracing = append(tracing, otelgin.WithTracerProvider(o.TracerProvider))
	}
	tracing = append(tracing, otelgin.WithFilter(func(r *http.Request) bool {
		return r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && r.URL.Path != "/metrics"
	}))
	e.Use(securityHeaders(o.ContentSecurityPolicy), requestID(o.Logger), otelgin.Middleware(o.Service, tracing...), accessLog(newHTTPMetrics(o.MeterProvider)), recovery())
	e.NoRoute(func(c *gin.Context) { Respond(c, Errorf(CodeNotFound, "Not found.")) })
	e.NoMethod(func(c *gin.Context) {
		Respond(c, Errorf(CodeMethodNotAllowed, "Method %q not allowed.", c.Request.Method))
	})
	return e
}

// RequestIDHeader is echoed when the caller sends one, else generated.
const RequestIDHeader = "X-Request-ID"

func requestID(base *slog.Logger) gin.HandlerFunc {
	if base == nil {
		base = slog.Default()
	}
	return func(c *gin.Context) {
		id := c.GetHeader(RequestIDHeader)
		if id == "" || len(id) > 128 {
			id = newID()
		}
		c.Header(RequestIDHeader, id)
		ctx := logging.WithRequestID(c.Request.Context(), id)
		ctx = context.WithValue(ctx, loggerKey{}, base)
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// accessLog writes one line per request, with the route (not the raw path,
// which may carry ids), the status and the duration, and records the request
// metrics by route and status.
func accessLog(m *httpMetrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		d := time.Since(start)
		status := c.Writer.Status()
		m.record(c.Request.Context(), c.Request.Method, route, status, d)
		if route == "/healthz" || route == "/readyz" {
			return
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelWarn
		}
		Logger(c).LogAttrs(c.Request.Context(), level, "request",
			slog.String("method", c.Request.Method),
			slog.String("route", route),
			slog.Int("status", status),
			slog.Float64("duration_ms", float64(d.Microseconds())/1000),
			slog.Int("bytes", c.Writer.Size()),
		)
	}
}

func recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				Respond(c, fmt.Errorf("panic: %v", r))
			}
		}()
		c.Next()
	}
}
