package bffd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/breaker"
	"github.com/acme/customer-platform/customerclient"
	"github.com/acme/customer-platform/internal/upstream"
)

// The adapters below give the bff package the interfaces it declares, on
// top of the typed clients, each call through its service's breaker, and
// translate the clients' errors into bff.UpstreamError.

// upstreamIsHealthy tells the breakers which errors still show the service
// working: any answer but unavailability (a 4xx is the caller's problem).
func upstreamIsHealthy(err error) bool {
	return !errors.Is(err, upstream.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded)
}

// fromAuth translates an authclient error.
func fromAuth(err error) error { return fromUpstream(bff.ServiceAuth, err) }

// fromCustomer translates a customerclient error.
func fromCustomer(err error) error { return fromUpstream(bff.ServiceCustomer, err) }

// upstreamKinds maps the clients' error kinds to the bff ones.
var upstreamKinds = map[error]error{
	upstream.ErrValidation:   bff.ErrUpstreamInvalid,
	upstream.ErrNotFound:     bff.ErrUpstreamNotFound,
	upstream.ErrUnauthorized: bff.ErrUpstreamUnauthorized,
	upstream.ErrForbidden:    bff.ErrUpstreamForbidden,
	upstream.ErrConflict:     bff.ErrUpstreamConflict,
	upstream.ErrRateLimited:  bff.ErrUpstreamThrottled,
}

// fromUpstream translates a client error (or an open breaker) of service.
func fromUpstream(service string, err error) error {
	if err == nil {
		return nil
	}
	ue := &bff.UpstreamError{Service: service, Kind: bff.ErrUpstreamUnavailable, Err: err}
	if errors.Is(err, breaker.ErrOpen) {
		ue.NotSent = true
		return ue
	}
	if e, ok := errors.AsType[*upstream.Error](err); ok {
		ue.Status, ue.Code, ue.Detail, ue.Fields, ue.RetryAfter = e.Status, e.Code, e.Detail, e.Fields, e.RetryAfter
		if k, ok := upstreamKinds[e.Kind]; ok {
			ue.Kind = k
		}
		ue.NotSent = e.NotSent
	}
	return ue
}

// authService is bff.Auth over authclient.
type authService struct {
	c  *authclient.Client
	br *breaker.Breaker
}

var _ bff.Auth = (*authService)(nil)

// toUser converts the client's user. RegistrationKey is the key the user
// lookups report: "" from the company's Django auth service (it does not
// store it), and then the reconciler cannot prove a user its own and
// parks a saga in doubt (needs_attention) instead of deleting anything.
func toUser(u *authclient.User) bff.AuthUser {
	return bff.AuthUser{ID: u.ID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		PhoneNumber: u.PhoneNumber, UserRole: u.UserRole, DateJoined: u.DateJoined, RegistrationKey: u.RegistrationKey}
}

func (a *authService) session(s *authclient.Session, err error) (bff.AuthUser, bff.TokenPair, error) {
	if err != nil {
		return bff.AuthUser{}, bff.TokenPair{}, fromAuth(err)
	}
	return toUser(&s.User), bff.TokenPair{Access: s.Tokens.Access, Refresh: s.Tokens.Refresh}, nil
}

func (a *authService) Register(ctx context.Context, in bff.AuthRegistration) (bff.AuthUser, bff.TokenPair, error) {
	return a.session(breaker.Call(ctx, a.br, func(ctx context.Context) (*authclient.Session, error) {
		return a.c.Register(ctx, authclient.RegisterRequest{
			Email: in.Email, FirstName: in.FirstName, LastName: in.LastName, PhoneNumber: in.PhoneNumber,
			Password1: in.Password1, Password2: in.Password2,
			RegistrationKey: in.RegistrationKey, // the saga id: proof of authorship
			Deadline:        in.Deadline,        // the saga's start + the auth timeout: no user after it
		})
	}))
}

func (a *authService) Login(ctx context.Context, email, password string) (bff.AuthUser, bff.TokenPair, error) {
	return a.session(breaker.Call(ctx, a.br, func(ctx context.Context) (*authclient.Session, error) {
		return a.c.Login(ctx, email, password)
	}))
}

func (a *authService) UpdateProfile(ctx context.Context, token string, fields map[string]json.RawMessage) (bff.AuthUser, error) {
	var up authclient.ProfileUpdate
	targets := map[string]**string{"email": &up.Email, "first_name": &up.FirstName, "last_name": &up.LastName, "phone_number": &up.PhoneNumber}
	for name, raw := range fields {
		t, ok := targets[name]
		if !ok {
			return bff.AuthUser{}, fmt.Errorf("bffd: %q is not a user field", name)
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return bff.AuthUser{}, fmt.Errorf("bffd: user field %q: %w", name, err)
		}
		*t = &s
	}
	u, err := breaker.Call(ctx, a.br, func(ctx context.Context) (*authclient.User, error) {
		return a.c.UpdateProfile(ctx, token, up)
	})
	if err != nil {
		return bff.AuthUser{}, fromAuth(err)
	}
	return toUser(u), nil
}

func (a *authService) DeleteSelf(ctx context.Context, token string) error {
	return fromAuth(a.br.Do(ctx, func(ctx context.Context) error { return a.c.DeleteSelf(ctx, token) }))
}

// CurrentUser is the view loader's user source: the user JSON of the
// contract (bff.AuthUser's members), never the registration key.
func (a *authService) CurrentUser(ctx context.Context, token string) (json.RawMessage, error) {
	u, err := breaker.Call(ctx, a.br, func(ctx context.Context) (*authclient.User, error) {
		return a.c.Profile(ctx, token)
	})
	if err != nil {
		return nil, fromAuth(err)
	}
	return json.Marshal(toUser(u))
}

// authAdmin is bff.AuthAdmin over authclient with the service token.
type authAdmin struct {
	c      *authclient.Client
	tokens *authclient.ServiceTokens
	br     *breaker.Breaker
}

var _ bff.AuthAdmin = (*authAdmin)(nil)

func (a *authAdmin) token(ctx context.Context) (string, error) {
	return breaker.Call(ctx, a.br, a.tokens.Token)
}

func (a *authAdmin) FindUserByEmail(ctx context.Context, email string) (*bff.AuthUser, error) {
	tok, err := a.token(ctx)
	if err != nil {
		return nil, fromAuth(err)
	}
	u, err := breaker.Call(ctx, a.br, func(ctx context.Context) (*authclient.User, error) {
		return a.c.FindUserByEmail(ctx, tok, email)
	})
	if errors.Is(err, authclient.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fromAuth(err)
	}
	out := toUser(u)
	return &out, nil
}

func (a *authAdmin) DeleteUser(ctx context.Context, id string) error {
	tok, err := a.token(ctx)
	if err != nil {
		return fromAuth(err)
	}
	return fromAuth(a.br.Do(ctx, func(ctx context.Context) error { return a.c.DeleteUser(ctx, tok, id) }))
}

// customers is bff.Customers over customerclient.
type customers struct {
	c  *customerclient.Client
	br *breaker.Breaker
}

var _ bff.Customers = (*customers)(nil)

func toProfile(p *customerclient.Profile, err error) (bff.CustomerProfile, error) {
	if err != nil {
		return bff.CustomerProfile{}, fromCustomer(err)
	}
	return bff.CustomerProfile{ID: p.ID, UserID: p.UserID, Raw: p.Raw}, nil
}

func (c *customers) CreateProfile(ctx context.Context, token string, fields map[string]json.RawMessage) (bff.CustomerProfile, error) {
	return toProfile(breaker.Call(ctx, c.br, func(ctx context.Context) (*customerclient.Profile, error) {
		return c.c.CreateProfile(ctx, token, fields)
	}))
}

func (c *customers) Profile(ctx context.Context, token string) (bff.CustomerProfile, error) {
	return toProfile(breaker.Call(ctx, c.br, func(ctx context.Context) (*customerclient.Profile, error) {
		return c.c.Profile(ctx, token)
	}))
}

func (c *customers) UpdateProfile(ctx context.Context, token string, fields map[string]json.RawMessage) (bff.CustomerProfile, error) {
	return toProfile(breaker.Call(ctx, c.br, func(ctx context.Context) (*customerclient.Profile, error) {
		return c.c.UpdateProfile(ctx, token, fields)
	}))
}

func (c *customers) DeleteProfile(ctx context.Context, token string) error {
	return fromCustomer(c.br.Do(ctx, func(ctx context.Context) error { return c.c.DeleteProfile(ctx, token) }))
}

func (c *customers) ProfileExists(ctx context.Context, token string) (bool, string, error) {
	return existence(breaker.Call(ctx, c.br, func(ctx context.Context) (customerclient.Existence, error) {
		return c.c.ProfileExists(ctx, token, "")
	}))
}

func existence(e customerclient.Existence, err error) (bool, string, error) {
	if err != nil {
		return false, "", fromCustomer(err)
	}
	id := ""
	if e.CustomerID != nil {
		id = *e.CustomerID
	}
	return e.Exists, id, nil
}

// CurrentProfile is the view loader's profile source: the profile without
// its user data (include_user=false), which the loader fills from the user
// it loads from the auth service itself, so the customer service does not
// ask the auth service for it too.
func (c *customers) CurrentProfile(ctx context.Context, token string) (json.RawMessage, error) {
	p, err := breaker.Call(ctx, c.br, func(ctx context.Context) (*customerclient.Profile, error) {
		return c.c.ProfileWithoutUser(ctx, token)
	})
	if errors.Is(err, customerclient.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", bff.ErrNoProfile, fromCustomer(err))
	}
	if err != nil {
		return nil, fromCustomer(err)
	}
	return p.Raw, nil
}

// customersAdmin is bff.CustomersAdmin over customerclient with the service
// token (obtained through the auth service's breaker).
type customersAdmin struct {
	c      *customerclient.Client
	br     *breaker.Breaker
	tokens *authAdmin
}

var _ bff.CustomersAdmin = (*customersAdmin)(nil)

func (c *customersAdmin) ProfileExistsFor(ctx context.Context, userID string) (bool, string, error) {
	tok, err := c.tokens.token(ctx)
	if err != nil {
		return false, "", fromAuth(err)
	}
	return existence(breaker.Call(ctx, c.br, func(ctx context.Context) (customerclient.Existence, error) {
		return c.c.ProfileExists(ctx, tok, userID)
	}))
}

func (c *customersAdmin) DeleteCustomer(ctx context.Context, id string) error {
	tok, err := c.tokens.token(ctx)
	if err != nil {
		return fromAuth(err)
	}
	return fromCustomer(c.br.Do(ctx, func(ctx context.Context) error { return c.c.DeleteCustomer(ctx, tok, id) }))
}
