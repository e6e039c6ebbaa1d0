package authclient

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// KeyID names an HS256 key in a token's kid header without revealing it:
// the first 8 bytes of its SHA-256, in hex. It is derived from the key, so
// a rotation needs no configuration beyond the keys themselves.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// KeySet is the current signing key and the previous ones still accepted
// during a rotation's grace period.
type KeySet struct {
	keys [][]byte // current first
	ids  []string
	all  jwt.VerificationKeySet // keys, for a token without a kid
}

// NewKeySet returns the set; the current key is required.
func NewKeySet(current []byte, previous [][]byte) (*KeySet, error) {
	if len(current) == 0 {
		return nil, errors.New("authclient: empty JWT signing key")
	}
	ks := &KeySet{}
	for _, k := range append([][]byte{current}, previous...) {
		if len(k) == 0 {
			continue
		}
		ks.keys = append(ks.keys, append([]byte(nil), k...))
		ks.ids = append(ks.ids, KeyID(k))
		ks.all.Keys = append(ks.all.Keys, ks.keys[len(ks.keys)-1])
	}
	return ks, nil
}

// Current is the key tokens are signed with.
func (ks *KeySet) Current() []byte { return ks.keys[0] }

// CurrentID is the current key's kid.
func (ks *KeySet) CurrentID() string { return ks.ids[0] }

// Keyfunc picks the verification key of a token: the key its kid names
// (a kid naming none is refused), or, without a kid (simplejwt's tokens),
// the current key then the previous ones.
func (ks *KeySet) Keyfunc(t *jwt.Token) (any, error) {
	if kid, ok := t.Header["kid"]; ok {
		s, _ := kid.(string)
		for i, id := range ks.ids {
			if id == s {
				return ks.keys[i], nil
			}
		}
		return nil, fmt.Errorf("unknown kid %q", s)
	}
	return ks.all, nil
}
