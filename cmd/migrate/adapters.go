package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/customer/legacy"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
)

// authDirectory is the auth service as the migration uses it, called with
// the migration's cached service token.
type authDirectory struct {
	client *authclient.Client
	tokens *authclient.ServiceTokens
}

var (
	_ legacy.Directory   = authDirectory{}
	_ legacy.UserCreator = authDirectory{}
)

// withToken calls fn with the service token; when the auth service refuses
// the token (it expired, the key was rotated), it fetches a new one and
// calls fn once more. A 429 is waited out a few times.
func (a authDirectory) withToken(ctx context.Context, fn func(token string) error) error {
	retried := false
	for attempt := 0; ; attempt++ {
		tok, err := a.tokens.Token(ctx)
		if err != nil {
			return fmt.Errorf("service token of %s: %w", a.tokens.ClientID(), err)
		}
		err = fn(tok)
		var ae *authclient.Error
		switch {
		case errors.Is(err, authclient.ErrUnauthorized) && !retried:
			retried = true
			a.tokens.Invalidate(tok)
			continue
		case errors.Is(err, authclient.ErrRateLimited) && attempt < 5 && errors.As(err, &ae):
			select {
			case <-ctx.Done():
				return err
			case <-time.After(min(ae.RetryAfter, 30*time.Second)):
			}
			continue
		}
		return err
	}
}

// lookup runs one user lookup with the service token: found is false when
// the auth service has no such user.
func (a authDirectory) lookup(ctx context.Context, get func(token string) (*authclient.User, error)) (u *authclient.User, found bool, err error) {
	err = a.withToken(ctx, func(tok string) (err error) {
		u, err = get(tok)
		return err
	})
	switch {
	case errors.Is(err, authclient.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	return u, true, nil
}

func (a authDirectory) FindUserByEmail(ctx context.Context, email string) (legacy.User, bool, error) {
	u, found, err := a.lookup(ctx, func(tok string) (*authclient.User, error) {
		return a.client.FindUserByEmail(ctx, tok, email)
	})
	if !found || !strings.EqualFold(strings.TrimSpace(u.Email), email) {
		// Not found, failed, or a directory that matched loosely: not this user.
		return legacy.User{}, false, err
	}
	return legacy.User{ID: u.ID, Email: u.Email}, true, nil
}

func (a authDirectory) UserByID(ctx context.Context, id string) (legacy.User, bool, error) {
	u, found, err := a.lookup(ctx, func(tok string) (*authclient.User, error) {
		return a.client.GetUser(ctx, tok, id)
	})
	if !found {
		return legacy.User{}, false, err
	}
	return legacy.User{ID: u.ID, Email: u.Email}, true, nil
}

// CreateUser creates the user without a password: the account's password
// is unusable and must be reset.
func (a authDirectory) CreateUser(ctx context.Context, nu legacy.NewUser) (legacy.User, error) {
	var u *authclient.User
	err := a.withToken(ctx, func(tok string) (err error) {
		u, err = a.client.CreateUser(ctx, tok, authclient.CreateUserRequest{
			Email: nu.Email, FirstName: nu.FirstName, LastName: nu.LastName, PhoneNumber: nu.PhoneNumber,
		})
		return err
	})
	var ae *authclient.Error
	switch {
	case err == nil:
		return legacy.User{ID: u.ID, Email: u.Email}, nil
	case errors.Is(err, authclient.ErrValidation) && errors.As(err, &ae):
		for _, m := range ae.Fields["email"] {
			if strings.Contains(m, "already exists") {
				return legacy.User{}, fmt.Errorf("%w: %s", legacy.ErrUserExists, m)
			}
		}
		return legacy.User{}, fmt.Errorf("%w: %s", legacy.ErrUserRejected, fieldText(ae.Fields))
	}
	return legacy.User{}, err
}

// fieldText renders a validation body as "field: message; field: message".
func fieldText(f map[string][]string) string {
	parts := make([]string, 0, len(f))
	for _, k := range slices.Sorted(maps.Keys(f)) {
		parts = append(parts, k+": "+strings.Join(f[k], " "))
	}
	return strings.Join(parts, "; ")
}

// profileStore adapts the customer service's Mongo store to the migration.
type profileStore struct{ *custmongo.Store }

var (
	_ legacy.ProfileWriter = profileStore{}
	_ legacy.ProfileReader = profileStore{}
)

func (s profileStore) UpsertProfiles(ctx context.Context, ps []customer.Customer, now time.Time) ([]legacy.WriteResult, error) {
	res, err := s.ImportProfiles(ctx, ps, now)
	if err != nil {
		return nil, err
	}
	out := make([]legacy.WriteResult, len(res))
	for i, r := range res {
		out[i] = legacy.WriteResult{Inserted: r.Inserted, Err: r.Err}
	}
	return out, nil
}
