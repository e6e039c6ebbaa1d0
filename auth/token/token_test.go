package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/contract"
)

const key = "interop-signing-key-0123456789abcdef"

var user = auth.User{ID: "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b", Email: "ann@example.com", FirstName: "Ann", LastName: "Lee", Role: contract.RoleEmployee}

func newIssuer(t testing.TB, cfg Config) *Issuer {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = []byte(key)
	}
	i, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func segments(t *testing.T, tok string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(raw, dst) != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return header, payload
}

func TestPairClaims(t *testing.T) {
	t.Parallel()
	i := newIssuer(t, Config{})
	now := time.Unix(1_800_000_000, 0)
	p, err := i.Pair(user, now)
	if err != nil {
		t.Fatal(err)
	}
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for tok, want := range map[string]struct {
		typ string
		ttl float64
	}{p.Access: {"access", 300}, p.Refresh: {"refresh", 86400}} {
		h, c := segments(t, tok)
		if h["alg"] != "HS256" || h["typ"] != "JWT" {
			t.Errorf("header %v", h)
		}
		if c["token_type"] != want.typ || c["user_id"] != user.ID || c["email"] != user.Email || c["first_name"] != "Ann" ||
			c["last_name"] != "Lee" || c["user_role"] != "employee" || c["iat"] != float64(now.Unix()) ||
			c["exp"] != float64(now.Unix())+want.ttl || !hex32.MatchString(c["jti"].(string)) {
			t.Errorf("%s claims %v", want.typ, c)
		}
		if _, ok := c["iss"]; ok {
			t.Errorf("iss set without JWT_ISSUER: %v", c)
		}
	}
	_, a := segments(t, p.Access)
	_, r := segments(t, p.Refresh)
	if a["jti"] == r["jti"] {
		t.Error("access and refresh share a jti")
	}
}

func TestServiceTokenClaims(t *testing.T) {
	t.Parallel()
	i := newIssuer(t, Config{})
	now := time.Now()
	st, err := i.Service("bff", []string{"users:read", "users:delete:customers"}, now)
	if err != nil {
		t.Fatal(err)
	}
	_, c := segments(t, st.Access)
	if c["user_role"] != "service" || c["user_id"] != "bff" || c["token_type"] != "access" || c["exp"].(float64)-c["iat"].(float64) != 300 ||
		c["scope"] != "users:read users:delete:customers" {
		t.Fatalf("claims %v", c)
	}
	// A client granted nothing has an empty scope claim, not none.
	st, err = i.Service("bare", nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, c := segments(t, st.Access); c["scope"] != "" {
		t.Fatalf("claims of a client without scopes: %v", c)
	}
	if !st.ExpiresAt.Equal(now.Add(5 * time.Minute).Truncate(time.Second)) {
		t.Fatalf("ExpiresAt %v", st.ExpiresAt)
	}
}

func sign(t *testing.T, m jwt.SigningMethod, k any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseRefresh(t *testing.T) {
	t.Parallel()
	i := newIssuer(t, Config{})
	now := time.Now()
	p, _ := i.Pair(user, now)
	c, err := i.ParseRefresh(p.Refresh, now)
	if err != nil || c.UserID != user.ID || len(c.JTI) != 32 || !c.ExpiresAt.Equal(now.Add(24*time.Hour).Truncate(time.Second)) {
		t.Fatalf("ParseRefresh = %+v, %v", c, err)
	}
	// Within the 30 s leeway after expiry: accepted; beyond it: refused.
	if _, err := i.ParseRefresh(p.Refresh, now.Add(24*time.Hour+20*time.Second)); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"token_type": "refresh", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "jti": NewJTI(), "user_id": user.ID}
	}
	with := func(k string, v any) jwt.MapClaims { c := base(); c[k] = v; return c }
	without := func(k string) jwt.MapClaims { c := base(); delete(c, k); return c }
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, base())
	bad := map[string]string{
		"expired":      p.Refresh + "",
		"access":       p.Access,
		"wrong key":    sign(t, jwt.SigningMethodHS256, []byte("another key"), base()),
		"HS512":        sign(t, jwt.SigningMethodHS512, []byte(key), base()),
		"alg none":     none,
		"no exp":       sign(t, jwt.SigningMethodHS256, []byte(key), without("exp")),
		"no jti":       sign(t, jwt.SigningMethodHS256, []byte(key), without("jti")),
		"numeric user": sign(t, jwt.SigningMethodHS256, []byte(key), with("user_id", 42)),
		"garbage":      "not.a.token",
		"huge":         strings.Repeat("a", authclient.MaxTokenBytes+1),
	}
	for name, tok := range bad {
		at := now
		if name == "expired" {
			at = now.Add(24*time.Hour + 31*time.Second)
		}
		if _, err := i.ParseRefresh(tok, at); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Errorf("%s: err = %v, want ErrTokenInvalid", name, err)
		}
	}
}

func TestIssuerAndAudience(t *testing.T) {
	t.Parallel()
	strict := newIssuer(t, Config{Issuer: "https://auth.example", Audience: "platform"})
	loose := newIssuer(t, Config{})
	now := time.Now()
	p, _ := strict.Pair(user, now)
	_, c := segments(t, p.Access)
	if c["iss"] != "https://auth.example" || c["aud"] != "platform" {
		t.Fatalf("claims %v", c)
	}
	if _, err := strict.ParseRefresh(p.Refresh, now); err != nil {
		t.Fatal(err)
	}
	lp, _ := loose.Pair(user, now)
	if _, err := strict.ParseRefresh(lp.Refresh, now); err == nil {
		t.Fatal("a token without iss/aud was accepted where they are configured")
	}
	v, _ := authclient.NewVerifier(authclient.VerifierConfig{Key: []byte(key), Issuer: "https://auth.example", Audience: "platform"})
	if _, err := v.Verify(p.Access); err != nil {
		t.Fatalf("verifier with iss/aud: %v", err)
	}
	if _, err := v.Verify(lp.Access); err == nil {
		t.Fatal("verifier accepted a token without iss/aud")
	}
}

// simplejwt runs testdata/simplejwt.py with a Python that has Django and
// djangorestframework-simplejwt (Debian: python3-djangorestframework-simplejwt),
// or skips the test.
func simplejwt(t *testing.T, args ...string) map[string]any {
	t.Helper()
	for _, py := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, append([]string{"testdata/simplejwt.py", key}, args...)...).Output()
		if ee, ok := errors.AsType[*exec.ExitError](err); ok && ee.ExitCode() == 2 {
			continue // this Python lacks Django or simplejwt
		}
		if err != nil {
			if ee, ok := errors.AsType[*exec.ExitError](err); ok {
				t.Fatalf("simplejwt %v: %v: %s", args[0], err, ee.Stderr)
			}
			t.Fatalf("simplejwt %v: %v", args[0], err)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("simplejwt output %q: %v", out, err)
		}
		return m
	}
	t.Skip("no python3 with Django and djangorestframework-simplejwt (apt-get install python3-djangorestframework-simplejwt): interoperability not checked")
	return nil
}

func TestSimpleJWTAcceptsOurTokens(t *testing.T) {
	t.Parallel()
	p, _ := newIssuer(t, Config{}).Pair(user, time.Now())
	a := simplejwt(t, "verify-access", p.Access)
	if a["user_id"] != user.ID || a["token_type"] != "access" || a["user_role"] != "employee" {
		t.Fatalf("simplejwt read the access token as %v", a)
	}
	r := simplejwt(t, "verify-refresh", p.Refresh)
	if r["user_id"] != user.ID || r["token_type"] != "refresh" {
		t.Fatalf("simplejwt read the refresh token as %v", r)
	}
}

func TestWeAcceptSimpleJWTTokens(t *testing.T) {
	t.Parallel()
	m := simplejwt(t, "mint", user.ID)
	c, err := newIssuer(t, Config{}).ParseRefresh(m["refresh"].(string), time.Now())
	if err != nil || c.UserID != user.ID || len(c.JTI) != 32 {
		t.Fatalf("simplejwt refresh token: %+v %v", c, err)
	}
	v, _ := authclient.NewVerifier(authclient.VerifierConfig{Key: []byte(key)})
	claims, err := v.Verify(m["access"].(string))
	if err != nil || claims.UserID != user.ID || claims.Role != "customer" || claims.Email != "py@example.com" {
		t.Fatalf("simplejwt access token: %+v %v", claims, err)
	}
}

func BenchmarkPair(b *testing.B) {
	i := newIssuer(b, Config{})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := i.Pair(user, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRefresh(b *testing.B) {
	i := newIssuer(b, Config{})
	now := time.Now()
	p, _ := i.Pair(user, now)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := i.ParseRefresh(p.Refresh, now); err != nil {
			b.Fatal(err)
		}
	}
}
