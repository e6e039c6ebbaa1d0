package auth

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of the service, matched with errors.Is. The HTTP adapter
// maps each to one status and body; bad input is a *contract.ValidationError.
var (
	// ErrNotFound: no such user.
	ErrNotFound = errors.New("auth: not found")
	// ErrEmailTaken: another user has the (normalised) email. Stores return it
	// on a unique-index violation; the Service turns it into a validation error.
	ErrEmailTaken = errors.New("auth: email already taken")
	// ErrInvalidCredentials: wrong email or password, or an account without a
	// usable password. It never says which.
	ErrInvalidCredentials = errors.New("auth: no active account found with the given credentials")
	// ErrInvalidClient: unknown service client or wrong secret.
	ErrInvalidClient = errors.New("auth: invalid client credentials")
	// ErrTokenInvalid: a refresh token that is malformed, forged or expired.
	ErrTokenInvalid = errors.New("auth: token is invalid or expired")
	// ErrTokenBlacklisted: a refresh token already used (rotation) or logged out.
	ErrTokenBlacklisted = errors.New("auth: token is blacklisted")
	// ErrAccountGone: a valid token whose user no longer exists.
	ErrAccountGone = errors.New("auth: user not found")
	// ErrForbidden: the caller's role may not do this.
	ErrForbidden = errors.New("auth: permission denied")
	// ErrBusy: the request gave up waiting for a password-hashing slot.
	ErrBusy = errors.New("auth: too many password operations in progress")
	// ErrDeadlineExceeded: a registration's deadline (Registration-Deadline)
	// passed before its user could be inserted; nothing was created.
	ErrDeadlineExceeded = errors.New("auth: the registration's deadline passed; no user was created")
)

// ThrottledError is a request refused by a rate limit or a login lockout.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("auth: throttled, retry after %s", e.RetryAfter)
}
