package bff

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/acme/customer-platform/internal/contract"
)

// Labels of the keys derived from the server secret; each use has its own.
const (
	labelIdempotencySecret = "bff idempotency secret v1"
	labelAnswer            = "bff idempotency answer v1"
	labelCheck             = "bff idempotency fingerprint check v1"
	labelSagaSeal          = "bff saga seal v1"
	labelEmail             = "bff email hash v1"
)

// DeriveSecret derives the BFF's server secret from the JWT signing key
// (used when BFF_IDEMPOTENCY_SECRET is not set): HKDF-SHA256 with the label
// "bff idempotency secret v1", so the secret never equals the signing key
// and knowing it does not reveal the key.
func DeriveSecret(jwtKey []byte) ([]byte, error) {
	if len(jwtKey) == 0 {
		return nil, errors.New("bff: empty JWT signing key")
	}
	return hkdf.Key(sha256.New, jwtKey, nil, labelIdempotencySecret, 32)
}

// Secrets holds the keys derived from the server secret, and those of the
// previous secrets of a rotation. Everything is sealed, hashed and checked
// with the current secret; what was stored under a previous one is still
// opened and recognised (Open, OpenAnswer, MatchesCheck try the current
// keys, then each previous secret's), so a rotation turns no retry into a
// 422 and strands no pending saga. It is safe for concurrent use.
type Secrets struct {
	root  []byte
	check []byte // HMAC key of stored fingerprints
	email []byte // HMAC key of email hashes
	seal  cipher.AEAD
	// keys is this secret's keys then the previous secrets' (newest
	// first): what Open, OpenAnswer and MatchesCheck try, built once.
	keys []*Secrets
}

// NewSecrets derives the keys of secret and of the previous secrets of a
// rotation (newest first); each must have at least 16 bytes.
func NewSecrets(secret []byte, previous ...[]byte) (*Secrets, error) {
	s, err := newSecrets(secret)
	if err != nil {
		return nil, err
	}
	s.keys = []*Secrets{s}
	for i, p := range previous {
		ps, err := newSecrets(p)
		if err != nil {
			return nil, fmt.Errorf("bff: previous secret %d: %w", i+1, err)
		}
		s.keys = append(s.keys, ps)
	}
	return s, nil
}

func newSecrets(secret []byte) (*Secrets, error) {
	if len(secret) < 16 {
		return nil, errors.New("bff: the server secret must have at least 16 bytes")
	}
	s := &Secrets{root: bytes.Clone(secret)}
	var err error
	if s.check, err = hkdf.Key(sha256.New, secret, nil, labelCheck, 32); err != nil {
		return nil, err
	}
	if s.email, err = hkdf.Key(sha256.New, secret, nil, labelEmail, 32); err != nil {
		return nil, err
	}
	sealKey, err := hkdf.Key(sha256.New, secret, nil, labelSagaSeal, 32)
	if err != nil {
		return nil, err
	}
	if s.seal, err = newGCM(sealKey); err != nil {
		return nil, err
	}
	return s, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("bff: aes: %w", err)
	}
	return cipher.NewGCM(b)
}

// EmailHash is the HMAC-SHA256 of the normalised email
// (contract.NormalizeEmail), hex: it lets records be matched by email without holding it.
func (s *Secrets) EmailHash(email string) string {
	m := hmac.New(sha256.New, s.email)
	m.Write([]byte(contract.NormalizeEmail(email)))
	return hex.EncodeToString(m.Sum(nil))
}

// Seal encrypts a saga's secret value, bound to the saga id and the field.
func (s *Secrets) Seal(sagaID, field string, plain []byte) []byte {
	nonce := make([]byte, s.seal.NonceSize(), s.seal.NonceSize()+len(plain)+s.seal.Overhead())
	_, _ = rand.Read(nonce)
	return s.seal.Seal(nonce, nonce, plain, []byte(sagaID+"\x00"+field))
}

// Open decrypts what Seal sealed for the same saga and field, under the
// current secret or a previous one.
func (s *Secrets) Open(sagaID, field string, sealed []byte) (plain []byte, err error) {
	for _, k := range s.keys {
		if plain, err = k.open(sagaID, field, sealed); err == nil {
			return plain, nil
		}
	}
	return nil, err
}

func (s *Secrets) open(sagaID, field string, sealed []byte) ([]byte, error) {
	n := s.seal.NonceSize()
	if len(sealed) < n+s.seal.Overhead() {
		return nil, errors.New("bff: sealed value too short")
	}
	return s.seal.Open(nil, sealed[:n], sealed[n:], []byte(sagaID+"\x00"+field))
}

// Fingerprint identifies a request: SHA-256 over the method, the path and
// the canonical JSON of the body (object keys sorted, insignificant space
// removed, numbers kept as written), so a retry that re-encodes the same
// object has the same fingerprint. It contains the passwords of a
// registration: it is never stored, only CheckOf(fingerprint) is.
type Fingerprint [32]byte

// FingerprintOf computes a request's fingerprint.
func FingerprintOf(method, path string, body map[string]json.RawMessage) (Fingerprint, error) {
	canon, err := CanonicalJSON(body)
	if err != nil {
		return Fingerprint{}, err
	}
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(canon)
	var f Fingerprint
	h.Sum(f[:0])
	return f, nil
}

// CanonicalJSON encodes an object with sorted keys and no insignificant
// space, recursively; numbers keep their textual form.
func CanonicalJSON(obj map[string]json.RawMessage) ([]byte, error) {
	v := make(map[string]any, len(obj))
	for k, raw := range obj {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var x any
		if err := d.Decode(&x); err != nil {
			return nil, fmt.Errorf("bff: canonical json: %w", err)
		}
		v[k] = x
	}
	// encoding/json sorts map keys and writes json.Number as written.
	return json.Marshal(v)
}

// CheckOf is what is stored to recognise a fingerprint: an HMAC under a key
// derived from the server secret, hex.
func (s *Secrets) CheckOf(f Fingerprint) string {
	m := hmac.New(sha256.New, s.check)
	m.Write(f[:])
	return hex.EncodeToString(m.Sum(nil))
}

// MatchesCheck reports whether a stored check is f's, made under the
// current secret or a previous one.
func (s *Secrets) MatchesCheck(f Fingerprint, check string) bool {
	for _, k := range s.keys {
		if hmac.Equal([]byte(k.CheckOf(f)), []byte(check)) {
			return true
		}
	}
	return false
}

// KeyID is the stored id of an Idempotency-Key: its SHA-256, hex.
func KeyID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// answerAEAD is the cipher of a stored answer: AES-256-GCM under
// HKDF(server secret, salt = fingerprint).
func (s *Secrets) answerAEAD(f Fingerprint) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, s.root, f[:], labelAnswer, 32)
	if err != nil {
		return nil, err
	}
	return newGCM(k)
}

// SealAnswer encrypts a stored answer for the request with fingerprint f;
// keyID is authenticated with it, so a sealed answer cannot be moved to
// another key.
func (s *Secrets) SealAnswer(f Fingerprint, keyID string, status int, body []byte) ([]byte, error) {
	aead, err := s.answerAEAD(f)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, 2, 2+len(body))
	plain[0], plain[1] = byte(status>>8), byte(status)
	plain = append(plain, body...)
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(out)
	return aead.Seal(out, out, plain, []byte(keyID)), nil
}

// OpenAnswer decrypts a stored answer, sealed under the current secret or
// a previous one; it fails without the fingerprint of the original
// request.
func (s *Secrets) OpenAnswer(f Fingerprint, keyID string, sealed []byte) (status int, body []byte, err error) {
	for _, k := range s.keys {
		if status, body, err = k.openAnswer(f, keyID, sealed); err == nil {
			return status, body, nil
		}
	}
	return 0, nil, err
}

func (s *Secrets) openAnswer(f Fingerprint, keyID string, sealed []byte) (status int, body []byte, err error) {
	aead, err := s.answerAEAD(f)
	if err != nil {
		return 0, nil, err
	}
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead()+2 {
		return 0, nil, errors.New("bff: stored answer too short")
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(keyID))
	if err != nil {
		return 0, nil, fmt.Errorf("bff: stored answer: %w", err)
	}
	return int(plain[0])<<8 | int(plain[1]), plain[2:], nil
}
