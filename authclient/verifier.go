// Package authclient is everything another service needs to talk to and
// trust the auth service: the JWT verifier of its access tokens and a typed
// HTTP client of its contract. It works against the company's Django +
// simplejwt auth service and against our Go stand-in alike.
package authclient

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/acme/customer-platform/internal/contract"
)

// Claims are the verified claims of an access token.
type Claims struct {
	UserID    string // the user's UUID (or the service client's id for a service token)
	Email     string
	FirstName string
	LastName  string
	Role      string // a role of package contract
	JTI       string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// Scopes are the token's scope claim split at spaces; ScopeClaim says
	// whether it has one at all (a service token issued before scopes
	// existed, or by an auth service without them, has none: the verifying
	// service decides what such a token may do).
	Scopes     []string
	ScopeClaim bool
}

// IsStaff reports whether the role is employee or admin.
func (c *Claims) IsStaff() bool { return contract.IsStaff(c.Role) }

// ErrInvalidToken is returned (wrapped) for every token that must be refused.
var ErrInvalidToken = errors.New("token is invalid or expired")

// MaxTokenBytes bounds the token length the verifier will parse.
const MaxTokenBytes = 8 << 10

// Leeway is the clock skew allowed on exp, iat and nbf.
const Leeway = 30 * time.Second

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	Key []byte // the HS256 key shared with the auth service (JWT_SIGNING_KEY)
	// PreviousKeys are still accepted during a key rotation's grace period
	// (JWT_PREVIOUS_SIGNING_KEYS): a token's kid picks the key, a token
	// without kid tries Key and then these.
	PreviousKeys [][]byte
	Issuer       string // checked when non-empty
	Audience     string // checked when non-empty
}

// Verifier checks simplejwt-compatible HS256 access tokens.
type Verifier struct {
	keys   *KeySet
	parser *jwt.Parser
}

// NewVerifier returns a verifier pinned to HS256.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	keys, err := NewKeySet(cfg.Key, cfg.PreviousKeys)
	if err != nil {
		return nil, err
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &Verifier{keys: keys, parser: jwt.NewParser(opts...)}, nil
}

// Verify parses and checks an access token. Every failure wraps ErrInvalidToken.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if len(token) > MaxTokenBytes || strings.Count(token, ".") != 2 {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	var tc TokenClaims
	_, err := v.parser.ParseWithClaims(token, &tc, v.keys.Keyfunc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if tc.TokenType != TokenTypeAccess {
		return nil, fmt.Errorf("%w: token_type %q is not access", ErrInvalidToken, tc.TokenType)
	}
	uid, ok := tc.UserID.(string)
	if !ok || uid == "" {
		return nil, fmt.Errorf("%w: user_id must be a UUID string", ErrInvalidToken)
	}
	role := tc.UserRole
	if role == "" {
		role = contract.RoleCustomer // simplejwt tokens of plain users may omit the role
	}
	switch {
	case contract.IsUserRole(role):
		if _, err := uuid.Parse(uid); err != nil {
			return nil, fmt.Errorf("%w: user_id is not a UUID", ErrInvalidToken)
		}
	case role != contract.RoleService:
		return nil, fmt.Errorf("%w: unknown user_role %q", ErrInvalidToken, role)
	}
	c := &Claims{
		UserID:    strings.ToLower(uid),
		Email:     tc.Email,
		FirstName: tc.FirstName,
		LastName:  tc.LastName,
		Role:      role,
		JTI:       tc.ID,
	}
	if tc.Scope != nil {
		c.Scopes, c.ScopeClaim = strings.Fields(*tc.Scope), true
		if c.Scopes == nil {
			c.Scopes = []string{}
		}
	}
	if tc.ExpiresAt != nil {
		c.ExpiresAt = tc.ExpiresAt.Time
	}
	if tc.IssuedAt != nil {
		c.IssuedAt = tc.IssuedAt.Time
	}
	return c, nil
}

// BearerToken extracts the token of an "Authorization: Bearer <token>" header
// value; ok is false when the header is absent or of another scheme.
func BearerToken(header string) (string, bool) {
	scheme, tok, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
