// Package upstream is the JSON-over-HTTP client core shared by the typed
// clients of our services (authclient, customerclient): per-call
// timeouts, an otelhttp transport (client spans, W3C propagation, outbound
// call duration by upstream), bounded answers, retries with backoff for
// idempotent calls only (and no replay of any other call by net/http's
// transport, whatever transport the caller gives), and the mapping of
// Django REST framework error answers to one *Error type whose Kind is
// matched with errors.Is.
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// MaxResponseBytes bounds how much of an answer is read.
const MaxResponseBytes = 1 << 20

// Options configures a typed client of one service (authclient.Options,
// customerclient.Options).
type Options struct {
	BaseURL        string        // e.g. http://127.0.0.1:8001
	Timeout        time.Duration // per call, unless the caller's context is shorter (default: the client's)
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	// Transport is the base transport (default: a tuned clone of http.DefaultTransport).
	Transport http.RoundTripper
}

// Client calls one upstream service.
type Client struct {
	service string
	base    string
	timeout time.Duration
	http    *http.Client
}

// New returns a client of service, which names the upstream ("auth",
// "customer") in span names, the upstream attribute of the outbound metrics
// and error messages. Its calls are traced by an otelhttp transport that
// propagates the trace context and records URLs with their query values
// Redacted (they may be personal data); a Timeout that is not positive is
// defaultTimeout.
func New(service string, o Options, defaultTimeout time.Duration) *Client {
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	base := o.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 256
		t.MaxIdleConnsPerHost = 128
		t.IdleConnTimeout = 90 * time.Second
		base = t
	}
	topts := []otelhttp.Option{
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return service + " " + r.Method }),
	}
	if o.TracerProvider != nil {
		topts = append(topts, otelhttp.WithTracerProvider(o.TracerProvider))
	}
	if o.MeterProvider != nil {
		topts = append(topts, otelhttp.WithMeterProvider(o.MeterProvider))
	}
	if o.Propagator != nil {
		topts = append(topts, otelhttp.WithPropagators(o.Propagator))
	}
	return &Client{
		service: service,
		base:    o.BaseURL,
		timeout: o.Timeout,
		// Telemetry never sees a query value (redact.go).
		http: &http.Client{Transport: redactQuery{next: otelhttp.NewTransport(restoreQuery{next: base}, topts...)}},
	}
}

// Call describes one request.
type Call struct {
	Method string
	Path   string // appended to the base URL
	Query  url.Values
	Token  string            // bearer token, optional
	Header map[string]string // extra request headers
	Body   any               // JSON-encoded when non-nil
	Out    any               // decoded from a 2xx answer when non-nil (an empty answer is then an error)
	// Idempotent calls (GET, DELETE, a POST the service dedupes) are
	// retried with backoff on unavailability (network errors, 5xx);
	// others never are, neither by the client nor by net/http's transport
	// (which would replay a POST with an Idempotency-Key header).
	Idempotent bool
	// GoneOnRetry, for a DELETE, recognises the answer of a retry whose
	// earlier attempt already did the work (the thing is gone): success.
	GoneOnRetry func(*Error) bool
}

const maxAttempts = 3

// Do performs c within the per-call timeout.
func (cl *Client) Do(ctx context.Context, c Call) error {
	ctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	var payload []byte
	if c.Body != nil {
		var err error
		if payload, err = json.Marshal(c.Body); err != nil {
			return fmt.Errorf("%s: encode %s: %w", cl.service, c.Path, err)
		}
	}
	attempts := 1
	if c.Idempotent {
		attempts = maxAttempts
	}
	backoff := 50 * time.Millisecond
	var err error
	for i := range attempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(backoff):
			}
			backoff *= 3
		}
		err = cl.once(ctx, c, payload)
		if i > 0 && c.GoneOnRetry != nil {
			if e, ok := errors.AsType[*Error](err); ok && c.GoneOnRetry(e) {
				return nil
			}
		}
		if err == nil || !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (cl *Client) once(ctx context.Context, c Call, payload []byte) error {
	fail := func(status int, detail string, cause error) *Error {
		return &Error{Service: cl.service, Kind: ErrUnavailable, Op: c.Method + " " + c.Path, Status: status, Detail: detail, cause: cause}
	}
	u := cl.base + c.Path
	if len(c.Query) > 0 {
		u += "?" + c.Query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	// The outbound metrics carry which upstream was called.
	labeler := &otelhttp.Labeler{}
	labeler.Add(attribute.String("upstream", cl.service))
	ctx = otelhttp.ContextWithClientLabeler(ctx, labeler)
	req, err := http.NewRequestWithContext(ctx, c.Method, u, body)
	if err != nil {
		return fmt.Errorf("%s: %w", cl.service, err)
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.Header {
		req.Header.Set(k, v)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if !c.Idempotent {
		// net/http's Transport replays a request whose reused connection
		// closed before an answer if it deems it idempotent: a GET, HEAD,
		// OPTIONS or TRACE, or any request with an Idempotency-Key header
		// (the register call's registration key), when its body can be
		// rewound with GetBody. A call the client does not mark Idempotent
		// may not be repeated (a replayed register that already acted is
		// answered "email exists"): without GetBody it is sent once, and
		// the caller gets the error. Retrying is the clients' decision.
		// (A call without a body has nothing to rewind: none of ours that
		// is not Idempotent carries an Idempotency-Key without a body.)
		req.GetBody = nil
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			// The error quotes the URL: never its query (?email= is personal data).
			ue.URL = cl.base + c.Path
		}
		e := fail(0, cl.service+" service unreachable", err)
		e.NotSent = dialFailed(err)
		return e
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fail(resp.StatusCode, "reading the answer failed", err)
	}
	if len(raw) > MaxResponseBytes {
		return fail(resp.StatusCode, "answer too large", nil)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if c.Out == nil {
			return nil
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			return fail(resp.StatusCode, "empty answer", nil)
		}
		if err := json.Unmarshal(raw, c.Out); err != nil {
			return fail(resp.StatusCode, "malformed answer", err)
		}
		return nil
	}
	e := FromResponse(c.Method+" "+c.Path, resp.StatusCode, resp.Header, raw)
	e.Service = cl.service
	return e
}
