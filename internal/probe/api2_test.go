package probe

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// probeAPI2BrokenAuthentication: forged and misused tokens on the
// endpoints of every service that need one, and brute force on the login.
func probeAPI2BrokenAuthentication(t *testing.T, s *suite) {
	victim := s.customerAccount(t, "authn-victim")
	// Where a token opens something: the caller's own data at each service,
	// and the staff data of each.
	targets := []struct {
		method, url string
		genuine     *account // whose genuine token opens it
	}{
		{http.MethodGet, s.auth + "/api/auth/profile/", victim},
		{http.MethodGet, s.auth + "/api/auth/users/?email=" + victim.email, s.admin},
		{http.MethodGet, s.customer + "/api/v1/customers/profile/", victim},
		{http.MethodGet, s.customer + "/api/v1/customers/?page_size=100", s.admin},
		{http.MethodGet, s.bff + "/api/bff/me/", victim},
	}
	// The control: a genuine token opens every target, so a refusal below
	// is the token's.
	for _, tg := range targets {
		if a := s.call(t, tg.method, tg.url, nil, tg.genuine.as()); a.Status != http.StatusOK {
			t.Fatalf("a genuine token at %s %s: %s", tg.method, tg.url, a)
		}
	}

	// Forgeries claim to be the victim with the admin role: the victim's
	// claims, re-signed or altered, would open every target.
	claims := with2(claimsOf(t, victim.access), "user_role", "admin")
	key := []byte(systest.SigningKey)
	attackerKey, err := rsa.GenerateKey(rand.Reader, 2048)
	testenv.Must(t, err, "RSA key")
	forged := map[string]string{
		"alg none":                        sign(t, jwt.SigningMethodNone, nil, claims, jwt.UnsafeAllowNoneSignatureType),
		"alg none, no signature":          unsigned(t, "none", claims),
		"HS256 with a guessed key":        sign(t, jwt.SigningMethodHS256, nil, claims, []byte("secret")),
		"HS256 with another key":          sign(t, jwt.SigningMethodHS256, nil, claims, randomKey(t)),
		"HS512 with the real key":         sign(t, jwt.SigningMethodHS512, nil, claims, key),
		"HS384 with the real key":         sign(t, jwt.SigningMethodHS384, nil, claims, key),
		"RS256 by the attacker":           sign(t, jwt.SigningMethodRS256, map[string]any{"jwk": publicJWK(&attackerKey.PublicKey)}, claims, attackerKey),
		"RS256 header, HMAC body":         resign(t, "RS256", claims, key),
		"kid pointing at /dev/null":       sign(t, jwt.SigningMethodHS256, map[string]any{"kid": "../../../../../../dev/null"}, claims, []byte{}),
		"the real key's kid, another key": sign(t, jwt.SigningMethodHS256, map[string]any{"kid": authclient.KeyID(key)}, claims, randomKey(t)),
		"a customer's token made admin": tamper(t, victim.access, func(c jwt.MapClaims) {
			c["user_role"] = "admin"
		}),
		"expired an hour ago":        sign(t, jwt.SigningMethodHS256, nil, with2(claims, "exp", time.Now().Add(-time.Hour).Unix()), key),
		"no exp":                     sign(t, jwt.SigningMethodHS256, nil, without(claims, "exp"), key),
		"token_type refresh":         sign(t, jwt.SigningMethodHS256, nil, with2(claims, "token_type", "refresh"), key),
		"no token_type":              sign(t, jwt.SigningMethodHS256, nil, without(claims, "token_type"), key),
		"the signature cut":          strings.Join(strings.Split(victim.access, ".")[:2], ".") + ".",
		"the victim's refresh token": victim.refresh,
	}
	for name, tok := range forged {
		for _, tg := range targets {
			what := fmt.Sprintf("%s at %s %s", name, tg.method, strings.SplitN(tg.url, "?", 2)[0])
			a := s.call(t, tg.method, tg.url, nil, with(from(victim.addr), "Authorization", "Bearer "+tok))
			wantError(t, what, a, http.StatusUnauthorized, "token_not_valid", "not_authenticated")
		}
	}

	// A service token never works on the self-service endpoints, and
	// changes nothing there.
	svc := s.serviceToken(t, systest.BFFClientID, systest.BFFClientSecret)
	for _, c := range []struct {
		method, url string
		body        any
	}{
		{http.MethodGet, s.auth + "/api/auth/profile/", nil},
		{http.MethodPatch, s.auth + "/api/auth/profile/update/", map[string]any{"first_name": "Svc"}},
		{http.MethodDelete, s.auth + "/api/auth/profile/delete/", nil},
		{http.MethodGet, s.customer + "/api/v1/customers/profile/", nil},
		{http.MethodPost, s.customer + "/api/v1/customers/profile/create/", map[string]any{"street_address": "1 A St", "city": "B", "postal_code": "97201"}},
		{http.MethodDelete, s.customer + "/api/v1/customers/profile/delete/", nil},
		{http.MethodGet, s.bff + "/api/bff/me/", nil},
		{http.MethodPatch, s.bff + "/api/bff/me/", map[string]any{"first_name": "Svc"}},
		{http.MethodDelete, s.bff + "/api/bff/me/", nil},
	} {
		a := s.call(t, c.method, c.url, c.body, with(from(s.newAddr()), "Authorization", "Bearer "+svc))
		if a.Status != http.StatusUnauthorized && a.Status != http.StatusForbidden {
			t.Errorf("a service token at %s %s: %s, want 401 or 403", c.method, c.url, a)
			continue
		}
		wantError(t, "a service token at "+c.method+" "+c.url, a, a.Status)
	}

	// A refresh token ends with its logout (a rotated one replayed:
	// probeAPI2RefreshTokenReuse).
	sess := s.loginAt(t, s.auth+"/api/auth/login/", victim.email, victim.password)
	if a := s.call(t, http.MethodPost, s.auth+"/api/auth/logout/", map[string]string{"refresh": sess.refresh}, sess.as()); a.Status != http.StatusResetContent {
		t.Fatalf("logout: %s", a)
	}
	a := s.call(t, http.MethodPost, s.auth+"/api/auth/token/refresh/", map[string]string{"refresh": sess.refresh}, from(sess.addr))
	wantError(t, "a refresh token after its logout", a, http.StatusUnauthorized, "token_not_valid")

	probeBruteForce(t, s)
}

// probeBruteForce: wrong passwords for one email from one address are
// throttled before many guesses, the right one included, with the
// contract's 429.
func probeBruteForce(t *testing.T, s *suite) {
	target := s.customerAccount(t, "bruteforce")
	attacker := s.newAddr()
	const maxGuesses = 30
	throttled := false
	for i := range maxGuesses {
		a := s.call(t, http.MethodPost, s.auth+"/api/auth/login/", map[string]string{"email": target.email, "password": fmt.Sprintf("Guess-%d-Password", i)}, from(attacker))
		if a.Status == http.StatusTooManyRequests {
			wantThrottled(t, "brute force", a)
			throttled = true
			break
		}
		if a.Status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %s, want 401 or 429", i, a)
		}
	}
	if !throttled {
		t.Fatalf("%d wrong passwords for one email from one address were not throttled", maxGuesses)
	}
	a := s.call(t, http.MethodPost, s.auth+"/api/auth/login/", map[string]string{"email": target.email, "password": target.password}, from(attacker))
	if a.Status != http.StatusTooManyRequests {
		t.Errorf("the attacker's next guess, the right password, was not throttled: %d", a.Status)
	}
	if strings.Contains(string(a.Body), "access") {
		t.Errorf("a throttled login answered tokens: %s", a)
	}
}

// wantThrottled checks a 429: the contract's shape and a Retry-After of
// whole seconds.
func wantThrottled(t *testing.T, what string, a testenv.Answer) {
	t.Helper()
	wantError(t, what, a, http.StatusTooManyRequests, "throttled")
	var secs int
	if ra := a.Header.Get("Retry-After"); ra == "" || func() bool { _, err := fmt.Sscanf(ra, "%d", &secs); return err != nil }() || secs < 1 {
		t.Errorf("%s: Retry-After %q, want whole seconds", what, a.Header.Get("Retry-After"))
	}
}

// claimsOf decodes a token's claims without verifying it.
func claimsOf(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	_, _, err := jwt.NewParser().ParseUnverified(token, c)
	testenv.Must(t, err, "decode a token")
	return c
}

func with2(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for kk, vv := range c {
		out[kk] = vv
	}
	out[k] = v
	return out
}

func without(c jwt.MapClaims, k string) jwt.MapClaims {
	out := with2(c, k, nil)
	delete(out, k)
	return out
}

func sign(t *testing.T, m jwt.SigningMethod, header map[string]any, c jwt.MapClaims, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, with2(c, "jti", randomHex()))
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	testenv.Must(t, err, "sign a %s token", m.Alg())
	return s
}

// unsigned is a token with the alg header and no signature at all.
func unsigned(t *testing.T, alg string, c jwt.MapClaims) string {
	t.Helper()
	return segment(t, map[string]any{"alg": alg, "typ": "JWT"}) + "." + segment(t, with2(c, "jti", randomHex())) + "."
}

// resign is a token whose header says alg but whose signature is HS256
// under key: a verifier letting the header pick the algorithm's family
// would take it.
func resign(t *testing.T, alg string, c jwt.MapClaims, key []byte) string {
	t.Helper()
	input := segment(t, map[string]any{"alg": alg, "typ": "JWT"}) + "." + segment(t, with2(c, "jti", randomHex()))
	sig, err := jwt.SigningMethodHS256.Sign(input, key)
	testenv.Must(t, err, "sign")
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// tamper changes a genuine token's claims and keeps its signature.
func tamper(t *testing.T, token string, change func(jwt.MapClaims)) string {
	t.Helper()
	parts := strings.Split(token, ".")
	c := claimsOf(t, token)
	change(c)
	return parts[0] + "." + segment(t, c) + "." + parts[2]
}

func segment(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	testenv.Must(t, err, "encode a token segment")
	return base64.RawURLEncoding.EncodeToString(b)
}

func publicJWK(k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	_, err := rand.Read(k)
	testenv.Must(t, err, "random key")
	return k
}

func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
