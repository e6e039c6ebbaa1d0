package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

// Change operations published on user.changed.
const (
	OpUpdate = "update"
	OpDelete = "delete"
)

// BlacklistRetention is how long past its expiry a used refresh token stays
// blacklisted; it covers the verifier's clock-skew leeway.
const BlacklistRetention = time.Minute

// Deps are what the Service is built from. Store, Hasher, Tokens and Rules
// are required; a nil Limiter limits nothing, a nil Publisher publishes
// nothing, a nil Clients knows no service account.
type Deps struct {
	Store     Store
	Hasher    Hasher
	Tokens    Tokens
	Rules     *PasswordRules
	Limiter   Limiter
	Publisher Publisher
	Clients   ClientVerifier
	Now       func() time.Time // nil: time.Now
	Logger    *slog.Logger     // nil: slog.Default()
}

// Service holds the auth service's business rules.
type Service struct {
	d Deps
}

// NewService checks d and returns the service.
func NewService(d Deps) (*Service, error) {
	if d.Store == nil || d.Hasher == nil || d.Tokens == nil || d.Rules == nil {
		return nil, errors.New("auth: NewService needs a Store, a Hasher, Tokens and PasswordRules")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return &Service{d: d}, nil
}

func (s *Service) now() time.Time { return s.d.Now().UTC().Truncate(time.Millisecond) }

// EmailKey is the rate-limit key of an email: a digest of its normalised
// form, so keys have a bounded size and hold no personal data.
func EmailKey(email string) string {
	sum := sha256.Sum256([]byte(contract.NormalizeEmail(email)))
	return hex.EncodeToString(sum[:16])
}

// limit counts a request against a bucket. A limiter failure lets the request
// through (logged): availability wins over limiting.
func (s *Service) limit(ctx context.Context, bucket, key string) error {
	if s.d.Limiter == nil || key == "" {
		return nil
	}
	wait, err := s.d.Limiter.Allow(ctx, bucket, key)
	if err != nil {
		s.d.Logger.WarnContext(ctx, "rate limiter unavailable, request allowed", "bucket", bucket, "error", err.Error())
		return nil
	}
	if wait > 0 {
		return &ThrottledError{RetryAfter: wait}
	}
	return nil
}

// RegisterResult is a new account with its tokens.
type RegisterResult struct {
	User   User
	Tokens TokenPair
}

// Register creates a customer account and issues its tokens.
func (s *Service) Register(ctx context.Context, in RegisterInput, clientAddr string) (RegisterResult, error) {
	if err := s.limit(ctx, BucketRegister, clientAddr); err != nil {
		return RegisterResult{}, err
	}
	f := Fields{}
	u, pw := in.Validate(s.d.Rules, f)
	if u.Email != "" {
		if err := s.limit(ctx, BucketRegisterEmail, EmailKey(u.Email)); err != nil {
			return RegisterResult{}, err
		}
		if err := s.checkEmailFree(ctx, f, u.Email, ""); err != nil {
			return RegisterResult{}, err
		}
	}
	if err := f.Err(); err != nil {
		return RegisterResult{}, err
	}
	hash, err := s.d.Hasher.Hash(ctx, pw)
	if err != nil {
		return RegisterResult{}, fmt.Errorf("hash password: %w", err)
	}
	u.ID, u.Role, u.DateJoined, u.PasswordHash = contract.NewID(), contract.RoleCustomer, s.now(), hash
	if err := s.create(ctx, u); err != nil {
		return RegisterResult{}, err
	}
	pair, err := s.d.Tokens.Pair(u, s.d.Now())
	if err != nil {
		return RegisterResult{}, fmt.Errorf("issue tokens: %w", err)
	}
	return RegisterResult{User: u, Tokens: pair}, nil
}

// checkEmailFree adds the "already exists" message when another user has
// the email (the unique index still decides races).
func (s *Service) checkEmailFree(ctx context.Context, f Fields, email, selfID string) error {
	other, err := s.d.Store.UserByEmail(ctx, email)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("look up email: %w", err)
	case other.ID != selfID:
		f.Add(FieldEmail, MsgEmailTaken)
	}
	return nil
}

func (s *Service) create(ctx context.Context, u User) error {
	if err := s.d.Store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, ErrEmailTaken) {
			return contract.FieldError(FieldEmail, MsgEmailTaken)
		}
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

// Login checks credentials and issues tokens. Every failure is the same
// ErrInvalidCredentials, with a hash computed whether or not the email
// exists; repeated failures for one email lock it out for a while.
func (s *Service) Login(ctx context.Context, in LoginInput, clientAddr string) (RegisterResult, error) {
	if err := s.limit(ctx, BucketLogin, clientAddr); err != nil {
		return RegisterResult{}, err
	}
	f := Fields{}
	email, pw := in.Validate(f)
	if err := f.Err(); err != nil {
		return RegisterResult{}, err
	}
	key := EmailKey(email)
	if err := s.limit(ctx, BucketLoginEmail, key); err != nil {
		return RegisterResult{}, err
	}
	if s.d.Limiter != nil {
		wait, err := s.d.Limiter.LockedOut(ctx, key)
		if err != nil {
			s.d.Logger.WarnContext(ctx, "login lockout check failed, request allowed", "error", err.Error())
		} else if wait > 0 {
			return RegisterResult{}, &ThrottledError{RetryAfter: wait}
		}
	}
	u, err := s.d.Store.UserByEmail(ctx, contract.NormalizeEmail(email))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return RegisterResult{}, fmt.Errorf("look up user: %w", err)
	}
	ok, rehash := false, false
	if err == nil && u.HasUsablePassword() {
		ok, rehash, err = s.d.Hasher.Verify(ctx, pw, u.PasswordHash)
	} else {
		err = s.d.Hasher.VerifyDummy(ctx, pw)
	}
	if err != nil {
		return RegisterResult{}, fmt.Errorf("verify password: %w", err)
	}
	if !ok {
		s.loginFailed(ctx, key)
		return RegisterResult{}, ErrInvalidCredentials
	}
	if s.d.Limiter != nil {
		if err := s.d.Limiter.LoginSucceeded(ctx, key); err != nil {
			s.d.Logger.WarnContext(ctx, "could not reset login failures", "error", err.Error())
		}
	}
	if rehash {
		s.rehash(ctx, u, pw)
	}
	pair, err := s.d.Tokens.Pair(u, s.d.Now())
	if err != nil {
		return RegisterResult{}, fmt.Errorf("issue tokens: %w", err)
	}
	return RegisterResult{User: u, Tokens: pair}, nil
}

func (s *Service) loginFailed(ctx context.Context, key string) {
	if s.d.Limiter == nil {
		return
	}
	if err := s.d.Limiter.LoginFailed(ctx, key); err != nil {
		s.d.Logger.WarnContext(ctx, "could not record a failed login", "error", err.Error())
	}
}

// rehash upgrades a matched legacy (or weaker) hash to the current scheme;
// failures are logged, the login still succeeds.
func (s *Service) rehash(ctx context.Context, u User, pw string) {
	h, err := s.d.Hasher.Hash(ctx, pw)
	if err == nil {
		err = s.d.Store.SetPasswordHash(ctx, u.ID, u.PasswordHash, h)
	}
	if err != nil {
		s.d.Logger.WarnContext(ctx, "password rehash failed", "user_id", u.ID, "error", err.Error())
		return
	}
	s.d.Logger.InfoContext(ctx, "password rehashed to the current scheme", "user_id", u.ID)
}

// Refresh exchanges a refresh token for a new pair (rotation). The used
// token is blacklisted first, by a unique insert, so of two concurrent uses
// only one succeeds.
func (s *Service) Refresh(ctx context.Context, refresh *string) (TokenPair, error) {
	f := Fields{}
	tok := refreshToken(f, refresh)
	if err := f.Err(); err != nil {
		return TokenPair{}, err
	}
	c, err := s.d.Tokens.ParseRefresh(tok, s.d.Now())
	if err != nil {
		return TokenPair{}, ErrTokenInvalid
	}
	if err := s.d.Store.BlacklistToken(ctx, c.JTI, c.UserID, c.ExpiresAt); err != nil {
		if errors.Is(err, ErrTokenBlacklisted) {
			return TokenPair{}, ErrTokenBlacklisted
		}
		return TokenPair{}, fmt.Errorf("blacklist refresh token: %w", err)
	}
	u, err := s.d.Store.UserByID(ctx, c.UserID)
	if errors.Is(err, ErrNotFound) {
		return TokenPair{}, ErrAccountGone
	}
	if err != nil {
		return TokenPair{}, fmt.Errorf("load user: %w", err)
	}
	pair, err := s.d.Tokens.Pair(u, s.d.Now())
	if err != nil {
		return TokenPair{}, fmt.Errorf("issue tokens: %w", err)
	}
	return pair, nil
}

// MsgTokenInvalid is simplejwt's message for a bad refresh token in a body.
const MsgTokenInvalid = "Token is invalid or expired"

// Logout blacklists the caller's refresh token. Logging out twice is fine.
func (s *Service) Logout(ctx context.Context, p Principal, refresh *string) error {
	if p.IsService() {
		return ErrForbidden
	}
	f := Fields{}
	tok := refreshToken(f, refresh)
	if err := f.Err(); err != nil {
		return err
	}
	c, err := s.d.Tokens.ParseRefresh(tok, s.d.Now())
	if err != nil || c.UserID != p.UserID {
		return contract.FieldError(FieldRefresh, MsgTokenInvalid)
	}
	if err := s.d.Store.BlacklistToken(ctx, c.JTI, c.UserID, c.ExpiresAt); err != nil && !errors.Is(err, ErrTokenBlacklisted) {
		return fmt.Errorf("blacklist refresh token: %w", err)
	}
	return nil
}

// Profile returns the caller's own account.
func (s *Service) Profile(ctx context.Context, p Principal) (User, error) {
	if p.IsService() {
		return User{}, ErrForbidden
	}
	return s.self(ctx, p)
}

func (s *Service) self(ctx context.Context, p Principal) (User, error) {
	u, err := s.d.Store.UserByID(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrAccountGone
	}
	if err != nil {
		return User{}, fmt.Errorf("load user: %w", err)
	}
	return u, nil
}

// UpdateProfile changes the caller's own names, email or phone number.
func (s *Service) UpdateProfile(ctx context.Context, p Principal, upd ProfileUpdate) (User, error) {
	if p.IsService() {
		return User{}, ErrForbidden
	}
	f := Fields{}
	clean := upd.Validate(f)
	if clean.Email != nil && *clean.Email != "" {
		if err := s.checkEmailFree(ctx, f, *clean.Email, p.UserID); err != nil {
			return User{}, err
		}
	}
	if err := f.Err(); err != nil {
		return User{}, err
	}
	if clean.Empty() {
		return s.self(ctx, p)
	}
	u, err := s.d.Store.UpdateUser(ctx, p.UserID, clean)
	switch {
	case errors.Is(err, ErrNotFound):
		return User{}, ErrAccountGone
	case errors.Is(err, ErrEmailTaken):
		return User{}, contract.FieldError(FieldEmail, MsgEmailTaken)
	case err != nil:
		return User{}, fmt.Errorf("update user: %w", err)
	}
	s.publish(ctx, u.ID, OpUpdate)
	return u, nil
}

// DeleteSelf deletes the caller's own account.
func (s *Service) DeleteSelf(ctx context.Context, p Principal) error {
	if p.IsService() {
		return ErrForbidden
	}
	err := s.d.Store.DeleteUser(ctx, p.UserID)
	if errors.Is(err, ErrNotFound) {
		return ErrAccountGone
	}
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	s.publish(ctx, p.UserID, OpDelete)
	return nil
}

func (s *Service) publish(ctx context.Context, userID, op string) {
	if s.d.Publisher != nil {
		s.d.Publisher.UserChanged(ctx, userID, op)
	}
}

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

// ServiceToken issues a service account's short-lived access token.
func (s *Service) ServiceToken(ctx context.Context, in ServiceTokenInput, clientAddr string) (ServiceToken, error) {
	if err := s.limit(ctx, BucketServiceToken, clientAddr); err != nil {
		return ServiceToken{}, err
	}
	f := Fields{}
	id, secret := in.Validate(f)
	if err := f.Err(); err != nil {
		return ServiceToken{}, err
	}
	if s.d.Clients == nil || !s.d.Clients.Verify(id, secret) {
		return ServiceToken{}, ErrInvalidClient
	}
	t, err := s.d.Tokens.Service(id, s.d.Now())
	if err != nil {
		return ServiceToken{}, fmt.Errorf("issue service token: %w", err)
	}
	return t, nil
}

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

// SweepBlacklist removes blacklist entries of refresh tokens that can no
// longer verify anyway.
func (s *Service) SweepBlacklist(ctx context.Context) (int64, error) {
	return s.d.Store.SweepBlacklist(ctx, s.d.Now().Add(-BlacklistRetention))
}

// Rules returns the password rules the service applies (for adapters that
// validate a body before calling it).
func (s *Service) Rules() *PasswordRules { return s.d.Rules }
