package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/acme/customer-platform/internal/contract"
)

// canRead: employees, admins and services read users; canWrite: admins and
// services create and delete them.
func canRead(p Principal) bool  { return p.IsStaff() || p.IsService() }
func canWrite(p Principal) bool { return p.Role == contract.RoleAdmin || p.IsService() }

// GetUser returns a user by id (staff and services).
func (s *Service) GetUser(ctx context.Context, p Principal, id string) (User, error) {
	if !canRead(p) {
		return User{}, ErrForbidden
	}
	if !contract.ValidID(id) {
		return User{}, ErrNotFound
	}
	u, err := s.d.Store.UserByID(ctx, strings.ToLower(id))
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// FindByEmail returns the users with the (normalised) email: none or one.
func (s *Service) FindByEmail(ctx context.Context, p Principal, email *string) ([]User, error) {
	if !canRead(p) {
		return nil, ErrForbidden
	}
	f := Fields{}
	e := cleanText(f, FieldEmail, email, true, false, MaxEmailLength)
	if err := f.Err(); err != nil {
		return nil, err
	}
	u, err := s.d.Store.UserByEmail(ctx, contract.NormalizeEmail(e))
	if errors.Is(err, ErrNotFound) {
		return []User{}, nil
	}
	if err != nil {
		return nil, err
	}
	return []User{u}, nil
}

// CreateUser creates an account for someone else (admins and services; only
// an admin may choose the role). Without a password the account has an
// unusable one.
func (s *Service) CreateUser(ctx context.Context, p Principal, in CreateUserInput) (User, error) {
	if err := AuthorizeCreateUser(p, in.Role != nil); err != nil {
		return User{}, err
	}
	f := Fields{}
	u, pw := in.Validate(s.d.Rules, f)
	if u.Email != "" && len(f[FieldEmail]) == 0 {
		if err := s.checkEmailFree(ctx, f, u.Email, ""); err != nil {
			return User{}, err
		}
	}
	if err := f.Err(); err != nil {
		return User{}, err
	}
	if pw != "" {
		h, err := s.d.Hasher.Hash(ctx, pw)
		if err != nil {
			return User{}, fmt.Errorf("hash password: %w", err)
		}
		u.PasswordHash = h
	} else {
		u.PasswordHash = UnusablePasswordPrefix + strings.ReplaceAll(contract.NewID(), "-", "")
	}
	u.ID, u.DateJoined = contract.NewID(), s.now()
	if err := s.create(ctx, u); err != nil {
		return User{}, err
	}
	return u, nil
}

// AuthorizeCreateUser is CreateUser's permission rule: admins and services
// create accounts, only admins choose the role.
func AuthorizeCreateUser(p Principal, setsRole bool) error {
	if !canWrite(p) || (setsRole && p.Role != contract.RoleAdmin) {
		return ErrForbidden
	}
	return nil
}

// DeleteUser deletes an account by id (admins and services).
func (s *Service) DeleteUser(ctx context.Context, p Principal, id string) error {
	if !canWrite(p) {
		return ErrForbidden
	}
	if !contract.ValidID(id) {
		return ErrNotFound
	}
	id = strings.ToLower(id)
	if err := s.d.Store.DeleteUser(ctx, id); err != nil {
		return err
	}
	s.publish(ctx, id, OpDelete)
	return nil
}
