package httpapi

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/customer-platform/internal/contract"
)

func TestTokenChecks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	owner := newPerson(t, contract.RoleCustomer)
	h.createProfile(owner, nil)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	with := func(change func(jwt.MapClaims)) jwt.MapClaims {
		c := claimsFor(owner.ID, contract.RoleCustomer)
		change(c)
		return c
	}
	b64 := base64.RawURLEncoding.EncodeToString
	unsigned := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(`{"token_type":"access","user_id":"`+owner.ID+`","user_role":"customer","exp":`+strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)+`}`)) + "."
	for _, c := range []struct {
		name   string
		header string
		status int
		code   string
	}{
		{"valid", "Bearer " + owner.Token, 200, ""},
		{"no header", "", 401, "not_authenticated"},
		{"other scheme", "Basic dXNlcjpwYXNz", 401, "not_authenticated"},
		{"bearer without token", "Bearer ", 401, "not_authenticated"},
		{"alg none", "Bearer " + unsigned, 401, "token_not_valid"},
		{"wrong key", "Bearer " + mint(t, []byte("another-key-entirely-0123456789abcdef"), jwt.SigningMethodHS256, claimsFor(owner.ID, "customer")), 401, "token_not_valid"},
		{"HS512", "Bearer " + mint(t, testKey, jwt.SigningMethodHS512, claimsFor(owner.ID, "customer")), 401, "token_not_valid"},
		{"RS256", "Bearer " + mint(t, rsaKey, jwt.SigningMethodRS256, claimsFor(owner.ID, "customer")), 401, "token_not_valid"},
		{"missing exp", "Bearer " + mint(t, testKey, jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { delete(c, "exp") })), 401, "token_not_valid"},
		{"expired beyond leeway", "Bearer " + mint(t, testKey, jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-90 * time.Second).Unix() })), 401, "token_not_valid"},
		{"expired within leeway", "Bearer " + mint(t, testKey, jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() })), 200, ""},
		{"refresh token", "Bearer " + mint(t, testKey, jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { c["token_type"] = "refresh" })), 401, "token_not_valid"},
		{"unknown role", "Bearer " + mint(t, testKey, jwt.SigningMethodHS256, with(func(c jwt.MapClaims) { c["user_role"] = "root" })), 401, "token_not_valid"},
		{"garbage", "Bearer not-a-token", 401, "token_not_valid"},
		{"garbage with dots", "Bearer a.b.c", 401, "token_not_valid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r response
			if c.header == "" {
				r = h.do("GET", apiPath("profile/"), "", nil)
			} else {
				r = h.do("GET", apiPath("profile/"), "", nil, "Authorization", c.header)
			}
			if r.Code != c.status {
				t.Fatalf("status %d, want %d: %s", r.Code, c.status, r.Body)
			}
			if c.code != "" {
				if got := r.json(t)["code"]; got != c.code {
					t.Fatalf("code %v, want %s", got, c.code)
				}
				if r.Header.Get("WWW-Authenticate") == "" {
					t.Fatal("no WWW-Authenticate header")
				}
			}
		})
	}
}

// TestHugeAuthorizationHeader: a megabyte of dots is refused without being
// parsed: 401, and the memory a refusal allocates is bounded far below the
// header's size (the header itself is built once, before measuring).
func TestHugeAuthorizationHeader(t *testing.T) {
	h := newHarness(t)
	huge := "Bearer " + strings.Repeat(".", 1<<20)
	req := httptest.NewRequest(http.MethodGet, apiPath("profile/"), nil)
	req.Header.Set("Authorization", huge)
	serve := func() int {
		rec := httptest.NewRecorder()
		h.engine.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := serve(); code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", code)
	}
	const runs = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		serve()
	}
	runtime.ReadMemStats(&after)
	perRequest := (after.TotalAlloc - before.TotalAlloc) / runs
	if perRequest > 256<<10 {
		t.Fatalf("refusing the header allocated %d bytes per request; the header is %d bytes", perRequest, len(huge))
	}
	allocs := testing.AllocsPerRun(runs, func() { serve() })
	if allocs > 500 {
		t.Fatalf("%.0f allocations per refusal", allocs)
	}
}
