package auth

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/acme/customer-platform/internal/contract"
)

// canRead: employees, admins and services granted users:read read users.
func canRead(p Principal) bool { return p.IsStaff() || p.Has(ScopeUsersRead) }

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
// granted users:create create accounts, only admins choose the role.
func AuthorizeCreateUser(p Principal, setsRole bool) error {
	if p.Role != contract.RoleAdmin && !p.Has(ScopeUsersCreate) || (setsRole && p.Role != contract.RoleAdmin) {
		return ErrForbidden
	}
	return nil
}

// DeleteUser deletes an account by id: admins and services granted
// users:delete any account, services granted users:delete:customers only
// an account of the customer role.
func (s *Service) DeleteUser(ctx context.Context, p Principal, id string) error {
	anyone := p.Role == contract.RoleAdmin || p.Has(ScopeUsersDelete)
	if !anyone && !p.Has(ScopeUsersDeleteCustomers) {
		return ErrForbidden
	}
	if !contract.ValidID(id) {
		return ErrNotFound
	}
	id = strings.ToLower(id)
	if !anyone {
		// Roles never change, so the role read here is the one deleted.
		u, err := s.d.Store.UserByID(ctx, id)
		if err != nil {
			return err
		}
		if u.Role != contract.RoleCustomer {
			return ErrForbidden
		}
	}
	if err := s.d.Store.DeleteUser(ctx, id); err != nil {
		return err
	}
	s.publish(ctx, id, OpDelete)
	return nil
}

// The user listing's page sizes: DRF's page_size rule (a size that is not
// a positive integer is the default, one over the maximum is the maximum).
const (
	DefaultPageSize = 100
	MaxPageSize     = 500
)

// Fields of the user listing's query.
const (
	FieldAfter = "after"
)

// MsgInvalidUUID is the message of a query parameter that must be a UUID.
const MsgInvalidUUID = "Must be a valid UUID."

// ListQuery is a page of the user listing as the store reads it: up to
// Limit users in id order, with an id after After ("" from the start) and
// the role Role ("" any).
type ListQuery struct {
	Role  string
	After string
	Limit int
}

// ListUsersInput is the listing's query string as received: nil when a
// parameter is absent.
type ListUsersInput struct {
	Role     *string
	After    *string
	PageSize *string
}

// UserPage is one page of the user listing; Next is the id to list after
// for the following page, "" on the last page.
type UserPage struct {
	Users []User
	Next  string
	Query ListQuery // as applied: the next page keeps Role and Limit
}

// ListUsers returns a page of users in id order (staff and services): a
// keyset listing, so a page costs the same however far into the listing
// it is on MongoDB (an index on user_role and _id serves it), and pages
// stay consistent while users are added or deleted.
func (s *Service) ListUsers(ctx context.Context, p Principal, in ListUsersInput) (UserPage, error) {
	if !canRead(p) {
		return UserPage{}, ErrForbidden
	}
	f := Fields{}
	q := ListQuery{Limit: DefaultPageSize}
	if in.Role != nil {
		if r := strings.TrimSpace(*in.Role); contract.IsUserRole(r) {
			q.Role = r
		} else {
			f.Add(FieldUserRole, fmt.Sprintf("%q is not a valid choice.", r))
		}
	}
	if in.After != nil {
		if a := strings.TrimSpace(*in.After); contract.ValidID(a) {
			q.After = strings.ToLower(a)
		} else {
			f.Add(FieldAfter, MsgInvalidUUID)
		}
	}
	if in.PageSize != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(*in.PageSize)); err == nil && n > 0 {
			q.Limit = min(n, MaxPageSize)
		}
	}
	if err := f.Err(); err != nil {
		return UserPage{}, err
	}
	// One more than the page tells whether a next page exists.
	users, err := s.d.Store.ListUsers(ctx, ListQuery{Role: q.Role, After: q.After, Limit: q.Limit + 1})
	if err != nil {
		return UserPage{}, fmt.Errorf("list users: %w", err)
	}
	page := UserPage{Users: users, Query: q}
	if len(users) > q.Limit {
		page.Users = users[:q.Limit]
		page.Next = page.Users[q.Limit-1].ID
	}
	return page, nil
}
