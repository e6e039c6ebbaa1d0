package logging

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/stdr"
	"github.com/redis/go-redis/v9"
	redislogging "github.com/redis/go-redis/v9/logging"
	"go.opentelemetry.io/otel"

	"github.com/acme/customer-platform/internal/testenv"
)

// The process-wide loggers of go-redis, the OpenTelemetry SDK and the log
// package write JSON lines through the service's logger. (They are global:
// this test restores them and cannot run in parallel.)
func TestRouteLibraryLogs(t *testing.T) {
	prev := slog.Default()
	t.Cleanup(func() {
		slog.SetDefault(prev)
		log.SetOutput(os.Stderr)
		log.SetFlags(log.LstdFlags)
		redislogging.Enable()
		otel.SetLogger(stdr.New(log.New(os.Stderr, "", log.LstdFlags|log.Lshortfile)))
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Print(err) }))
	})
	var buf testenv.LogBuffer
	RouteLibraryLogs(New(&buf, slog.LevelDebug, "svc"))

	// A Redis that is not there: go-redis logs the failed dial.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("ping of a closed port succeeded")
	}
	otel.Handle(errors.New("traces export: collector unreachable"))
	log.Print("a line from the log package")

	var redisLine, otelLine, stdLine map[string]any
	for _, l := range buf.Lines(t) {
		if l["service"] != "svc" {
			t.Errorf("line without the service: %v", l)
		}
		switch {
		case l["component"] == "go-redis" && strings.Contains(l["msg"].(string), "failed to dial"):
			redisLine = l
		case l["component"] == "opentelemetry":
			otelLine = l
		case l["msg"] == "a line from the log package":
			stdLine = l
		}
	}
	if redisLine == nil || redisLine["level"] != "DEBUG" || strings.HasPrefix(redisLine["msg"].(string), "redis:") {
		t.Errorf("go-redis line: %v", redisLine)
	}
	if otelLine == nil || otelLine["level"] != "WARN" || otelLine["error"] != "traces export: collector unreachable" {
		t.Errorf("OpenTelemetry line: %v", otelLine)
	}
	if stdLine == nil || stdLine["level"] != "INFO" {
		t.Errorf("log package line: %v", stdLine)
	}
}

func TestRedisLoggerLevels(t *testing.T) {
	t.Parallel()
	var buf testenv.LogBuffer
	l := RedisLogger(New(&buf, slog.LevelInfo, "svc"))
	l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %v", 5, errors.New("refused"))
	l.Printf(context.Background(), "redis: %v channel is full for %s (message is dropped)\n", "PubSub(ch)", time.Minute)
	lines := buf.Lines(t)
	if len(lines) != 1 || lines[0]["level"] != "WARN" || lines[0]["msg"] != "PubSub(ch) channel is full for 1m0s (message is dropped)" ||
		lines[0]["component"] != "go-redis" {
		t.Fatalf("at info level, only the dropped message: %v", lines)
	}
}
