package mongodb

import (
	"context"
	"strings"

	"go.mongodb.org/mongo-driver/event"
	"go.opentelemetry.io/contrib/instrumentation/go.mongodb.org/mongo-driver/mongo/otelmongo"
)

// tracingMonitor is otelmongo's command monitor with the failure messages
// of failed commands reduced before they become the span's status: a
// server's message may quote the values it failed on (MongoDB's duplicate
// key error names the key's value, an email), and personal data must not
// reach a span. The command text itself is left out by otelmongo's option.
func tracingMonitor(opts ...otelmongo.Option) *event.CommandMonitor {
	m := otelmongo.NewMonitor(opts...)
	return &event.CommandMonitor{
		Started:   m.Started,
		Succeeded: m.Succeeded,
		Failed: func(ctx context.Context, evt *event.CommandFailedEvent) {
			e := *evt
			e.Failure = failureSummary(evt.Failure)
			m.Failed(ctx, &e)
		},
	}
}

// failureSummary keeps what a failure says about its kind: the server's
// error name ("(DuplicateKey) E11000 ..." becomes "(DuplicateKey) server
// error"); a client-side failure (a network error, a timeout) is kept when
// it quotes nothing that looks like a document or a value.
func failureSummary(f string) string {
	if strings.HasPrefix(f, "(") {
		if name, _, ok := strings.Cut(f[1:], ")"); ok && name != "" && !strings.ContainsAny(name, " {\"") {
			return "(" + name + ") server error"
		}
	}
	if strings.ContainsAny(f, "{\"'") || strings.Contains(f, "dup key") {
		return "command failed"
	}
	return f
}
