// Package config reads a binary's configuration from its environment through
// an injectable lookup function, so tests pass their own environment and every
// key a binary reads is known (see Reader.Keys).
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Lookup returns the value of an environment variable and whether it is set;
// os.LookupEnv is the production one.
type Lookup func(key string) (string, bool)

// Env is the process environment.
var Env Lookup = os.LookupEnv

// FromMap is a Lookup over a fixed map, for tests.
func FromMap(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Overlay looks keys up in m first, then in next.
func Overlay(m map[string]string, next Lookup) Lookup {
	return func(k string) (string, bool) {
		if v, ok := m[k]; ok {
			return v, true
		}
		return next(k)
	}
}

// Secret is a configuration value that is never printed: its String and JSON
// forms are masked, so logging a config struct does not leak it.
type Secret string

const masked = "*****"

// String masks the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return masked
}

// MarshalJSON masks the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, s.String()), nil }

// Reveal returns the secret's value, for the one place that uses it.
func (s Secret) Reveal() string { return string(s) }

// Reader reads typed values and collects every problem, so a bad
// configuration is reported whole at start.
type Reader struct {
	lookup Lookup
	errs   []error
	keys   []string
}

// New returns a Reader over lookup (nil means the process environment).
func New(lookup Lookup) *Reader {
	if lookup == nil {
		lookup = Env
	}
	return &Reader{lookup: lookup}
}

func (r *Reader) get(key string) (string, bool) {
	if !slices.Contains(r.keys, key) {
		r.keys = append(r.keys, key)
	}
	v, ok := r.lookup(key)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func (r *Reader) fail(key, v, want string) {
	r.errs = append(r.errs, fmt.Errorf("%s=%q: %s", key, v, want))
}

// String returns the value of key, or def when unset or empty.
func (r *Reader) String(key, def string) string {
	if v, ok := r.get(key); ok {
		return v
	}
	return def
}

// List returns the comma-separated values of key, trimmed, empty ones
// dropped; nil when unset.
func (r *Reader) List(key string) []string {
	v, ok := r.get(key)
	if !ok {
		return nil
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Secret returns the value of key as a Secret, or def.
func (r *Reader) Secret(key string, def Secret) Secret {
	if v, ok := r.get(key); ok {
		return Secret(v)
	}
	return def
}

// Duration parses a Go duration ("1.5s", "5m").
func (r *Reader) Duration(key string, def time.Duration) time.Duration {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		r.fail(key, v, "want a non-negative duration such as 500ms, 5m or 24h")
		return def
	}
	return d
}

// Int parses a decimal integer.
func (r *Reader) Int(key string, def int) int {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.fail(key, v, "want an integer")
		return def
	}
	return n
}

// Bool parses true/false/1/0/yes/no.
func (r *Reader) Bool(key string, def bool) bool {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	r.fail(key, v, "want true or false")
	return def
}

// URL parses an absolute URL (scheme and host required); def is returned when unset.
func (r *Reader) URL(key, def string) string {
	v, ok := r.get(key)
	if !ok {
		return def
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		r.fail(key, v, "want an absolute URL such as http://127.0.0.1:8001")
		return def
	}
	return strings.TrimRight(v, "/")
}

// Development is the DEPLOYMENT_ENVIRONMENT of local development and the
// tests, where weak development secrets are allowed.
const Development = "development"

// MinSigningKey is the shortest HS256 key accepted outside development:
// RFC 7518 §3.2 requires a key of at least the hash's size, 256 bits.
const MinSigningKey = 32

// SigningKey reads the required HS256 key of key. Outside development
// (environment other than Development) a key shorter than MinSigningKey
// bytes is refused, naming the variable, so a service never runs in
// production with a key that can be guessed offline from one token.
func (r *Reader) SigningKey(key, environment string) Secret {
	s := r.Secret(key, "")
	if s == "" {
		r.Check(false, key, "required: the HS256 key shared by the auth service and the services that verify its tokens")
	} else {
		r.checkKeyLength(key, "", string(s), environment)
	}
	return s
}

// checkKeyLength refuses an HS256 key shorter than MinSigningKey outside
// development; which names the key among several ("" when alone).
func (r *Reader) checkKeyLength(key, which, s, environment string) {
	if len(s) < MinSigningKey && environment != Development {
		r.Check(false, key, fmt.Sprintf("%stoo short: %d bytes, an HS256 key needs at least %d (RFC 7518 §3.2) outside DEPLOYMENT_ENVIRONMENT=%s",
			which, len(s), MinSigningKey, Development))
	}
}

// SigningKeys are the HS256 keys of a key rotation: tokens are signed with
// Current; Previous are still accepted for a grace period. Both are masked
// when logged.
type SigningKeys struct {
	Current  Secret   `json:"current"`
	Previous []Secret `json:"previous"`
}

// Key is the current key, as the issuer and authclient.VerifierConfig's Key take it.
func (k SigningKeys) Key() []byte { return []byte(k.Current) }

// PreviousKeys are the previous keys, as authclient.VerifierConfig's PreviousKeys take them.
func (k SigningKeys) PreviousKeys() [][]byte {
	var out [][]byte
	for _, p := range k.Previous {
		out = append(out, []byte(p))
	}
	return out
}

// SigningKeys reads a rotation's keys: the current one from key (required,
// as SigningKey reads it) and the previous ones, comma-separated, from
// previousKey (optional; each held to the same length rule). A service
// verifying tokens passes both to authclient.VerifierConfig:
//
//	keys := r.SigningKeys("JWT_SIGNING_KEY", "JWT_PREVIOUS_SIGNING_KEYS", env)
//	authclient.VerifierConfig{Key: keys.Key(), PreviousKeys: keys.PreviousKeys(), ...}
func (r *Reader) SigningKeys(key, previousKey, environment string) SigningKeys {
	k := SigningKeys{Current: r.SigningKey(key, environment)}
	for i, p := range r.List(previousKey) {
		r.checkKeyLength(previousKey, fmt.Sprintf("key %d ", i+1), p, environment)
		k.Previous = append(k.Previous, Secret(p))
	}
	return k
}

// Check records a problem found by the caller's own validation.
func (r *Reader) Check(ok bool, key, msg string) {
	if !ok {
		r.errs = append(r.errs, fmt.Errorf("%s: %s", key, msg))
	}
}

// Err returns every problem found, joined, or nil.
func (r *Reader) Err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %w", errors.Join(r.errs...))
}

// Keys lists every key read so far, in order of first read.
func (r *Reader) Keys() []string { return slices.Clone(r.keys) }
