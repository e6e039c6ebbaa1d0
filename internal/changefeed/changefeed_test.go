package changefeed

import (
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// A message carries the trace context of the write that published it, and
// nothing when that write was not traced.
func TestMessagesCarryTheWritesTraceContext(t *testing.T) {
	t.Parallel()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	m, err := Decode(string(payload(ctx, Message{UserID: "u1", Op: "update"})))
	if err != nil {
		t.Fatal(err)
	}
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; m.Traceparent != want {
		t.Fatalf("traceparent %q, want %q", m.Traceparent, want)
	}
	if got := m.SpanContext(); !got.IsRemote() || got.TraceID() != tid || got.SpanID() != sid || !got.IsSampled() {
		t.Fatalf("span context %+v, want the remote %s/%s, sampled", got, tid, sid)
	}

	var raw map[string]any
	if err := json.Unmarshal(payload(context.Background(), Message{UserID: "u1", Op: "update"}), &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["traceparent"]; ok {
		t.Fatalf("an untraced write's message has a traceparent: %v", raw)
	}
	for _, bad := range []string{"", "garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"} {
		if (Message{Traceparent: bad}).SpanContext().IsValid() {
			t.Errorf("traceparent %q gave a valid span context", bad)
		}
	}
}
