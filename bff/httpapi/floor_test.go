package httpapi_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/auth/token"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/httpapi"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/web"
)

const (
	floorKey    = "floor-test-signing-key-0123456789abcdef"
	floorUserID = "5b1f7c2e-8d4a-4e6b-9c3f-2a1d0e9f8b7c"
)

// floorViews is a bff.Views that serves one static body as a cache hit.
type floorViews struct{ body []byte }

var _ bff.Views = floorViews{}

func (v floorViews) View(context.Context, string, string) ([]byte, bff.CacheStatus, error) {
	return v.body, bff.CacheHit, nil
}

func (floorViews) Invalidate(context.Context, string) {}

// floorEngine is the BFF's engine with the routes the floor and GET /me
// need (the saga service is not called by them).
func floorEngine(t testing.TB, floor bool, body []byte) *gin.Engine {
	t.Helper()
	v, err := authclient.NewVerifier(authclient.VerifierConfig{Key: []byte(floorKey)})
	if err != nil {
		t.Fatal(err)
	}
	e := web.NewEngine(web.EngineOptions{Service: "bff", Logger: slog.New(slog.DiscardHandler)})
	httpapi.Routes(e, httpapi.Deps{Views: floorViews{body}, Verifier: v, BenchFloor: floor})
	return e
}

// floorToken is an access token of floorKey for a user of role.
func floorToken(t testing.TB, role string) string {
	t.Helper()
	iss, err := token.New(token.Config{Key: []byte(floorKey), AccessTTL: time.Hour, RefreshTTL: time.Hour, ServiceTokenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if role == contract.RoleService {
		s, err := iss.Service("bench", nil, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s.Access
	}
	p, err := iss.Pair(auth.User{ID: floorUserID, Email: "floor@example.com", Role: role}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p.Access
}

func floorGet(e http.Handler, path, tok string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	return w
}

func TestBenchFloor(t *testing.T) {
	t.Parallel()
	tok := floorToken(t, contract.RoleCustomer)

	if w := floorGet(floorEngine(t, false, nil), "/api/bff/bench/floor/?bytes=100", tok); w.Code != http.StatusNotFound {
		t.Fatalf("floor routed without BFF_BENCH_FLOOR: %d %s", w.Code, w.Body)
	}

	e := floorEngine(t, true, nil)
	for _, n := range []int{12, 13, 1234, 5000, 64 << 10} {
		w := floorGet(e, "/api/bff/bench/floor/?bytes="+strconv.Itoa(n), tok)
		if w.Code != http.StatusOK || w.Body.Len() != n {
			t.Fatalf("bytes=%d: status %d, %d bytes", n, w.Code, w.Body.Len())
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("bytes=%d: Content-Type %q", n, ct)
		}
		var body map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body) != 1 {
			t.Errorf("bytes=%d: not a JSON object of one member: %v", n, err)
		}
		if w.Header().Get(web.RequestIDHeader) == "" {
			t.Errorf("bytes=%d: no request id: the floor must run the engine's middleware", n)
		}
	}

	for _, tc := range []struct {
		name, query, tok string
		status           int
		code             string
	}{
		{"no token", "?bytes=100", "", http.StatusUnauthorized, web.CodeNotAuthenticated},
		{"bad token", "?bytes=100", tok + "x", http.StatusUnauthorized, web.CodeTokenNotValid},
		{"service token", "?bytes=100", floorToken(t, contract.RoleService), http.StatusForbidden, web.CodePermissionDenied},
		{"no size", "", tok, http.StatusBadRequest, ""},
		{"size not a number", "?bytes=ten", tok, http.StatusBadRequest, ""},
		{"size too small", "?bytes=11", tok, http.StatusBadRequest, ""},
		{"size too large", "?bytes=65537", tok, http.StatusBadRequest, ""},
	} {
		w := floorGet(e, "/api/bff/bench/floor/"+tc.query, tc.tok)
		if w.Code != tc.status {
			t.Errorf("%s: status %d %s, want %d", tc.name, w.Code, w.Body, tc.status)
			continue
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Errorf("%s: body %q: %v", tc.name, w.Body, err)
			continue
		}
		if tc.code != "" && body["code"] != tc.code {
			t.Errorf("%s: code %v, want %s", tc.name, body["code"], tc.code)
		}
		if tc.status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") != web.BearerChallenge {
			t.Errorf("%s: a 401 without WWW-Authenticate", tc.name)
		}
		if tc.status == http.StatusBadRequest && body["bytes"] == nil {
			t.Errorf("%s: the 400 does not name the bytes parameter: %s", tc.name, w.Body)
		}
	}
}

// TestMeBearer checks the /me routes' bearer check: a user's token is
// served, a missing or bad one is a 401 naming the scheme, a service
// account's a 403.
func TestMeBearer(t *testing.T) {
	t.Parallel()
	e := floorEngine(t, false, []byte(`{"user":{"id":"`+floorUserID+`"},"profile":null}`))
	user := floorToken(t, contract.RoleCustomer)
	for _, tc := range []struct {
		name, tok string
		status    int
		code      string
	}{
		{"user", user, http.StatusOK, ""},
		{"no token", "", http.StatusUnauthorized, web.CodeNotAuthenticated},
		{"bad token", user + "x", http.StatusUnauthorized, web.CodeTokenNotValid},
		{"service token", floorToken(t, contract.RoleService), http.StatusForbidden, web.CodePermissionDenied},
	} {
		w := floorGet(e, "/api/bff/me/", tc.tok)
		if w.Code != tc.status {
			t.Errorf("%s: status %d %s, want %d", tc.name, w.Code, w.Body, tc.status)
			continue
		}
		var body map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Errorf("%s: body %q: %v", tc.name, w.Body, err)
			continue
		}
		if tc.code != "" && body["code"] != tc.code {
			t.Errorf("%s: code %v, want %s", tc.name, body["code"], tc.code)
		}
		if (tc.status == http.StatusUnauthorized) != (w.Header().Get("WWW-Authenticate") == web.BearerChallenge) {
			t.Errorf("%s: status %d with WWW-Authenticate %q", tc.name, w.Code, w.Header().Get("WWW-Authenticate"))
		}
		if tc.status == http.StatusOK && w.Header().Get("X-Cache") != string(bff.CacheHit) {
			t.Errorf("%s: X-Cache %q", tc.name, w.Header().Get("X-Cache"))
		}
	}
}
