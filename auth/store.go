package auth

import (
	"context"
	"time"
)

// Store keeps users and the refresh-token blacklist. Implementations
// translate their driver's errors into this package's sentinels.
type Store interface {
	// CreateUser inserts u; ErrEmailTaken when the normalised email exists,
	// ErrDeadlineExceeded when u.RegistrationDeadline (if set) has come
	// before the insert starts.
	CreateUser(ctx context.Context, u User) error
	// UserByID returns the user or ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// UserByEmail looks a normalised email up; ErrNotFound when absent.
	UserByEmail(ctx context.Context, email string) (User, error)
	// UpdateUser sets the non-nil fields of upd (already cleaned) and returns
	// the user as stored; ErrNotFound, ErrEmailTaken.
	UpdateUser(ctx context.Context, id string, upd ProfileUpdate) (User, error)
	// SetPasswordHash replaces the hash only if it still is old (so a
	// concurrent password change is never overwritten by a rehash).
	SetPasswordHash(ctx context.Context, id, old, new string) error
	// DeleteUser removes the user; ErrNotFound when absent.
	DeleteUser(ctx context.Context, id string) error
	// ListUsers returns up to q.Limit users in id order, those with an id
	// after q.After (all when "") and the role q.Role (any when "").
	ListUsers(ctx context.Context, q ListQuery) ([]User, error)
	// BlacklistToken records a refresh token's jti as used, by inserting it
	// under a unique key; ErrTokenBlacklisted when it already was.
	BlacklistToken(ctx context.Context, jti, userID string, expiresAt time.Time) error
	// Blacklisted reports whether jti was blacklisted (a lookup by _id).
	Blacklisted(ctx context.Context, jti string) (bool, error)
	// SweepBlacklist deletes entries of tokens that expired before t and
	// returns how many went.
	SweepBlacklist(ctx context.Context, before time.Time) (int64, error)
}

// Hasher hashes and verifies passwords. Implementations bound how many
// hashes run at once; waiting for a slot respects ctx (ErrBusy).
type Hasher interface {
	// Hash returns the encoded hash of password with the current parameters.
	Hash(ctx context.Context, password string) (string, error)
	// Verify compares password with an encoded hash in constant time; rehash
	// is true when the hash matched but uses an older scheme or parameters.
	Verify(ctx context.Context, password, encoded string) (ok, rehash bool, err error)
	// VerifyDummy costs what a Verify against a current hash costs, so that an
	// unknown email answers as slowly as a wrong password.
	VerifyDummy(ctx context.Context, password string) error
}

// Tokens issues and parses the service's JWTs.
type Tokens interface {
	// Pair issues an access and a refresh token for u, the refresh token
	// of a new family (a login, a registration).
	Pair(u User, now time.Time) (TokenPair, error)
	// Rotate issues the pair that replaces a used refresh token of family
	// ("": a token without one, which starts a family).
	Rotate(u User, family string, now time.Time) (TokenPair, error)
	// Service issues a service account's access token with its scopes
	// (the scope claim, present even when empty).
	Service(clientID string, scopes []string, now time.Time) (ServiceToken, error)
	// ParseRefresh verifies a refresh token (signature, algorithm, type,
	// expiry); ErrTokenInvalid otherwise.
	ParseRefresh(token string, now time.Time) (RefreshClaims, error)
}

// Rate-limit buckets.
const (
	BucketRegister      = "register"       // per client address
	BucketRegisterEmail = "register_email" // per email
	BucketLogin         = "login"          // per client address
	BucketLoginEmail    = "login_email"    // per email
	BucketServiceToken  = "service_token"  // per client address
)

// Limiter rate-limits requests and slows down repeated failed logins.
type Limiter interface {
	// Allow counts one request of bucket for key; a positive duration means
	// refused, retry after it.
	Allow(ctx context.Context, bucket, key string) (time.Duration, error)
	// LockedOut reports how long logins for the email key are still refused
	// after repeated failures (0: not locked).
	LockedOut(ctx context.Context, key string) (time.Duration, error)
	// LoginFailed records a failed login for the email key.
	LoginFailed(ctx context.Context, key string) error
	// LoginSucceeded forgets the email key's failures.
	LoginSucceeded(ctx context.Context, key string) error
}

// Publisher announces user changes (best effort, never failing the write).
type Publisher interface {
	UserChanged(ctx context.Context, userID, op string)
}

// ClientVerifier checks service-account credentials in constant time and
// knows each client's scopes.
type ClientVerifier interface {
	Verify(clientID, secret string) bool
	// Scopes are the scopes the client is granted (none for an unknown one).
	Scopes(clientID string) []string
}
