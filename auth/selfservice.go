package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

// RegisterResult is a new account with its tokens.
type RegisterResult struct {
	User   User
	Tokens TokenPair
}

// Register creates a customer account and issues its tokens. A
// registration key (the Idempotency-Key header) is stored with the user as
// a proof of authorship that staff and services read back; it does not
// make a second registration of the email succeed: with the same key or
// another, a taken email is the validation error MsgEmailTaken (an email
// claimed by an earlier attempt with the same key that left no user is
// not taken: auth/mongodb). With a deadline (the Registration-Deadline
// header) the user is inserted only if the insert starts before it, else
// ErrDeadlineExceeded and nothing is created: a caller that gave up at its
// deadline can trust that no user appears later.
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
	deadline := in.deadline()
	if err := s.beforeDeadline(deadline); err != nil {
		return RegisterResult{}, err // no hash slot spent on a caller that gave up
	}
	hash, err := s.d.Hasher.Hash(ctx, pw)
	if err != nil {
		return RegisterResult{}, fmt.Errorf("hash password: %w", err)
	}
	// The hash is the slow step (and waits for a slot under load): the
	// deadline is checked again after it, and by the store once more
	// after the email's claim, immediately before the insert.
	if err := s.beforeDeadline(deadline); err != nil {
		return RegisterResult{}, err
	}
	u.ID, u.Role, u.DateJoined, u.PasswordHash = contract.NewID(), contract.RoleCustomer, s.now(), hash
	u.RegistrationDeadline = deadline // the store checks it again after the email's claim
	if err := s.create(ctx, u); err != nil {
		return RegisterResult{}, err
	}
	pair, err := s.d.Tokens.Pair(u, s.d.Now())
	if err != nil {
		return RegisterResult{}, fmt.Errorf("issue tokens: %w", err)
	}
	return RegisterResult{User: u, Tokens: pair}, nil
}

// beforeDeadline is ErrDeadlineExceeded once deadline (zero: none) has
// come, on the service's clock.
func (s *Service) beforeDeadline(deadline time.Time) error {
	if !deadline.IsZero() && !s.d.Now().Before(deadline) {
		return ErrDeadlineExceeded
	}
	return nil
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
// exists; repeated failures for one email from one client address lock
// that address out for the email for a while (LockoutKey): an attacker
// cannot lock the owner out from elsewhere. The per-email bucket bounds a
// distributed attack, with a limit high enough not to be a lever either.
func (s *Service) Login(ctx context.Context, in LoginInput, clientAddr string) (RegisterResult, error) {
	if err := s.limit(ctx, BucketLogin, clientAddr); err != nil {
		return RegisterResult{}, err
	}
	f := Fields{}
	email, pw := in.Validate(f)
	if err := f.Err(); err != nil {
		return RegisterResult{}, err
	}
	if err := s.limit(ctx, BucketLoginEmail, EmailKey(email)); err != nil {
		return RegisterResult{}, err
	}
	key := LockoutKey(email, clientAddr)
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
// only one succeeds. A used token presented again is a replay (RFC 9700
// §4.14: one of the two holders is a thief, and the server cannot tell
// which): its whole family is revoked, by inserting the family's key in the
// blacklist, so the token rotated from it stops working too.
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
	if c.Family != "" {
		revoked, err := s.d.Store.Blacklisted(ctx, familyKey(c.Family))
		if err != nil {
			return TokenPair{}, fmt.Errorf("check token family: %w", err)
		}
		if revoked {
			return TokenPair{}, ErrTokenBlacklisted
		}
	}
	if err := s.d.Store.BlacklistToken(ctx, c.JTI, c.UserID, c.ExpiresAt); err != nil {
		if errors.Is(err, ErrTokenBlacklisted) {
			if err := s.revokeFamily(ctx, c); err != nil {
				s.d.Logger.WarnContext(ctx, "could not revoke a replayed refresh token's family", "user_id", c.UserID, "error", err.Error())
			} else if c.Family != "" {
				s.d.Logger.WarnContext(ctx, "refresh token replayed: its family is revoked", "user_id", c.UserID)
			}
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
	pair, err := s.d.Tokens.Rotate(u, c.Family, s.d.Now())
	if err != nil {
		return TokenPair{}, fmt.Errorf("issue tokens: %w", err)
	}
	return pair, nil
}

// familyKey is the blacklist key of a revoked token family (a jti is 32
// hex characters, so the two never collide).
func familyKey(family string) string { return "family:" + family }

// revokeFamily revokes the token family of c (a replayed refresh token, or
// the session logged out): an insert keyed by the family, so a second
// revocation is a duplicate, and harmless. A token without a family has
// nothing to revoke.
func (s *Service) revokeFamily(ctx context.Context, c RefreshClaims) error {
	if c.Family == "" {
		return nil
	}
	err := s.d.Store.BlacklistToken(ctx, familyKey(c.Family), c.UserID, c.FamilyExpiresAt)
	if err != nil && !errors.Is(err, ErrTokenBlacklisted) {
		return fmt.Errorf("revoke token family: %w", err)
	}
	return nil
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
	// The session ends: the tokens rotated from this one too.
	return s.revokeFamily(ctx, c)
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
