package authd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/acme/customer-platform/auth/authd"
	"github.com/acme/customer-platform/auth/httpapi"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// apiDocs holds every exchange of these tests to the service's OpenAPI document.
var apiDocs = apitest.Docs{apitest.MustLoad("auth", httpapi.OpenAPI())}

const (
	testKey       = "test-signing-key-for-the-auth-service-0123456789"
	serviceID     = "bff"
	serviceSecret = "bff-secret-value"
	goodPassword  = "Tr1cky-Wombat-Lantern"
)

// server is a running auth service.
type server struct {
	t        *testing.T
	base     string
	metrics  string
	cfg      authd.Config
	verifier *authclient.Verifier
}

// start runs the auth service on port 0 against a fresh database, with
// cheap Argon2 parameters and no rate limits unless env says otherwise.
func start(t *testing.T, env map[string]string) *server {
	t.Helper()
	return startLogging(t, env, nil)
}

// startLogging is start with the service's log written to w (nil: discarded).
func startLogging(t *testing.T, env map[string]string, w io.Writer) *server {
	t.Helper()
	e := map[string]string{
		"HTTP_ADDR":            "127.0.0.1:0",
		"METRICS_ADDR":         "127.0.0.1:0",
		"MONGODB_URI":          testenv.MongoURI(t),
		"AUTH_DB":              testenv.DBName(t),
		"JWT_SIGNING_KEY":      testKey,
		"ARGON2_MEMORY_KIB":    "256",
		"ARGON2_ITERATIONS":    "1",
		"AUTH_RATE_LIMITS":     "off",
		"AUTH_SERVICE_CLIENTS": serviceID + ":" + serviceSecret,
		"SHUTDOWN_TIMEOUT":     "2s",
	}
	maps.Copy(e, env)
	cfg, err := authd.LoadConfig(config.FromMap(e))
	testenv.Must(t, err, "load config")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan daemon.Addrs, 1)
	done := make(chan error, 1)
	if w == nil {
		w = io.Discard
	}
	log := slog.New(slog.NewJSONHandler(w, nil))
	go func() {
		done <- authd.Run(ctx, cfg, daemon.Options{Logger: log, Lookup: config.FromMap(nil), Ready: func(a daemon.Addrs) { ready <- a }})
	}()
	var addrs daemon.Addrs
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("auth service did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("auth service did not start within 60s")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("auth service stopped with an error: %v", err)
		}
	})
	v, err := authclient.NewVerifier(authclient.VerifierConfig{Key: []byte(testKey), Issuer: cfg.Issuer, Audience: cfg.Audience})
	testenv.Must(t, err, "verifier")
	return &server{t: t, base: "http://" + addrs.API.String(), metrics: "http://" + addrs.Metrics.String(), cfg: cfg, verifier: v}
}

// answer is an HTTP answer.
type answer struct {
	status int
	header http.Header
	raw    []byte
}

// json decodes the body into a map.
func (a answer) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.raw, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %q", err, a.raw)
	}
	return m
}

// fields decodes a validation body.
func (a answer) fields(t *testing.T) map[string][]string {
	t.Helper()
	if a.status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", a.status, a.raw)
	}
	var m map[string][]string
	if err := json.Unmarshal(a.raw, &m); err != nil {
		t.Fatalf("validation body is not field -> messages: %v: %s", err, a.raw)
	}
	return m
}

type req struct {
	method, path, token string
	body                any // string is sent raw, anything else as JSON
	header              map[string]string
}

func (s *server) do(r req) answer {
	s.t.Helper()
	var body io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		testenv.Must(s.t, err, "encode body")
		body = bytes.NewReader(raw)
	}
	hr, err := http.NewRequest(r.method, s.base+r.path, body)
	testenv.Must(s.t, err, "request")
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := apiDocs.Client(s.t, nil).Do(hr)
	testenv.Must(s.t, err, "%s %s", r.method, r.path)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	testenv.Must(s.t, err, "read body")
	return answer{status: resp.StatusCode, header: resp.Header, raw: raw}
}

func (s *server) post(path, token string, body any) answer {
	return s.do(req{method: http.MethodPost, path: path, token: token, body: body})
}

func (s *server) get(path, token string) answer {
	return s.do(req{method: http.MethodGet, path: path, token: token})
}

func regBody(email, first, last, pw string) map[string]any {
	return map[string]any{
		"email": email, "first_name": first, "last_name": last, "phone_number": "+1 555-0100",
		"password1": pw, "password2": pw,
	}
}

// session is a registered or logged-in user.
type session struct {
	id, email, access, refresh string
	body                       map[string]any
}

func toSession(t *testing.T, a answer) session {
	t.Helper()
	m := a.obj(t)
	tokens, _ := m["tokens"].(map[string]any)
	s := session{body: m}
	s.id, _ = m["id"].(string)
	s.email, _ = m["email"].(string)
	s.access, _ = tokens["access"].(string)
	s.refresh, _ = tokens["refresh"].(string)
	if s.id == "" || s.access == "" || s.refresh == "" {
		t.Fatalf("answer lacks id or tokens: %s", a.raw)
	}
	return s
}

func (s *server) register(email, first, last string) session {
	s.t.Helper()
	a := s.post("/api/auth/register/", "", regBody(email, first, last, goodPassword))
	if a.status != http.StatusCreated {
		s.t.Fatalf("register %s: %d %s", email, a.status, a.raw)
	}
	return toSession(s.t, a)
}

func (s *server) login(email, pw string) answer {
	return s.post("/api/auth/login/", "", map[string]any{"email": email, "password": pw})
}

func (s *server) serviceToken() string {
	s.t.Helper()
	a := s.post("/api/auth/token/service/", "", map[string]any{"client_id": serviceID, "client_secret": serviceSecret})
	if a.status != http.StatusOK {
		s.t.Fatalf("service token: %d %s", a.status, a.raw)
	}
	tok, _ := a.obj(s.t)["access"].(string)
	return tok
}

// countByEmail asks the service how many users have the email.
func (s *server) countByEmail(email string) int {
	s.t.Helper()
	a := s.get("/api/auth/users/?email="+urlQuery(email), s.serviceToken())
	if a.status != http.StatusOK {
		s.t.Fatalf("find by email: %d %s", a.status, a.raw)
	}
	n, _ := a.obj(s.t)["count"].(float64)
	return int(n)
}

func urlQuery(s string) string {
	r := strings.NewReplacer("+", "%2B", " ", "%20", "@", "%40")
	return r.Replace(s)
}

func wantDetail(t *testing.T, a answer, status int, code, detail string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.raw)
	}
	m := a.obj(t)
	if m["code"] != code || (detail != "" && m["detail"] != detail) {
		t.Fatalf("body %s, want code %q detail %q", a.raw, code, detail)
	}
}

// redisURL starts a Redis for the test and returns its URL.
func redisURL(t *testing.T) string {
	t.Helper()
	return testenv.Redis(t).URL
}
