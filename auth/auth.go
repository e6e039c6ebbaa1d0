// Package auth is the vocabulary of the auth service: users and their roles,
// the validation of what clients send (Django's field and password rules),
// the sentinel errors, the interfaces of what the service depends on (the
// user store, the password hasher, the token issuer, the rate limiter, the
// change publisher) and the Service holding the business rules. It imports
// only the standard library; the adapters live in its subpackages.
package auth

import (
	"strings"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

// User is an account of the auth service.
type User struct {
	ID          string // UUIDv4
	Email       string // normalised (contract.NormalizeEmail)
	FirstName   string
	LastName    string
	PhoneNumber string
	Role        string // a user role of package contract
	DateJoined  time.Time
	// RegistrationKey is the Idempotency-Key its registration was sent with
	// ("" when none): the registering service's proof that the user is the
	// one its own call created. Only staff and services see it.
	RegistrationKey string
	// RegistrationDeadline is its registration's Registration-Deadline
	// (zero: none): the store inserts the user only before it, else
	// ErrDeadlineExceeded. It is not stored.
	RegistrationDeadline time.Time
	// PasswordHash is the encoded password hash (Argon2id, or Django's
	// pbkdf2_sha256 for imported users). A value starting with "!" (Django's
	// convention) or an empty one is an unusable password: nothing matches it.
	PasswordHash string
}

// UnusablePasswordPrefix marks a password hash that never matches (Django's
// make_password(None) writes "!" followed by random characters).
const UnusablePasswordPrefix = "!"

// HasUsablePassword reports whether some password can match the user's hash.
func (u User) HasUsablePassword() bool {
	return u.PasswordHash != "" && !strings.HasPrefix(u.PasswordHash, UnusablePasswordPrefix)
}

// Principal is the authenticated caller of a request, taken from a verified
// access token.
type Principal struct {
	UserID string // the user's id, or the client id of a service token
	Role   string
	// Scopes are what a service account may do (its token's scope claim);
	// users have none, their role decides.
	Scopes []string
}

// IsService reports whether the caller is a machine (a service token).
func (p Principal) IsService() bool { return p.Role == contract.RoleService }

// IsStaff reports whether the caller is an employee or an admin.
func (p Principal) IsStaff() bool { return contract.IsStaff(p.Role) }

// TokenPair is what register, login and refresh hand out.
type TokenPair struct {
	Access  string
	Refresh string
}

// ServiceToken is a service account's access token.
type ServiceToken struct {
	Access    string
	ExpiresAt time.Time
}

// RefreshClaims are the claims of a verified refresh token the service acts on.
type RefreshClaims struct {
	JTI       string
	UserID    string
	ExpiresAt time.Time
	// Family is the id of the token's family: every refresh token rotated
	// from one login or registration shares it ("" for a token without the
	// claim, simplejwt's shape, which is rotated without family tracking).
	Family string
	// FamilyExpiresAt bounds the life of every token the family may still
	// hold (now plus the refresh lifetime): how long a revocation is kept.
	FamilyExpiresAt time.Time
}
