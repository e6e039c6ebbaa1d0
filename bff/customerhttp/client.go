// Package customerhttp is a typed HTTP client of the customer service's
// contract, for the BFF: create, read, update and delete the caller's own
// profile, check_profile_exists, and delete a profile by id (service
// accounts). Calls are traced by an otelhttp transport that propagates the
// W3C trace context, bounded in time (per call, unless the caller's context
// is shorter) and in answer size, and fail with *Error values whose Kind is
// matched with errors.Is.
package customerhttp

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
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// MaxResponseBytes bounds how much of an answer is read.
const MaxResponseBytes = 1 << 20

// Options configures a Client.
type Options struct {
	BaseURL        string        // e.g. http://127.0.0.1:8002
	Timeout        time.Duration // per call (default 3s)
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// Transport is the base transport (default: a tuned clone of http.DefaultTransport).
	Transport http.RoundTripper
}

// Client is a typed client of the customer service.
type Client struct {
	base    string
	timeout time.Duration
	http    *http.Client
}

// New returns a client.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	base := o.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 256
		t.MaxIdleConnsPerHost = 128
		t.IdleConnTimeout = 90 * time.Second
		base = t
	}
	topts := []otelhttp.Option{otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return "customer " + r.Method
	})}
	if o.TracerProvider != nil {
		topts = append(topts, otelhttp.WithTracerProvider(o.TracerProvider))
	}
	if o.Propagator != nil {
		topts = append(topts, otelhttp.WithPropagators(o.Propagator))
	}
	return &Client{
		base:    o.BaseURL,
		timeout: o.Timeout,
		http:    &http.Client{Transport: otelhttp.NewTransport(base, topts...)},
	}
}

// Profile is a customer profile: its ids and the JSON as answered.
type Profile struct {
	ID     string
	UserID string
	Raw    json.RawMessage
}

// UnmarshalJSON keeps the raw document and reads the ids.
func (p *Profile) UnmarshalJSON(b []byte) error {
	var ids struct {
		ID     string `json:"id"`
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal(b, &ids); err != nil {
		return err
	}
	if ids.ID == "" {
		return errors.New("customerhttp: profile without an id")
	}
	p.ID, p.UserID, p.Raw = ids.ID, ids.UserID, bytes.Clone(b)
	return nil
}

const basePath = "/api/v1/customers/"

// call describes one request.
type call struct {
	method     string
	path       string // below basePath
	token      string
	body       any
	out        any
	idempotent bool // safe to retry on unavailability
}

// CreateProfile creates the token owner's profile (201). A profile that
// exists already is ErrConflict. Never retried: a retry is the caller's
// decision (it is safe: the second create is a 409).
func (c *Client) CreateProfile(ctx context.Context, token string, fields map[string]json.RawMessage) (*Profile, error) {
	var p Profile
	if err := c.do(ctx, call{method: http.MethodPost, path: "profile/create/", token: token, body: fields, out: &p}); err != nil {
		return nil, err
	}
	return &p, nil
}

// Profile returns the token owner's profile; ErrNotFound when none.
func (c *Client) Profile(ctx context.Context, token string) (*Profile, error) {
	var p Profile
	if err := c.do(ctx, call{method: http.MethodGet, path: "profile/", token: token, out: &p, idempotent: true}); err != nil {
		return nil, err
	}
	return &p, nil
}

// UpdateProfile PATCHes the token owner's profile with the fields sent.
func (c *Client) UpdateProfile(ctx context.Context, token string, fields map[string]json.RawMessage) (*Profile, error) {
	var p Profile
	if err := c.do(ctx, call{method: http.MethodPatch, path: "profile/update/", token: token, body: fields, out: &p}); err != nil {
		return nil, err
	}
	return &p, nil
}

// DeleteProfile deletes the token owner's profile; ErrNotFound when none.
func (c *Client) DeleteProfile(ctx context.Context, token string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "profile/delete/", token: token, idempotent: true})
}

// Existence is the answer of check_profile_exists.
type Existence struct {
	Exists     bool    `json:"exists"`
	CustomerID *string `json:"customer_id"`
}

// ProfileExists asks whether a profile exists: the token owner's when
// userID is empty, else userID's (staff and service tokens).
func (c *Client) ProfileExists(ctx context.Context, token, userID string) (Existence, error) {
	var body any = struct{}{}
	if userID != "" {
		body = map[string]string{"user_id": userID}
	}
	var e Existence
	err := c.do(ctx, call{method: http.MethodPost, path: "check_profile_exists/", token: token, body: body, out: &e, idempotent: true})
	return e, err
}

// DeleteCustomer deletes a profile by id (owner, admin or service).
func (c *Client) DeleteCustomer(ctx context.Context, token, id string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: url.PathEscape(id) + "/", token: token, idempotent: true})
}

const maxAttempts = 3

// do performs cl within the per-call timeout, retrying idempotent calls
// with backoff while the service is unavailable.
func (c *Client) do(ctx context.Context, cl call) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("customerhttp: encode %s: %w", cl.path, err)
		}
	}
	attempts := 1
	if cl.idempotent {
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
		err = c.once(ctx, cl, payload)
		if err == nil || !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (c *Client) once(ctx context.Context, cl call, payload []byte) error {
	op := cl.method + " " + basePath + cl.path
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, c.base+basePath+cl.path, body)
	if err != nil {
		return fmt.Errorf("customerhttp: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.token != "" {
		req.Header.Set("Authorization", "Bearer "+cl.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &Error{Kind: ErrUnavailable, Op: op, Detail: "customer service unreachable", NotSent: notSent(err), cause: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return &Error{Kind: ErrUnavailable, Op: op, Status: resp.StatusCode, Detail: "reading the answer failed", cause: err}
	}
	if len(raw) > MaxResponseBytes {
		return &Error{Kind: ErrUnavailable, Op: op, Status: resp.StatusCode, Detail: "answer too large"}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if cl.out == nil {
			return nil
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			return &Error{Kind: ErrUnavailable, Op: op, Status: resp.StatusCode, Detail: "empty answer"}
		}
		if err := json.Unmarshal(raw, cl.out); err != nil {
			return &Error{Kind: ErrUnavailable, Op: op, Status: resp.StatusCode, Detail: "malformed answer", cause: err}
		}
		return nil
	}
	return errorFromResponse(op, resp, raw)
}
