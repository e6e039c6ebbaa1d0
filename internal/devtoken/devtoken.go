// Package devtoken mints access tokens shaped like the auth service's, for
// local development (`make token`) and tests. Never used by a service.
package devtoken

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/acme/customer-platform/internal/embedded"
)

// Claims of a development token.
type Claims struct {
	UserID, Email, FirstName, LastName, Role string
	TTL                                      time.Duration
}

// Sign returns an HS256 access token with the contract's claims, filling in
// a random user id, a derived email and a one-hour lifetime when unset.
func Sign(key []byte, c Claims) (string, Claims, error) {
	if c.UserID == "" {
		c.UserID = uuid.NewString()
	}
	if c.Role == "" {
		c.Role = "customer"
	}
	switch c.Role {
	case "customer", "employee", "admin", "service":
	default:
		return "", c, fmt.Errorf("unknown role %q", c.Role)
	}
	if c.Role != "service" {
		if _, err := uuid.Parse(c.UserID); err != nil {
			return "", c, fmt.Errorf("user id %q is not a UUID", c.UserID)
		}
	}
	if c.Email == "" {
		c.Email = "dev-" + c.UserID + "@example.com"
	}
	if c.TTL <= 0 {
		c.TTL = time.Hour
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"token_type": "access",
		"exp":        now.Add(c.TTL).Unix(),
		"iat":        now.Unix(),
		"jti":        hex.EncodeToString(jti[:]),
		"user_id":    c.UserID,
		"email":      c.Email,
		"first_name": c.FirstName,
		"last_name":  c.LastName,
		"user_role":  c.Role,
	})
	s, err := tok.SignedString(key)
	return s, c, err
}

// KeyFromDataDir returns the development signing key `make run` generated.
func KeyFromDataDir(dir string) (string, error) {
	s, err := embedded.LoadDevSecrets(dir)
	return s.JWTSigningKey, err
}
