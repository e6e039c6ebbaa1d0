package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

// Change operations published on user.changed.
const (
	OpUpdate = "update"
	OpDelete = "delete"
)

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

// LockoutKey is the failed-login lockout's key: the email and the client
// address together (both digests), so that failures from one address lock
// out that address for the email, never the owner logging in from another.
func LockoutKey(email, clientAddr string) string {
	sum := sha256.Sum256([]byte(clientAddr))
	return EmailKey(email) + ":" + hex.EncodeToString(sum[:8])
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

func (s *Service) publish(ctx context.Context, userID, op string) {
	if s.d.Publisher != nil {
		s.d.Publisher.UserChanged(ctx, userID, op)
	}
}

// Rules returns the password rules the service applies (for adapters that
// validate a body before calling it).
func (s *Service) Rules() *PasswordRules { return s.d.Rules }
