package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/acme/customer-platform/internal/contract"
)

// EnsureAdmin creates an admin account with the email and password unless a
// user with the email exists (which is left as it is). It reports whether it
// created one.
func (s *Service) EnsureAdmin(ctx context.Context, email, pw string) (bool, error) {
	f := Fields{}
	e := cleanEmail(f, FieldEmail, &email, true)
	if msgs := s.d.Rules.Validate(pw, UserAttributes{Email: e}); len(msgs) > 0 {
		f[FieldPassword] = msgs
	}
	if err := f.Err(); err != nil {
		return false, fmt.Errorf("bootstrap admin: %w", err)
	}
	if _, err := s.d.Store.UserByEmail(ctx, e); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, fmt.Errorf("bootstrap admin: %w", err)
	}
	h, err := s.d.Hasher.Hash(ctx, pw)
	if err != nil {
		return false, fmt.Errorf("bootstrap admin: %w", err)
	}
	u := User{ID: contract.NewID(), Email: e, FirstName: "Admin", Role: contract.RoleAdmin, DateJoined: s.now(), PasswordHash: h}
	if err := s.d.Store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, ErrEmailTaken) {
			return false, nil // another replica created it
		}
		return false, fmt.Errorf("bootstrap admin: %w", err)
	}
	return true, nil
}
