package mongodb

import (
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.opentelemetry.io/contrib/instrumentation/go.mongodb.org/mongo-driver/mongo/otelmongo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestFailureSummary(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`(DuplicateKey) E11000 duplicate key error collection: auth.users index: email_unique dup key: { email: "a@b.com" }`: "(DuplicateKey) server error",
		`(InternalError) UNIQUE constraint failed: users.email`:                                                              "(InternalError) server error",
		`E11000 duplicate key error dup key: { email: "a@b.com" }`:                                                           "command failed",
		"connection(127.0.0.1:27017[-3]) incomplete read of message header: EOF":                                             "connection(127.0.0.1:27017[-3]) incomplete read of message header: EOF",
		"context deadline exceeded": "context deadline exceeded",
	} {
		if got := failureSummary(in); got != want {
			t.Errorf("failureSummary(%q) = %q, want %q", in, got, want)
		}
	}
}

// A failed command's span keeps the error kind but not the values the
// server quoted.
func TestMonitorRedactsFailures(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	m := tracingMonitor(otelmongo.WithTracerProvider(tp), otelmongo.WithCommandAttributeDisabled(true))
	cmd, err := bson.Marshal(bson.D{{Key: "insert", Value: "users"}, {Key: "documents", Value: bson.A{bson.D{{Key: "email", Value: "a@b.com"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	m.Started(context.Background(), &event.CommandStartedEvent{Command: cmd, DatabaseName: "auth", CommandName: "insert", RequestID: 7, ConnectionID: "c1"})
	m.Failed(context.Background(), &event.CommandFailedEvent{
		CommandFinishedEvent: event.CommandFinishedEvent{CommandName: "insert", RequestID: 7, ConnectionID: "c1"},
		Failure:              `(DuplicateKey) E11000 duplicate key error collection: auth.users index: email_unique dup key: { email: "a@b.com" }`,
	})
	got := spans.GetSpans()
	if len(got) != 1 {
		t.Fatalf("%d spans", len(got))
	}
	if got[0].Name != "users.insert" || got[0].Status.Description != "(DuplicateKey) server error" {
		t.Errorf("span %q, status %q", got[0].Name, got[0].Status.Description)
	}
	for _, kv := range got[0].Attributes {
		if strings.Contains(kv.Value.String(), "a@b.com") {
			t.Errorf("attribute %s carries the document: %s", kv.Key, kv.Value.String())
		}
	}
}
