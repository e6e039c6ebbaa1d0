// Package auth is the vocabulary of the auth service: users and their roles,
// the validation of what clients send (Django's field and password rules),
// the sentinel errors, the interfaces of what the service depends on (the
// user store, the password hasher, the token issuer, the rate limiter, the
// change publisher) and the Service holding the business rules. It imports
// only the standard library; the adapters live in its subpackages.
package auth

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"
)

// Roles carried by users and tokens.
const (
	RoleCustomer = "customer"
	RoleEmployee = "employee"
	RoleAdmin    = "admin"
	// RoleService is the role of a machine's access token (a service account);
	// no user has it.
	RoleService = "service"
)

// IsUserRole reports whether r is a role a user account may have.
func IsUserRole(r string) bool {
	switch r {
	case RoleCustomer, RoleEmployee, RoleAdmin:
		return true
	}
	return false
}

// User is an account of the auth service.
type User struct {
	ID          string // UUIDv4
	Email       string // normalised (NormalizeEmail)
	FirstName   string
	LastName    string
	PhoneNumber string
	Role        string
	DateJoined  time.Time
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
}

// IsService reports whether the caller is a machine (a service token).
func (p Principal) IsService() bool { return p.Role == RoleService }

// IsStaff reports whether the caller is an employee or an admin.
func (p Principal) IsStaff() bool { return p.Role == RoleEmployee || p.Role == RoleAdmin }

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
}

// NormalizeEmail is the stored and compared form of an email: trimmed and
// lower-cased, so emails are unique case-insensitively.
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// NewID returns a random (version 4) UUID string.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
