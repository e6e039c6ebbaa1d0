package logging

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
)

// RouteLibraryLogs sends what libraries with a process-wide logger write
// through l, as JSON lines like every other, instead of plain text on
// stderr: go-redis (it logs every failed dial during a Redis outage), the
// OpenTelemetry SDK (its internal log and its error handler, e.g. an export
// that failed) and the standard library's log package (slog.SetDefault).
//
// Those loggers are global to the process by the libraries' design, so this
// is the one place that sets them: call it once, from main, before the
// services start; code under test does not call it and keeps its loggers
// injected.
func RouteLibraryLogs(l *slog.Logger) {
	slog.SetDefault(l)
	redis.SetLogger(RedisLogger(l))
	otelLog := l.With("component", "opentelemetry")
	otel.SetLogger(logr.FromSlogHandler(otelLog.Handler()))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		otelLog.Warn("telemetry error", "error", err.Error())
	}))
}

// RedisLogger adapts l to go-redis's logger interface.
func RedisLogger(l *slog.Logger) interface {
	Printf(ctx context.Context, format string, v ...any)
} {
	return redisLogger{l.With("component", "go-redis")}
}

type redisLogger struct{ l *slog.Logger }

// Printf logs a go-redis message. A failed dial is logged at debug level:
// the command that needed the connection fails with that error, and the
// caller reports it where it handles it (a breaker opening, a best-effort
// publish skipped), so at info level an outage does not repeat itself on
// every connection attempt. Everything else is a warning.
func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if ctx == nil {
		ctx = context.Background()
	}
	msg := strings.TrimSpace(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
	level := slog.LevelWarn
	if strings.Contains(msg, "failed to dial") {
		level = slog.LevelDebug
	}
	r.l.Log(ctx, level, msg)
}
