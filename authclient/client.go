package authclient

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

// User is the auth service's user JSON.
type User struct {
	ID          string    `json:"id"`
	Email       string    `json:"email"`
	FirstName   string    `json:"first_name"`
	LastName    string    `json:"last_name"`
	PhoneNumber string    `json:"phone_number"`
	UserRole    string    `json:"user_role"`
	DateJoined  time.Time `json:"date_joined"`
}

// UnmarshalJSON accepts the id as a string or a number (a Django service with
// integer keys), always keeping it as a string.
func (u *User) UnmarshalJSON(b []byte) error {
	type plain User
	var aux struct {
		plain
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*u = User(aux.plain)
	u.ID = rawID(aux.ID)
	return nil
}

func rawID(r json.RawMessage) string {
	var s string
	if json.Unmarshal(r, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(r, &n) == nil {
		return n.String()
	}
	return ""
}

// MaxResponseBytes bounds how much of an upstream answer is read.
const MaxResponseBytes = 1 << 20

// Options configures a Client.
type Options struct {
	BaseURL        string        // e.g. http://127.0.0.1:8001
	Timeout        time.Duration // per call, unless the caller's context is shorter (default 5s)
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	// Transport is the base transport (default: a tuned clone of http.DefaultTransport).
	Transport http.RoundTripper
}

// Client is a typed client of the auth service's contract.
type Client struct {
	base    string
	timeout time.Duration
	http    *http.Client
}

// New returns a client whose calls are traced by an otelhttp transport that
// propagates the W3C trace context.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	base := o.Transport
	if base == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 256
		t.MaxIdleConnsPerHost = 128
		t.IdleConnTimeout = 90 * time.Second
		base = t
	}
	var topts []otelhttp.Option
	if o.TracerProvider != nil {
		topts = append(topts, otelhttp.WithTracerProvider(o.TracerProvider))
	}
	if o.Propagator != nil {
		topts = append(topts, otelhttp.WithPropagators(o.Propagator))
	}
	topts = append(topts, otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return "auth " + r.Method
	}))
	return &Client{
		base:    o.BaseURL,
		timeout: o.Timeout,
		http:    &http.Client{Transport: otelhttp.NewTransport(base, topts...)},
	}
}

// call describes one request to the auth service.
type call struct {
	method     string
	path       string
	query      url.Values
	token      string // bearer token, optional
	body       any    // JSON-encoded when non-nil
	out        any    // decoded from a 2xx answer when non-nil
	idempotent bool   // may be retried on network errors and 5xx
	// goneOnRetry, for a DELETE, recognises the answer of a retry whose
	// earlier attempt already did the work (the thing is gone): success.
	goneOnRetry func(*Error) bool
}

const maxAttempts = 3

// do performs c with the per-call timeout, retrying idempotent calls with
// backoff on unavailability, and maps failures to the package's errors.
func (cl *Client) do(ctx context.Context, c call) error {
	ctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	var payload []byte
	if c.body != nil {
		var err error
		if payload, err = json.Marshal(c.body); err != nil {
			return fmt.Errorf("authclient: encode %s: %w", c.path, err)
		}
	}
	attempts := 1
	if c.idempotent {
		attempts = maxAttempts
	}
	backoff := 50 * time.Millisecond
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(backoff):
			}
			backoff *= 3
		}
		err = cl.once(ctx, c, payload)
		if i > 0 && c.goneOnRetry != nil {
			if e, ok := errors.AsType[*Error](err); ok && c.goneOnRetry(e) {
				return nil
			}
		}
		if err == nil || !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

func (cl *Client) once(ctx context.Context, c call, payload []byte) error {
	u := cl.base + c.path
	if len(c.query) > 0 {
		u += "?" + c.query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, u, body)
	if err != nil {
		return fmt.Errorf("authclient: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if addr := clientAddr(ctx); addr != "" {
		req.Header.Set("X-Forwarded-For", addr)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := cl.http.Do(req)
	if err != nil {
		return &Error{Kind: ErrUnavailable, Op: c.method + " " + c.path, Detail: "auth service unreachable", cause: err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return &Error{Kind: ErrUnavailable, Op: c.method + " " + c.path, Status: resp.StatusCode, Detail: "reading the answer failed", cause: err}
	}
	if len(raw) > MaxResponseBytes {
		return &Error{Kind: ErrUnavailable, Op: c.method + " " + c.path, Status: resp.StatusCode, Detail: "answer too large"}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if c.out == nil || len(bytes.TrimSpace(raw)) == 0 {
			if c.out != nil {
				return &Error{Kind: ErrUnavailable, Op: c.method + " " + c.path, Status: resp.StatusCode, Detail: "empty answer"}
			}
			return nil
		}
		if err := json.Unmarshal(raw, c.out); err != nil {
			return &Error{Kind: ErrUnavailable, Op: c.method + " " + c.path, Status: resp.StatusCode, Detail: "malformed answer", cause: err}
		}
		return nil
	}
	return errorFromResponse(c.method+" "+c.path, resp, raw)
}

// Profile returns the user the access token belongs to.
func (cl *Client) Profile(ctx context.Context, token string) (*User, error) {
	var u User
	if err := cl.do(ctx, call{method: http.MethodGet, path: "/api/auth/profile/", token: token, out: &u, idempotent: true}); err != nil {
		return nil, err
	}
	return &u, nil
}

// GetUser returns a user by id; the token must be a staff or service token.
func (cl *Client) GetUser(ctx context.Context, token, id string) (*User, error) {
	var u User
	if err := cl.do(ctx, call{method: http.MethodGet, path: "/api/auth/users/" + url.PathEscape(id) + "/", token: token, out: &u, idempotent: true}); err != nil {
		return nil, err
	}
	return &u, nil
}

type clientAddrKey struct{}

// WithClientAddr returns ctx carrying the address of the end user a gateway
// calls on behalf of. Calls made with it send the address as X-Forwarded-For,
// so the auth service rate-limits registrations and logins per end user,
// not per gateway (it believes the header only from its TRUSTED_PROXIES).
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

func clientAddr(ctx context.Context) string {
	a, _ := ctx.Value(clientAddrKey{}).(string)
	return a
}
