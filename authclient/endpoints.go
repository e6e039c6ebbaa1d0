package authclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/acme/customer-platform/internal/upstream"
)

// Tokens are an access token and, when the service hands one out, a refresh
// token. A refresh without rotation answers only {"access"}: Refresh is then "".
type Tokens struct {
	Access  string `json:"access"`
	Refresh string `json:"refresh,omitempty"`
}

// Session is register's and login's answer: the user and their tokens.
type Session struct {
	User   User
	Tokens Tokens
}

// UnmarshalJSON reads the user JSON with its "tokens" member.
func (s *Session) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &s.User); err != nil {
		return err
	}
	var aux struct {
		Tokens Tokens `json:"tokens"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	s.Tokens = aux.Tokens
	return nil
}

// RegisterRequest is the body of POST /api/auth/register/ and its
// Idempotency-Key header.
type RegisterRequest struct {
	Email       string `json:"email"`
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	PhoneNumber string `json:"phone_number"`
	Password1   string `json:"password1"`
	Password2   string `json:"password2"`
	// RegistrationKey, when not "", is sent as the Idempotency-Key header
	// (never in the body): 1 to 255 visible ASCII characters, stored with
	// the user, and returned by the user lookups as User.RegistrationKey.
	// It proves authorship only; a second Register of the email, with the
	// same key or another, still fails with "user with this email already
	// exists.". The company's Django auth service ignores the header.
	RegistrationKey string `json:"-"`
	// Deadline, when not zero, is sent as the Registration-Deadline header
	// (RFC 3339 in UTC, truncated to milliseconds): the auth service does
	// not create the user once it has passed (checked immediately before
	// the insert) and answers an error DeadlineExceeded reports. The
	// company's Django auth service ignores the header: against it, a user
	// may still be created after the deadline.
	Deadline time.Time `json:"-"`
}

// ProfileUpdate is the body of PATCH /api/auth/profile/update/: only the
// non-nil fields are sent.
type ProfileUpdate struct {
	Email       *string `json:"email,omitempty"`
	FirstName   *string `json:"first_name,omitempty"`
	LastName    *string `json:"last_name,omitempty"`
	PhoneNumber *string `json:"phone_number,omitempty"`
}

// CreateUserRequest is the body of POST /api/auth/users/. Role (admins only)
// and Password are optional; without a password the account has an unusable
// one and must be reset.
type CreateUserRequest struct {
	Email       string `json:"email"`
	FirstName   string `json:"first_name"`
	LastName    string `json:"last_name"`
	PhoneNumber string `json:"phone_number"`
	Role        string `json:"user_role,omitempty"`
	Password    string `json:"password,omitempty"`
}

// ServiceToken is a service account's access token.
type ServiceToken struct {
	Access    string
	ExpiresAt time.Time
}

// Register creates a customer account. Never retried, nor replayed by the
// transport: a second attempt after an unknown outcome would answer "email
// exists" (with or without a registration key); look the user up instead,
// and compare its RegistrationKey with the one sent. With a Deadline, a
// user the auth service has not inserted by then is never created: a
// lookup after the deadline (plus the clocks' skew) that finds no user is
// final, against our auth service.
func (cl *Client) Register(ctx context.Context, r RegisterRequest) (*Session, error) {
	var s Session
	header := map[string]string{}
	if r.RegistrationKey != "" {
		header[IdempotencyKeyHeader] = r.RegistrationKey
	}
	if !r.Deadline.IsZero() {
		header[RegistrationDeadlineHeader] = r.Deadline.UTC().Truncate(time.Millisecond).Format(deadlineLayout)
	}
	if err := cl.do(ctx, upstream.Call{Method: http.MethodPost, Path: "/api/auth/register/", Header: header, Body: r, Out: &s}); err != nil {
		return nil, err
	}
	return &s, nil
}

// Login exchanges credentials for the user and tokens. Never retried.
func (cl *Client) Login(ctx context.Context, email, password string) (*Session, error) {
	var s Session
	body := map[string]string{"email": email, "password": password}
	if err := cl.do(ctx, upstream.Call{Method: http.MethodPost, Path: "/api/auth/login/", Body: body, Out: &s}); err != nil {
		return nil, err
	}
	return &s, nil
}

// Refresh exchanges a refresh token for a new access token (and, with
// rotation, a new refresh token; the old one is then unusable).
func (cl *Client) Refresh(ctx context.Context, refresh string) (*Tokens, error) {
	var t Tokens
	body := map[string]string{"refresh": refresh}
	if err := cl.do(ctx, upstream.Call{Method: http.MethodPost, Path: "/api/auth/token/refresh/", Body: body, Out: &t}); err != nil {
		return nil, err
	}
	if t.Access == "" {
		return nil, &Error{Kind: ErrUnavailable, Op: "POST /api/auth/token/refresh/", Status: http.StatusOK, Detail: "answer without an access token"}
	}
	return &t, nil
}

// Logout blacklists the refresh token; access is the caller's access token.
func (cl *Client) Logout(ctx context.Context, access, refresh string) error {
	body := map[string]string{"refresh": refresh}
	return cl.do(ctx, upstream.Call{Method: http.MethodPost, Path: "/api/auth/logout/", Token: access, Body: body})
}

// UpdateProfile changes the caller's own fields and returns the user.
func (cl *Client) UpdateProfile(ctx context.Context, token string, u ProfileUpdate) (*User, error) {
	var out User
	if err := cl.do(ctx, upstream.Call{Method: http.MethodPatch, Path: "/api/auth/profile/update/", Token: token, Body: u, Out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteSelf deletes the caller's own account. Retried on unavailability; a
// retry that finds the account gone counts as done.
func (cl *Client) DeleteSelf(ctx context.Context, token string) error {
	return cl.do(ctx, upstream.Call{
		Method: http.MethodDelete, Path: "/api/auth/profile/delete/", Token: token, Idempotent: true,
		GoneOnRetry: func(e *Error) bool { return e.Status == http.StatusUnauthorized && e.Code == "user_not_found" },
	})
}

// FindUserByEmail returns the user with the email (staff or service token);
// an error of kind ErrNotFound when there is none.
func (cl *Client) FindUserByEmail(ctx context.Context, token, email string) (*User, error) {
	var out struct {
		Count   int    `json:"count"`
		Results []User `json:"results"`
	}
	q := url.Values{"email": {email}}
	op := "GET /api/auth/users/"
	if err := cl.do(ctx, upstream.Call{Method: http.MethodGet, Path: "/api/auth/users/", Query: q, Token: token, Out: &out, Idempotent: true}); err != nil {
		return nil, err
	}
	if len(out.Results) == 0 {
		return nil, &Error{Kind: ErrNotFound, Op: op, Status: http.StatusOK, Detail: "no user with this email"}
	}
	return &out.Results[0], nil
}

// CreateUser creates an account (admin or service token). Never retried.
func (cl *Client) CreateUser(ctx context.Context, token string, r CreateUserRequest) (*User, error) {
	var out User
	if err := cl.do(ctx, upstream.Call{Method: http.MethodPost, Path: "/api/auth/users/", Token: token, Body: r, Out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteUser deletes an account by id (admin or service token). Retried on
// unavailability; a retry that finds it gone (404) counts as done.
func (cl *Client) DeleteUser(ctx context.Context, token, id string) error {
	return cl.do(ctx, upstream.Call{
		Method: http.MethodDelete, Path: "/api/auth/users/" + url.PathEscape(id) + "/", Token: token, Idempotent: true,
		GoneOnRetry: func(e *Error) bool { return e.Status == http.StatusNotFound },
	})
}

// ServiceToken obtains a service account's access token. Prefer
// ServiceTokens, which caches and renews it.
func (cl *Client) ServiceToken(ctx context.Context, clientID, secret string) (*ServiceToken, error) {
	var out struct {
		Access    string `json:"access"`
		ExpiresIn *int64 `json:"expires_in"`
	}
	const op = "POST /api/auth/token/service/"
	body := map[string]string{"client_id": clientID, "client_secret": secret}
	start := time.Now()
	if err := cl.do(ctx, upstream.Call{Method: http.MethodPost, Path: "/api/auth/token/service/", Body: body, Out: &out}); err != nil {
		return nil, err
	}
	if out.Access == "" {
		return nil, &Error{Kind: ErrUnavailable, Op: op, Status: http.StatusOK, Detail: "answer without an access token"}
	}
	st := &ServiceToken{Access: out.Access}
	switch exp, ok := unverifiedExpiry(out.Access); {
	case ok:
		st.ExpiresAt = exp
	case out.ExpiresIn != nil && *out.ExpiresIn > 0:
		st.ExpiresAt = start.Add(time.Duration(*out.ExpiresIn) * time.Second)
	default:
		st.ExpiresAt = start.Add(time.Minute)
	}
	return st, nil
}

// ListUsersRequest is a page of GET /api/auth/users/ (the keyset listing):
// users in id order with an id after After ("" from the start) and the
// role Role ("" any), PageSize at a time (0: the service's default, 100;
// at most 500).
type ListUsersRequest struct {
	Role     string
	After    string
	PageSize int
}

// UserPage is a page of the listing: its users and the id to list after
// for the following page ("" after the last page).
type UserPage struct {
	Users []User
	Next  string
}

// ErrListingUnsupported is the error of ListUsers against an auth service
// without the keyset listing (a Django deployment that did not add it: its
// GET /api/auth/users/ wants an email, or pages without `after`).
var ErrListingUnsupported = errors.New("authclient: the auth service has no keyset user listing (GET /api/auth/users/?after=)")

// ListUsers reads one page of the user listing (staff or service token).
func (cl *Client) ListUsers(ctx context.Context, token string, r ListUsersRequest) (*UserPage, error) {
	const op = "GET /api/auth/users/"
	q := url.Values{}
	if r.Role != "" {
		q.Set("user_role", r.Role)
	}
	if r.After != "" {
		q.Set("after", r.After)
	}
	if r.PageSize > 0 {
		q.Set("page_size", strconv.Itoa(r.PageSize))
	}
	var out struct {
		Next json.RawMessage `json:"next"` // "null" on the last page: present

		Results *[]User `json:"results"`
	}
	err := cl.do(ctx, upstream.Call{Method: http.MethodGet, Path: "/api/auth/users/", Query: q, Token: token, Out: &out, Idempotent: true})
	if errors.Is(err, ErrValidation) || errors.Is(err, ErrNotFound) {
		// A lookup by email only (400: email required), or no such route.
		return nil, fmt.Errorf("%w: %w", ErrListingUnsupported, err)
	}
	if err != nil {
		return nil, err
	}
	if out.Results == nil || len(out.Next) == 0 {
		return nil, fmt.Errorf("%w: an answer without next and results", ErrListingUnsupported)
	}
	page := &UserPage{Users: *out.Results}
	var next *string
	if err := json.Unmarshal(out.Next, &next); err != nil {
		return nil, &Error{Kind: ErrUnavailable, Op: op, Status: http.StatusOK, Detail: "next is not a string or null"}
	}
	if next != nil {
		u, err := url.Parse(*next)
		if err != nil || u.Query().Get("after") == "" {
			return nil, fmt.Errorf("%w: next %q has no after", ErrListingUnsupported, *next)
		}
		page.Next = u.Query().Get("after")
		if len(page.Users) == 0 || page.Next <= r.After {
			return nil, &Error{Kind: ErrUnavailable, Op: op, Status: http.StatusOK, Detail: "next does not move forward"}
		}
	}
	return page, nil
}
