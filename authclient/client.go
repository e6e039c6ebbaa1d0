package authclient

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"time"

	"github.com/acme/customer-platform/internal/upstream"
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
	// RegistrationKey is the Idempotency-Key the user's registration was
	// sent with (RegisterRequest.RegistrationKey), as the user lookups
	// (GetUser, FindUserByEmail) return it to staff and services: proof
	// that the user is the one that registration created. "" when the
	// user has none (null), and always "" from the company's Django auth
	// service, which does not return the member (an extension of the
	// contract), and in the user's own answers (register, login, profile).
	// Omitted when "" as the client encodes a user, so a user of the
	// user's own answers encodes as the contract's user JSON.
	RegistrationKey string `json:"registration_key,omitempty"`
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

// IdempotencyKeyHeader carries RegisterRequest.RegistrationKey.
const IdempotencyKeyHeader = "Idempotency-Key"

// RegistrationDeadlineHeader carries RegisterRequest.Deadline.
const RegistrationDeadlineHeader = "Registration-Deadline"

// deadlineLayout is RFC 3339 with milliseconds, as Registration-Deadline
// is sent.
const deadlineLayout = "2006-01-02T15:04:05.000Z07:00"

// MaxResponseBytes bounds how much of an upstream answer is read.
const MaxResponseBytes = upstream.MaxResponseBytes

// Options configures a Client: the auth service's base URL (e.g.
// http://127.0.0.1:8001), the per-call timeout (default 5s), telemetry and
// the base transport.
type Options = upstream.Options

// Client is a typed client of the auth service's contract.
type Client struct {
	up *upstream.Client
}

// New returns a client whose calls are traced by an otelhttp transport that
// propagates the W3C trace context.
func New(o Options) *Client {
	return &Client{up: upstream.New("auth", o, 5*time.Second)}
}

// do performs c with the per-call timeout, retrying idempotent calls with
// backoff on unavailability; failures are *Error values. A context made by
// WithClientAddr sends the end user's address as X-Forwarded-For.
func (cl *Client) do(ctx context.Context, c upstream.Call) error {
	if addr := clientAddr(ctx); addr != "" {
		c.Header = maps.Clone(c.Header)
		if c.Header == nil {
			c.Header = map[string]string{}
		}
		c.Header["X-Forwarded-For"] = addr
	}
	return cl.up.Do(ctx, c)
}

// Profile returns the user the access token belongs to.
func (cl *Client) Profile(ctx context.Context, token string) (*User, error) {
	var u User
	if err := cl.do(ctx, upstream.Call{Method: http.MethodGet, Path: "/api/auth/profile/", Token: token, Out: &u, Idempotent: true}); err != nil {
		return nil, err
	}
	return &u, nil
}

// GetUser returns a user by id; the token must be a staff or service token.
func (cl *Client) GetUser(ctx context.Context, token, id string) (*User, error) {
	var u User
	if err := cl.do(ctx, upstream.Call{Method: http.MethodGet, Path: "/api/auth/users/" + url.PathEscape(id) + "/", Token: token, Out: &u, Idempotent: true}); err != nil {
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
