// Package customerclient is what another service needs to talk to the
// customer service: a typed HTTP client of its contract (the twin of
// authclient). The BFF uses it, and so can any service that calls the
// customer endpoints directly: create, read (with or without the user data
// merged in), update and delete the token owner's profile,
// check_profile_exists, read a profile by id, record a service
// (increment_service), and delete a profile by id. Calls are traced by an
// otelhttp transport that propagates the W3C trace context, bounded in time
// (per call, unless the caller's context is shorter) and in answer size,
// and fail with *Error values whose Kind is matched with errors.Is. It
// works against the company's Django customer service and against our Go
// one alike.
package customerclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/acme/customer-platform/internal/upstream"
)

// MaxResponseBytes bounds how much of an answer is read.
const MaxResponseBytes = upstream.MaxResponseBytes

// Options configures a Client: the customer service's base URL (e.g.
// http://127.0.0.1:8002), the per-call timeout (default 3s), telemetry and
// the base transport.
type Options = upstream.Options

// Client is a typed client of the customer service.
type Client struct {
	up *upstream.Client
}

// New returns a client.
func New(o Options) *Client {
	return &Client{up: upstream.New("customer", o, 3*time.Second)}
}

// Profile is a customer profile: its ids and the JSON as answered, cut
// to the contract's members.
type Profile struct {
	ID     string
	UserID string
	Raw    json.RawMessage
}

// profileMembers are the members of the contract's customer JSON (the
// customer service's Customer schema; a test holds the two equal). Raw
// keeps only these: a member the service adds by mistake — an internal
// field, a secret — is never passed on by a caller that forwards Raw
// (the BFF's merged view and registration answer).
var profileMembers = map[string]bool{
	"id": true, "user_id": true,
	"street_address": true, "city": true, "state": true, "postal_code": true, "country": true,
	"company_name": true, "business_type": true, "tax_id": true,
	"emergency_contact_name": true, "emergency_contact_phone": true, "emergency_contact_relationship": true,
	"preferred_contact_method": true, "notification_preferences": true,
	"is_verified": true, "customer_since": true, "total_services": true, "last_service_date": true,
	"created_at": true, "updated_at": true,
	"email": true, "first_name": true, "last_name": true, "phone_number": true,
}

// UnmarshalJSON reads the ids and keeps the document's contract members
// (one decoding of the document: its members, the ids among them).
func (p *Profile) UnmarshalJSON(b []byte) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return err
	}
	var id, userID string
	if err := json.Unmarshal(members["id"], &id); err != nil || id == "" {
		return errors.New("customerclient: profile without an id")
	}
	if raw, ok := members["user_id"]; ok {
		if err := json.Unmarshal(raw, &userID); err != nil {
			return fmt.Errorf("customerclient: profile user_id: %w", err)
		}
	}
	p.ID, p.UserID, p.Raw = id, userID, bytes.Clone(b)
	for k := range members {
		if !profileMembers[k] {
			delete(members, k)
			p.Raw = nil
		}
	}
	if p.Raw == nil { // something was dropped: re-encoded, members in key order
		raw, err := json.Marshal(members)
		if err != nil {
			return err
		}
		p.Raw = raw
	}
	return nil
}

const basePath = "/api/v1/customers/"

// CreateProfile creates the token owner's profile (201). A profile that
// exists already is ErrConflict. Never retried: a retry is the caller's
// decision (it is safe: the second create is a 409).
func (c *Client) CreateProfile(ctx context.Context, token string, fields map[string]json.RawMessage) (*Profile, error) {
	var p Profile
	if err := c.do(ctx, upstream.Call{Method: http.MethodPost, Path: "profile/create/", Token: token, Body: fields, Out: &p}); err != nil {
		return nil, err
	}
	return &p, nil
}

// Profile returns the token owner's profile with their user data merged
// in (email, names, phone number); ErrNotFound when none.
func (c *Client) Profile(ctx context.Context, token string) (*Profile, error) {
	return c.profile(ctx, token, nil)
}

// ProfileWithoutUser returns the token owner's profile without their user
// data (GET profile/?include_user=false): the same members, email,
// first_name, last_name and phone_number null, and the customer service
// does not call the auth service for them. For a caller that has the user
// already (the BFF's merged view). The Django customer service ignores the
// parameter and merges them anyway. ErrNotFound when there is no profile.
func (c *Client) ProfileWithoutUser(ctx context.Context, token string) (*Profile, error) {
	return c.profile(ctx, token, url.Values{"include_user": {"false"}})
}

func (c *Client) profile(ctx context.Context, token string, q url.Values) (*Profile, error) {
	var p Profile
	if err := c.do(ctx, upstream.Call{Method: http.MethodGet, Path: "profile/", Query: q, Token: token, Out: &p, Idempotent: true}); err != nil {
		return nil, err
	}
	return &p, nil
}

// UpdateProfile PATCHes the token owner's profile with the fields sent.
func (c *Client) UpdateProfile(ctx context.Context, token string, fields map[string]json.RawMessage) (*Profile, error) {
	var p Profile
	if err := c.do(ctx, upstream.Call{Method: http.MethodPatch, Path: "profile/update/", Token: token, Body: fields, Out: &p}); err != nil {
		return nil, err
	}
	return &p, nil
}

// DeleteProfile deletes the token owner's profile; ErrNotFound when none.
func (c *Client) DeleteProfile(ctx context.Context, token string) error {
	return c.do(ctx, upstream.Call{Method: http.MethodDelete, Path: "profile/delete/", Token: token, Idempotent: true})
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
	err := c.do(ctx, upstream.Call{Method: http.MethodPost, Path: "check_profile_exists/", Token: token, Body: body, Out: &e, Idempotent: true})
	return e, err
}

// Customer returns the profile with id (its owner, staff or a service
// account); ErrNotFound when there is none or the caller may not see it.
func (c *Client) Customer(ctx context.Context, token, id string) (*Profile, error) {
	var p Profile
	if err := c.do(ctx, upstream.Call{Method: http.MethodGet, Path: url.PathEscape(id) + "/", Token: token, Out: &p, Idempotent: true}); err != nil {
		return nil, err
	}
	return &p, nil
}

// Service is the optional body of increment_service: what was done, and when.
type Service struct {
	ServiceType string     `json:"service_type,omitempty"`
	Notes       string     `json:"notes,omitempty"`
	PerformedAt *time.Time `json:"performed_at,omitempty"`
}

// IncrementService records one service of the profile with id (employee,
// admin or service account) and returns the profile as it is after it.
// With an idempotency key the service counts the call once however often
// it is sent, so the call is retried while the service is unavailable;
// without one it is never retried.
func (c *Client) IncrementService(ctx context.Context, token, id, idempotencyKey string, s Service) (*Profile, error) {
	var p Profile
	cl := upstream.Call{Method: http.MethodPost, Path: url.PathEscape(id) + "/increment_service/", Token: token, Body: s, Out: &p}
	if idempotencyKey != "" {
		cl.Header = map[string]string{"Idempotency-Key": idempotencyKey}
		cl.Idempotent = true
	}
	if err := c.do(ctx, cl); err != nil {
		return nil, err
	}
	return &p, nil
}

// DeleteCustomer deletes a profile by id (owner, admin or service).
func (c *Client) DeleteCustomer(ctx context.Context, token, id string) error {
	return c.do(ctx, upstream.Call{Method: http.MethodDelete, Path: url.PathEscape(id) + "/", Token: token, Idempotent: true})
}

// do performs c within the per-call timeout, below basePath, retrying
// idempotent calls with backoff while the service is unavailable.
func (cl *Client) do(ctx context.Context, c upstream.Call) error {
	c.Path = basePath + c.Path
	return cl.up.Do(ctx, c)
}
