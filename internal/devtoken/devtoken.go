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

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/embedded"
)

// Options say whom a development token is for and how long it lives.
type Options struct {
	UserID, Email, FirstName, LastName, Role string
	TTL                                      time.Duration
}

// Sign returns an HS256 access token with the contract's claims
// (authclient.TokenClaims), filling in a random user id, the customer role,
// a derived email and a one-hour lifetime when unset; it returns the
// options as filled in.
func Sign(key []byte, o Options) (string, Options, error) {
	if o.UserID == "" {
		o.UserID = contract.NewID()
	}
	if o.Role == "" {
		o.Role = contract.RoleCustomer
	}
	if !contract.IsUserRole(o.Role) && o.Role != contract.RoleService {
		return "", o, fmt.Errorf("unknown role %q", o.Role)
	}
	if o.Role != contract.RoleService {
		if _, err := uuid.Parse(o.UserID); err != nil {
			return "", o, fmt.Errorf("user id %q is not a UUID", o.UserID)
		}
	}
	if o.Email == "" {
		o.Email = "dev-" + o.UserID + "@example.com"
	}
	if o.TTL <= 0 {
		o.TTL = time.Hour
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, &authclient.TokenClaims{
		TokenType: authclient.TokenTypeAccess,
		ExpiresAt: jwt.NewNumericDate(now.Add(o.TTL)),
		IssuedAt:  jwt.NewNumericDate(now),
		ID:        hex.EncodeToString(jti[:]),
		UserID:    o.UserID,
		Email:     o.Email,
		FirstName: o.FirstName,
		LastName:  o.LastName,
		UserRole:  o.Role,
	})
	s, err := tok.SignedString(key)
	return s, o, err
}

// KeyFromDataDir returns the development signing key `make run` generated.
func KeyFromDataDir(dir string) (string, error) {
	s, err := embedded.LoadDevSecrets(dir)
	return s.JWTSigningKey, err
}
