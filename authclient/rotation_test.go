package authclient_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/auth/token"
	"github.com/acme/customer-platform/authclient"
)

// TestKeyRotationWithoutDowntime: after a rotation (JWT_SIGNING_KEY the new
// key, JWT_PREVIOUS_SIGNING_KEYS the old one) a token signed with the old
// key still verifies, with its kid or without one (simplejwt's tokens have
// none); a token signed with a key not in the list does not, whatever kid
// it claims; the issuer signs with the current key and names it by kid.
func TestKeyRotationWithoutDowntime(t *testing.T) {
	t.Parallel()
	oldKey := []byte(strings.Repeat("o", 32))
	newKey := []byte(strings.Repeat("n", 32))
	strange := []byte(strings.Repeat("x", 32))
	u := auth.User{ID: "8b0f7a5e-2c1d-4e3f-9a8b-7c6d5e4f3a2b", Email: "r@example.com", Role: "customer"}
	before, err := token.New(token.Config{Key: oldKey})
	if err != nil {
		t.Fatal(err)
	}
	oldPair, _ := before.Pair(u, time.Now())
	after, err := token.New(token.Config{Key: newKey, PreviousKeys: [][]byte{oldKey}})
	if err != nil {
		t.Fatal(err)
	}
	newPair, _ := after.Pair(u, time.Now())
	v, err := authclient.NewVerifier(authclient.VerifierConfig{Key: newKey, PreviousKeys: [][]byte{oldKey}})
	if err != nil {
		t.Fatal(err)
	}
	kid := func(tok string) any {
		p, _, _ := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
		return p.Header["kid"]
	}
	if kid(newPair.Access) != authclient.KeyID(newKey) || kid(oldPair.Access) != authclient.KeyID(oldKey) || len(authclient.KeyID(newKey)) != 16 {
		t.Fatalf("kids %v %v", kid(newPair.Access), kid(oldPair.Access))
	}
	mint := func(key []byte, kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"token_type": "access", "user_id": u.ID, "exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(), "jti": "j"})
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, tok := range map[string]string{
		"new key":             newPair.Access,
		"old key with kid":    oldPair.Access,
		"old key without kid": mint(oldKey, ""),
		"new key without kid": mint(newKey, ""),
	} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, tok := range map[string]string{
		"unknown key":                mint(strange, ""),
		"unknown key claiming old's": mint(strange, authclient.KeyID(oldKey)),
		"unknown key, unknown kid":   mint(strange, "0011223344556677"),
		"old key claiming the new's": mint(oldKey, authclient.KeyID(newKey)),
	} {
		if _, err := v.Verify(tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The issuer itself takes refresh tokens signed with a previous key.
	if _, err := after.ParseRefresh(oldPair.Refresh, time.Now()); err != nil {
		t.Errorf("a refresh token of the old key after the rotation: %v", err)
	}
	// Once the old key leaves the list, its tokens stop verifying.
	v2, _ := authclient.NewVerifier(authclient.VerifierConfig{Key: newKey})
	if _, err := v2.Verify(oldPair.Access); err == nil {
		t.Error("the old key's token verified after the old key was dropped")
	}
}
