// Package token issues and parses the auth service's JWTs exactly as
// djangorestframework-simplejwt does: HS256 with the shared key, claims
// token_type, exp, iat, jti (32 hex characters, like uuid4().hex) and
// user_id, plus the user's email, names and role. A token issued here is
// accepted by a simplejwt service sharing the key, and the reverse.
package token

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/contract"
)

// Token types (the token_type claim).
const (
	TypeAccess  = "access"
	TypeRefresh = "refresh"
)

// Leeway is the clock skew allowed when parsing (the contract's 30 s).
const Leeway = 30 * time.Second

// Config configures an Issuer.
type Config struct {
	Key             []byte        // JWT_SIGNING_KEY
	Issuer          string        // iss, set and checked when non-empty
	Audience        string        // aud, set and checked when non-empty
	AccessTTL       time.Duration // default 5m
	RefreshTTL      time.Duration // default 24h
	ServiceTokenTTL time.Duration // default 5m
}

// Issuer implements auth.Tokens.
type Issuer struct {
	cfg Config
}

var _ auth.Tokens = (*Issuer)(nil)

// New returns an issuer; the key is required.
func New(cfg Config) (*Issuer, error) {
	if len(cfg.Key) == 0 {
		return nil, errors.New("token: empty signing key")
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 5 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 24 * time.Hour
	}
	if cfg.ServiceTokenTTL <= 0 {
		cfg.ServiceTokenTTL = 5 * time.Minute
	}
	cfg.Key = append([]byte(nil), cfg.Key...)
	return &Issuer{cfg: cfg}, nil
}

// Claims are the claims of the service's tokens, in simplejwt's order.
type Claims struct {
	TokenType string           `json:"token_type"`
	ExpiresAt *jwt.NumericDate `json:"exp,omitempty"`
	IssuedAt  *jwt.NumericDate `json:"iat,omitempty"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	ID        string           `json:"jti,omitempty"`
	UserID    any              `json:"user_id"` // a string here; simplejwt services with integer keys send numbers
	Email     string           `json:"email,omitempty"`
	FirstName string           `json:"first_name,omitempty"`
	LastName  string           `json:"last_name,omitempty"`
	UserRole  string           `json:"user_role,omitempty"`
	Issuer    string           `json:"iss,omitempty"`
	Audience  Audience         `json:"aud,omitempty"`
	Subject   string           `json:"sub,omitempty"`
}

var _ jwt.Claims = (*Claims)(nil)

// GetExpirationTime implements jwt.Claims.
func (c *Claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }

// GetIssuedAt implements jwt.Claims.
func (c *Claims) GetIssuedAt() (*jwt.NumericDate, error) { return c.IssuedAt, nil }

// GetNotBefore implements jwt.Claims.
func (c *Claims) GetNotBefore() (*jwt.NumericDate, error) { return c.NotBefore, nil }

// GetIssuer implements jwt.Claims.
func (c *Claims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims.
func (c *Claims) GetSubject() (string, error) { return c.Subject, nil }

// GetAudience implements jwt.Claims.
func (c *Claims) GetAudience() (jwt.ClaimStrings, error) { return jwt.ClaimStrings(c.Audience), nil }

// Audience is the aud claim: written as a single string when it has one
// value (as simplejwt and PyJWT write it), read as a string or an array.
type Audience []string

// MarshalJSON writes one audience as a string.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON reads a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var cs jwt.ClaimStrings
	if err := cs.UnmarshalJSON(b); err != nil {
		return err
	}
	*a = Audience(cs)
	return nil
}

// NewJTI returns a token id like simplejwt's: uuid4().hex, 32 hex characters.
func NewJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return hex.EncodeToString(b[:])
}

// stamp sets the registered claims of a token living ttl from now.
func (i *Issuer) stamp(c *Claims, now time.Time, ttl time.Duration) {
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ID = NewJTI()
	c.Issuer = i.cfg.Issuer
	if i.cfg.Audience != "" {
		c.Audience = Audience{i.cfg.Audience}
	}
}

func (i *Issuer) sign(c *Claims) (string, error) {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(i.cfg.Key)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}

// Pair issues an access token and a refresh token for u, both carrying the
// user's data at issue time.
func (i *Issuer) Pair(u auth.User, now time.Time) (auth.TokenPair, error) {
	c := Claims{
		TokenType: TypeAccess,
		UserID:    u.ID,
		Email:     u.Email,
		FirstName: u.FirstName,
		LastName:  u.LastName,
		UserRole:  u.Role,
	}
	i.stamp(&c, now, i.cfg.AccessTTL)
	access, err := i.sign(&c)
	if err != nil {
		return auth.TokenPair{}, err
	}
	c.TokenType = TypeRefresh
	i.stamp(&c, now, i.cfg.RefreshTTL)
	refresh, err := i.sign(&c)
	if err != nil {
		return auth.TokenPair{}, err
	}
	return auth.TokenPair{Access: access, Refresh: refresh}, nil
}

// Service issues a service account's access token: user_role "service",
// user_id the client id.
func (i *Issuer) Service(clientID string, now time.Time) (auth.ServiceToken, error) {
	c := Claims{TokenType: TypeAccess, UserID: clientID, UserRole: contract.RoleService}
	i.stamp(&c, now, i.cfg.ServiceTokenTTL)
	s, err := i.sign(&c)
	if err != nil {
		return auth.ServiceToken{}, err
	}
	return auth.ServiceToken{Access: s, ExpiresAt: c.ExpiresAt.Time}, nil
}

// MaxTokenBytes bounds what is parsed.
const MaxTokenBytes = 8 << 10

// ParseRefresh verifies a refresh token. Every failure is auth.ErrTokenInvalid
// (wrapped with the reason).
func (i *Issuer) ParseRefresh(tok string, now time.Time) (auth.RefreshClaims, error) {
	c, err := i.parse(tok, now)
	if err != nil {
		return auth.RefreshClaims{}, err
	}
	if c.TokenType != TypeRefresh {
		return auth.RefreshClaims{}, fmt.Errorf("%w: token_type %q", auth.ErrTokenInvalid, c.TokenType)
	}
	uid, ok := c.UserID.(string)
	if !ok || !contract.ValidID(uid) {
		return auth.RefreshClaims{}, fmt.Errorf("%w: user_id is not a UUID string", auth.ErrTokenInvalid)
	}
	if c.ID == "" {
		return auth.RefreshClaims{}, fmt.Errorf("%w: no jti", auth.ErrTokenInvalid)
	}
	return auth.RefreshClaims{JTI: c.ID, UserID: uid, ExpiresAt: c.ExpiresAt.Time}, nil
}

func (i *Issuer) parse(tok string, now time.Time) (*Claims, error) {
	if len(tok) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: too long", auth.ErrTokenInvalid)
	}
	var c Claims
	p := jwt.NewParser(append(i.parserOptions(), jwt.WithTimeFunc(func() time.Time { return now }))...)
	if _, err := p.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return i.cfg.Key, nil }); err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrTokenInvalid, err)
	}
	return &c, nil
}

func (i *Issuer) parserOptions() []jwt.ParserOption {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
		jwt.WithIssuedAt(),
	}
	if i.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(i.cfg.Issuer))
	}
	if i.cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(i.cfg.Audience))
	}
	return opts
}
