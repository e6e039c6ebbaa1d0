// Package token issues and parses the auth service's JWTs exactly as
// djangorestframework-simplejwt does: HS256 with the shared key, claims
// token_type, exp, iat, jti (32 hex characters, like uuid4().hex) and
// user_id, plus the user's email, names and role. A token issued here is
// accepted by a simplejwt service sharing the key, and the reverse.
// Its claims are authclient.TokenClaims, the one wire form that the
// authclient Verifier parses too.
package token

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/contract"
)

// Config configures an Issuer.
type Config struct {
	Key             []byte        // JWT_SIGNING_KEY: tokens are signed with it
	PreviousKeys    [][]byte      // JWT_PREVIOUS_SIGNING_KEYS: refresh tokens signed with them are still taken
	Issuer          string        // iss, set and checked when non-empty
	Audience        string        // aud, set and checked when non-empty
	AccessTTL       time.Duration // default 5m
	RefreshTTL      time.Duration // default 24h
	ServiceTokenTTL time.Duration // default 5m
}

// Issuer implements auth.Tokens.
type Issuer struct {
	cfg  Config
	keys *authclient.KeySet
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
	keys, err := authclient.NewKeySet(cfg.Key, cfg.PreviousKeys)
	if err != nil {
		return nil, err
	}
	return &Issuer{cfg: cfg, keys: keys}, nil
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
func (i *Issuer) stamp(c *authclient.TokenClaims, now time.Time, ttl time.Duration) {
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ID = NewJTI()
	c.Issuer = i.cfg.Issuer
	if i.cfg.Audience != "" {
		c.Audience = authclient.Audience{i.cfg.Audience}
	}
}

func (i *Issuer) sign(c *authclient.TokenClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = i.keys.CurrentID()
	s, err := t.SignedString(i.keys.Current())
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return s, nil
}

// Pair issues an access token and a refresh token for u, both carrying the
// user's data at issue time; the refresh token starts a family (fam).
func (i *Issuer) Pair(u auth.User, now time.Time) (auth.TokenPair, error) {
	return i.Rotate(u, "", now)
}

// Rotate is Pair with the refresh token in family (a new one when "").
func (i *Issuer) Rotate(u auth.User, family string, now time.Time) (auth.TokenPair, error) {
	c := authclient.TokenClaims{
		TokenType: authclient.TokenTypeAccess,
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
	c.TokenType = authclient.TokenTypeRefresh
	i.stamp(&c, now, i.cfg.RefreshTTL)
	c.Family = family
	if c.Family == "" {
		c.Family = NewJTI()
	}
	refresh, err := i.sign(&c)
	if err != nil {
		return auth.TokenPair{}, err
	}
	return auth.TokenPair{Access: access, Refresh: refresh}, nil
}

// Service issues a service account's access token: user_role "service",
// user_id the client id, scope its scopes separated by spaces (RFC 9068
// §2.2.3; "" when it has none, so that a verifier can tell a client
// granted nothing from a token issued before scopes existed).
func (i *Issuer) Service(clientID string, scopes []string, now time.Time) (auth.ServiceToken, error) {
	scope := strings.Join(scopes, " ")
	c := authclient.TokenClaims{TokenType: authclient.TokenTypeAccess, UserID: clientID, UserRole: contract.RoleService, Scope: &scope}
	i.stamp(&c, now, i.cfg.ServiceTokenTTL)
	s, err := i.sign(&c)
	if err != nil {
		return auth.ServiceToken{}, err
	}
	return auth.ServiceToken{Access: s, ExpiresAt: c.ExpiresAt.Time}, nil
}

// ParseRefresh verifies a refresh token. Every failure is auth.ErrTokenInvalid
// (wrapped with the reason).
func (i *Issuer) ParseRefresh(tok string, now time.Time) (auth.RefreshClaims, error) {
	c, err := i.parse(tok, now)
	if err != nil {
		return auth.RefreshClaims{}, err
	}
	if c.TokenType != authclient.TokenTypeRefresh {
		return auth.RefreshClaims{}, fmt.Errorf("%w: token_type %q", auth.ErrTokenInvalid, c.TokenType)
	}
	uid, ok := c.UserID.(string)
	if !ok || !contract.ValidID(uid) {
		return auth.RefreshClaims{}, fmt.Errorf("%w: user_id is not a UUID string", auth.ErrTokenInvalid)
	}
	if c.ID == "" {
		return auth.RefreshClaims{}, fmt.Errorf("%w: no jti", auth.ErrTokenInvalid)
	}
	return auth.RefreshClaims{JTI: c.ID, UserID: uid, ExpiresAt: c.ExpiresAt.Time, Family: c.Family,
		FamilyExpiresAt: now.Add(i.cfg.RefreshTTL + authclient.Leeway)}, nil
}

func (i *Issuer) parse(tok string, now time.Time) (*authclient.TokenClaims, error) {
	if len(tok) > authclient.MaxTokenBytes {
		return nil, fmt.Errorf("%w: too long", auth.ErrTokenInvalid)
	}
	var c authclient.TokenClaims
	p := jwt.NewParser(append(i.parserOptions(), jwt.WithTimeFunc(func() time.Time { return now }))...)
	if _, err := p.ParseWithClaims(tok, &c, i.keys.Keyfunc); err != nil {
		return nil, fmt.Errorf("%w: %w", auth.ErrTokenInvalid, err)
	}
	return &c, nil
}

func (i *Issuer) parserOptions() []jwt.ParserOption {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(authclient.Leeway),
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
