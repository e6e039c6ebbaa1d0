package authclient

import (
	"encoding/json"

	"github.com/golang-jwt/jwt/v5"
)

// Token types: the token_type claim.
const (
	TokenTypeAccess  = "access"
	TokenTypeRefresh = "refresh"
)

// TokenClaims are the claims of the auth service's JWTs as they are on the
// wire, in simplejwt's order: what the auth service issues, what Verify
// parses and what development tokens are minted with. Claims is the
// verified view of an access token.
type TokenClaims struct {
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
	// Scope is a service token's scopes separated by spaces (RFC 9068
	// §2.2.3); nil when the token has no scope claim (a user's token, or
	// a service token issued before scopes existed).
	Scope *string `json:"scope,omitempty"`
	// Family is a refresh token's family id: the tokens rotated from one
	// login share it, and a replay of a used one revokes them all.
	Family string `json:"fam,omitempty"`
}

var _ jwt.Claims = (*TokenClaims)(nil)

// GetExpirationTime implements jwt.Claims.
func (c *TokenClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }

// GetIssuedAt implements jwt.Claims.
func (c *TokenClaims) GetIssuedAt() (*jwt.NumericDate, error) { return c.IssuedAt, nil }

// GetNotBefore implements jwt.Claims.
func (c *TokenClaims) GetNotBefore() (*jwt.NumericDate, error) { return c.NotBefore, nil }

// GetIssuer implements jwt.Claims.
func (c *TokenClaims) GetIssuer() (string, error) { return c.Issuer, nil }

// GetSubject implements jwt.Claims.
func (c *TokenClaims) GetSubject() (string, error) { return c.Subject, nil }

// GetAudience implements jwt.Claims.
func (c *TokenClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings(c.Audience), nil
}

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
