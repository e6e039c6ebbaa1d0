package telemetry

import (
	"context"
	"net/url"
	"regexp"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Redacted replaces the value of every query parameter of a URL in
// exported spans.
const Redacted = "REDACTED"

// urlAttributes are the attributes that carry a whole URL or its query (the
// current semantic conventions and the older ones some instrumentations
// still use).
var urlAttributes = map[attribute.Key]func(string) string{
	"url.full":    redactURL,
	"http.url":    redactURL,
	"url.query":   RedactQuery,
	"http.target": redactTarget,
}

// urlInText finds URLs inside free text (an error message quoting the
// request it failed, as *url.Error does).
var urlInText = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)

// redactingExporter scrubs URL queries from the spans it passes on. A
// query may carry personal data (the auth service's user search takes
// ?email=), and otelhttp records the full URL of every outbound call, after
// the span started, so this is done on the way out: in the URL attributes,
// and in any URL quoted by another string attribute, an event's attributes
// (a recorded error) or the status description. Parameter names are kept,
// so the span still says what was asked.
type redactingExporter struct{ sdktrace.SpanExporter }

func (e redactingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = scrub(s)
	}
	return e.SpanExporter.ExportSpans(ctx, out)
}

// scrubbedSpan is a span with its attributes, events and status replaced.
type scrubbedSpan struct {
	sdktrace.ReadOnlySpan
	attrs  []attribute.KeyValue
	events []sdktrace.Event
	status sdktrace.Status
}

func (s scrubbedSpan) Attributes() []attribute.KeyValue { return s.attrs }
func (s scrubbedSpan) Events() []sdktrace.Event         { return s.events }
func (s scrubbedSpan) Status() sdktrace.Status          { return s.status }

// scrub returns s itself when nothing needs redacting.
func scrub(s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	attrs, changed := scrubAttrs(s.Attributes())
	events, copied := s.Events(), false
	for i, ev := range events {
		if a, ok := scrubAttrs(ev.Attributes); ok {
			if !copied {
				events, copied = append([]sdktrace.Event(nil), events...), true
			}
			events[i].Attributes = a
		}
	}
	changed = changed || copied
	status := s.Status()
	if d := redactText(status.Description); d != status.Description {
		status.Description = d
		changed = true
	}
	if !changed {
		return s
	}
	return scrubbedSpan{ReadOnlySpan: s, attrs: attrs, events: events, status: status}
}

// scrubAttrs returns the attributes with URL queries redacted, and whether
// any was; the input is never modified.
func scrubAttrs(in []attribute.KeyValue) ([]attribute.KeyValue, bool) {
	var out []attribute.KeyValue
	for i, kv := range in {
		if kv.Value.Type() != attribute.STRING {
			continue
		}
		v := kv.Value.AsString()
		redact, ok := urlAttributes[kv.Key]
		if !ok {
			redact = redactText
		}
		r := redact(v)
		if r == v {
			continue
		}
		if out == nil {
			out = append([]attribute.KeyValue(nil), in...)
		}
		out[i] = attribute.String(string(kv.Key), r)
	}
	if out == nil {
		return in, false
	}
	return out, true
}

// redactText redacts the queries of the URLs quoted in s.
func redactText(s string) string {
	if !strings.Contains(s, "://") || !strings.ContainsAny(s, "?#@") {
		return s
	}
	return urlInText.ReplaceAllStringFunc(s, redactURL)
}

// redactURL keeps a URL's scheme, host and path, and the names of its query
// parameters; a URL that does not parse is dropped whole.
func redactURL(s string) string {
	if !strings.ContainsAny(s, "?#@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return Redacted
	}
	u.User = nil
	u.RawQuery = RedactQuery(u.RawQuery)
	u.ForceQuery = false
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// redactTarget is redactURL for a path with its query.
func redactTarget(s string) string {
	path, query, ok := strings.Cut(s, "?")
	if !ok {
		return s
	}
	return path + "?" + RedactQuery(query)
}

// RedactQuery returns the raw query q with every value replaced by
// Redacted, the names kept in their order ("email=a%40b.c&after=x" becomes
// "email=REDACTED&after=REDACTED"); a bare value (?a@b.com) and a name that
// is itself data (holds an @, or is not valid escaping) are Redacted whole.
// The exporter applies it to every URL attribute, and the typed clients
// (internal/upstream) to the URL their HTTP instrumentation is shown.
func RedactQuery(q string) string {
	if q == "" {
		return ""
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		name, _, ok := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); !ok || err != nil || strings.Contains(n, "@") {
			if p != "" {
				parts[i] = Redacted
			}
			continue
		}
		parts[i] = name + "=" + Redacted
	}
	return strings.Join(parts, "&")
}
