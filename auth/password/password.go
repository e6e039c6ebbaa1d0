// Package password hashes passwords with Argon2id (RFC 9106) in the PHC
// string format and verifies them, together with Django's pbkdf2_sha256
// hashes of users imported from the Django database. It bounds how many
// hashes run at once, so a flood of registrations cannot exhaust memory.
package password

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/acme/customer-platform/auth"
)

// Params are the Argon2id cost parameters.
type Params struct {
	MemoryKiB   uint32 // m
	Iterations  uint32 // t
	Parallelism uint8  // p
}

// OWASP is the OWASP Password Storage Cheat Sheet's current minimum for
// Argon2id: 19 MiB of memory, 2 iterations, 1 degree of parallelism.
func OWASP() Params { return Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1} }

// Validate checks the parameters are usable.
func (p Params) Validate() error {
	switch {
	case p.Iterations < 1:
		return errors.New("argon2 iterations must be at least 1")
	case p.Parallelism < 1:
		return errors.New("argon2 parallelism must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Parallelism):
		return errors.New("argon2 memory must be at least 8 KiB per lane")
	case p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("argon2 memory must be at most %d KiB", maxMemoryKiB)
	}
	return nil
}

const (
	saltLen = 16
	keyLen  = 32
	// Bounds on the parameters read from stored hashes, so a corrupt or
	// hostile record cannot make verification run away.
	maxMemoryKiB      = 1 << 20 // 1 GiB
	maxIterations     = 64
	maxPBKDF2Rounds   = 10_000_000
	djangoPBKDF2      = "pbkdf2_sha256"
	djangoPBKDF2KeyLn = 32
)

// Hasher implements auth.Hasher.
type Hasher struct {
	params Params
	sem    chan struct{}
	dummy  string
}

var _ auth.Hasher = (*Hasher)(nil)

// New returns a hasher with the given parameters running at most
// concurrency hashes at once (0 or less: GOMAXPROCS).
func New(p Params, concurrency int) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: p, sem: make(chan struct{}, concurrency)}
	var salt [saltLen]byte
	_, _ = rand.Read(salt[:])
	h.dummy = encode(p, salt[:], argon2.IDKey([]byte("dummy password"), salt[:], p.Iterations, p.MemoryKiB, p.Parallelism, keyLen))
	return h, nil
}

// Params returns the current parameters.
func (h *Hasher) Params() Params { return h.params }

// acquire takes a hashing slot, or gives up when ctx ends.
func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", auth.ErrBusy, ctx.Err())
	}
}

func (h *Hasher) release() { <-h.sem }

// Slots reports how many hashes run now and how many may run at once.
func (h *Hasher) Slots() (busy, limit int) { return len(h.sem), cap(h.sem) }

// Hash returns $argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<hash> (unpadded
// standard base64, as the PHC format and the reference implementation).
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	var salt [saltLen]byte
	_, _ = rand.Read(salt[:])
	p := h.params
	key := argon2.IDKey([]byte(password), salt[:], p.Iterations, p.MemoryKiB, p.Parallelism, keyLen)
	return encode(p, salt[:], key), nil
}

func encode(p Params, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// Verify checks password against an Argon2id or Django pbkdf2_sha256 hash in
// constant time. rehash is true when it matched a hash that is not Argon2id
// with the current parameters. An unknown or malformed format never matches.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, rehash bool, err error) {
	switch {
	case strings.HasPrefix(encoded, "$argon2id$"):
		p, salt, want, err := decodeArgon2id(encoded)
		if err != nil {
			return false, false, nil
		}
		if err := h.acquire(ctx); err != nil {
			return false, false, err
		}
		defer h.release()
		got := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(len(want)))
		ok = subtle.ConstantTimeCompare(got, want) == 1
		return ok, ok && (p != h.params || len(salt) < saltLen || len(want) != keyLen), nil
	case strings.HasPrefix(encoded, djangoPBKDF2+"$"):
		rounds, salt, want, err := decodeDjango(encoded)
		if err != nil {
			return false, false, nil
		}
		if err := h.acquire(ctx); err != nil {
			return false, false, err
		}
		defer h.release()
		got, err := pbkdf2.Key(sha256.New, password, []byte(salt), rounds, djangoPBKDF2KeyLn)
		if err != nil {
			return false, false, nil
		}
		ok = subtle.ConstantTimeCompare(got, want) == 1
		return ok, ok, nil
	}
	return false, false, nil
}

// VerifyDummy computes one Argon2id hash with the current parameters and
// throws it away.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) error {
	_, _, err := h.Verify(ctx, password, h.dummy)
	return err
}

var errMalformed = errors.New("malformed password hash")

func decodeArgon2id(s string) (Params, []byte, []byte, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, errMalformed
	}
	var p Params
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Params{}, nil, nil, errMalformed
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Params{}, nil, nil, errMalformed
		}
		switch k {
		case "m":
			p.MemoryKiB = uint32(n)
		case "t":
			p.Iterations = uint32(n)
		case "p":
			if n > 255 {
				return Params{}, nil, nil, errMalformed
			}
			p.Parallelism = uint8(n)
		default:
			return Params{}, nil, nil, errMalformed
		}
	}
	if p.Validate() != nil || p.Iterations > maxIterations {
		return Params{}, nil, nil, errMalformed
	}
	salt, err := decodeB64(parts[4])
	if err != nil || len(salt) < 8 {
		return Params{}, nil, nil, errMalformed
	}
	key, err := decodeB64(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return Params{}, nil, nil, errMalformed
	}
	return p, salt, key, nil
}

// decodeB64 accepts unpadded (PHC) and padded standard base64.
func decodeB64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// decodeDjango parses pbkdf2_sha256$<iterations>$<salt>$<base64 hash>.
func decodeDjango(s string) (int, string, []byte, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 4 || parts[0] != djangoPBKDF2 || parts[2] == "" {
		return 0, "", nil, errMalformed
	}
	rounds, err := strconv.Atoi(parts[1])
	if err != nil || rounds < 1 || rounds > maxPBKDF2Rounds {
		return 0, "", nil, errMalformed
	}
	want, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || len(want) != djangoPBKDF2KeyLn {
		return 0, "", nil, errMalformed
	}
	return rounds, parts[2], want, nil
}

// DjangoPBKDF2 encodes a hash in Django's pbkdf2_sha256 format (for tests and
// tools that prepare imported users).
func DjangoPBKDF2(password, salt string, rounds int) (string, error) {
	key, err := pbkdf2.Key(sha256.New, password, []byte(salt), rounds, djangoPBKDF2KeyLn)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s$%d$%s$%s", djangoPBKDF2, rounds, salt, base64.StdEncoding.EncodeToString(key)), nil
}
