package authclient_test

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/auth/token"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/contract"
)

const vkey = "verifier-test-key-0123456789abcdef"

const uid = "7d0c1a1e-2b3c-4d5e-8f90-a1b2c3d4e5f6"

func claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"token_type": "access", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		"jti": token.NewJTI(), "user_id": uid, "email": "v@example.com", "user_role": "customer",
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func mint(t testing.TB, m jwt.SigningMethod, k any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t testing.TB, cfg authclient.VerifierConfig) *authclient.Verifier {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = []byte(vkey)
	}
	v, err := authclient.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifierRejects(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, authclient.VerifierConfig{})
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	hs := func(mod func(jwt.MapClaims)) string {
		return mint(t, jwt.SigningMethodHS256, []byte(vkey), claims(mod))
	}
	cases := map[string]string{
		"alg none":           mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)),
		"wrong key":          mint(t, jwt.SigningMethodHS256, []byte("another-key"), claims(nil)),
		"HS512":              mint(t, jwt.SigningMethodHS512, []byte(vkey), claims(nil)),
		"RS256":              mint(t, jwt.SigningMethodRS256, rsaKey, claims(nil)),
		"missing exp":        hs(func(c jwt.MapClaims) { delete(c, "exp") }),
		"expired beyond 30s": hs(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-45 * time.Second).Unix() }),
		"refresh as access":  hs(func(c jwt.MapClaims) { c["token_type"] = "refresh" }),
		"no token_type":      hs(func(c jwt.MapClaims) { delete(c, "token_type") }),
		"numeric user_id":    hs(func(c jwt.MapClaims) { c["user_id"] = 42 }),
		"user_id not uuid":   hs(func(c jwt.MapClaims) { c["user_id"] = "alice" }),
		"unknown role":       hs(func(c jwt.MapClaims) { c["user_role"] = "superuser" }),
		"issued in future":   hs(func(c jwt.MapClaims) { c["iat"] = time.Now().Add(time.Hour).Unix() }),
		"garbage":            "garbage",
		"three garbage":      "a.b.c",
		"empty":              "",
		"8 KiB+":             hs(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", 8<<10) }),
	}
	for name, tok := range cases {
		if c, err := v.Verify(tok); !errors.Is(err, authclient.ErrInvalidToken) || c != nil {
			t.Errorf("%s: accepted (%+v, %v)", name, c, err)
		}
	}
}

func TestVerifierAccepts(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, authclient.VerifierConfig{})
	// Expired 10 s ago: within the 30 s leeway.
	within := mint(t, jwt.SigningMethodHS256, []byte(vkey), claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() }))
	if _, err := v.Verify(within); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	// Our own tokens.
	iss, err := token.New(token.Config{Key: []byte(vkey)})
	if err != nil {
		t.Fatal(err)
	}
	u := auth.User{ID: uid, Email: "a@example.com", FirstName: "A", LastName: "B", Role: contract.RoleAdmin}
	p, _ := iss.Pair(u, time.Now())
	c, err := v.Verify(p.Access)
	if err != nil || c.UserID != uid || c.Role != "admin" || !c.IsStaff() || c.Email != "a@example.com" || len(c.JTI) != 32 {
		t.Fatalf("our access token: %+v %v", c, err)
	}
	if _, err := v.Verify(p.Refresh); err == nil {
		t.Fatal("our refresh token accepted as access")
	}
	st, _ := iss.Service("bff", []string{"users:read", "customers:read"}, time.Now())
	if c, err := v.Verify(st.Access); err != nil || c.Role != "service" || c.UserID != "bff" || !c.ScopeClaim ||
		!slices.Equal(c.Scopes, []string{"users:read", "customers:read"}) {
		t.Fatalf("service token: %+v %v", c, err)
	}
	// A token without a scope claim (a user's, or one issued before scopes) says so.
	if c, _ := v.Verify(p.Access); c.ScopeClaim || len(c.Scopes) != 0 {
		t.Fatalf("a user's token has scopes: %+v", c)
	}
	// A simplejwt token of a plain user may omit the role.
	plain := mint(t, jwt.SigningMethodHS256, []byte(vkey), claims(func(c jwt.MapClaims) { delete(c, "user_role") }))
	if c, err := v.Verify(plain); err != nil || c.Role != "customer" {
		t.Fatalf("no role: %+v %v", c, err)
	}
}

func TestVerifierIssuerAudience(t *testing.T) {
	t.Parallel()
	v := newVerifier(t, authclient.VerifierConfig{Issuer: "https://auth.example", Audience: "platform"})
	good := mint(t, jwt.SigningMethodHS256, []byte(vkey), claims(func(c jwt.MapClaims) { c["iss"] = "https://auth.example"; c["aud"] = "platform" }))
	if _, err := v.Verify(good); err != nil {
		t.Fatalf("good iss/aud: %v", err)
	}
	for name, mod := range map[string]func(jwt.MapClaims){
		"no iss":    func(c jwt.MapClaims) { c["aud"] = "platform" },
		"wrong iss": func(c jwt.MapClaims) { c["iss"] = "https://evil.example"; c["aud"] = "platform" },
		"no aud":    func(c jwt.MapClaims) { c["iss"] = "https://auth.example" },
		"wrong aud": func(c jwt.MapClaims) { c["iss"] = "https://auth.example"; c["aud"] = "other" },
	} {
		if _, err := v.Verify(mint(t, jwt.SigningMethodHS256, []byte(vkey), claims(mod))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Without configuration, iss and aud are not required.
	if _, err := newVerifier(t, authclient.VerifierConfig{}).Verify(good); err != nil {
		t.Fatalf("unconfigured verifier: %v", err)
	}
	if _, err := authclient.NewVerifier(authclient.VerifierConfig{}); err == nil {
		t.Fatal("a verifier without a key was built")
	}
}

func BenchmarkVerify(b *testing.B) {
	v := newVerifier(b, authclient.VerifierConfig{})
	iss, _ := token.New(token.Config{Key: []byte(vkey)})
	p, _ := iss.Pair(auth.User{ID: uid, Email: "a@example.com", Role: contract.RoleCustomer}, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(p.Access); err != nil {
			b.Fatal(err)
		}
	}
}
