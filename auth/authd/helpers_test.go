package authd_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/acme/customer-platform/auth/authd"
	"github.com/acme/customer-platform/auth/httpapi"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

func TestMain(m *testing.M) { os.Exit(systest.Main(m)) }

// apiDocs holds every exchange of these tests to the service's OpenAPI document.
var apiDocs = apitest.Docs{apitest.MustLoad("auth", httpapi.OpenAPI())}

const goodPassword = "Tr1cky-Wombat-Lantern"

// server is a running auth service.
type server struct {
	t        *testing.T
	sys      *systest.System
	base     string
	metrics  string
	logs     *testenv.LogBuffer
	cfg      authd.Config
	verifier *authclient.Verifier
}

// start runs the auth service alone (systest: a fresh database, cheap
// Argon2 parameters, no rate limits) with env over those settings.
func start(t *testing.T, env map[string]string) *server {
	t.Helper()
	return startWith(t, systest.Options{Env: env})
}

// startWith runs the auth service alone with the options given.
func startWith(t *testing.T, o systest.Options) *server {
	t.Helper()
	o.Services = []string{"auth"}
	sys := systest.Start(t, o)
	s := replica(t, sys.Service("auth"))
	s.sys = sys
	return s
}

// replica is the test's view of one running auth service.
func replica(t *testing.T, in *systest.Instance) *server {
	t.Helper()
	cfg, err := authd.LoadConfig(config.FromMap(in.Env))
	testenv.Must(t, err, "load config")
	v, err := authclient.NewVerifier(authclient.VerifierConfig{Key: []byte(systest.SigningKey), Issuer: cfg.Issuer, Audience: cfg.Audience})
	testenv.Must(t, err, "verifier")
	return &server{t: t, base: in.URL, metrics: in.MetricsURL, logs: in.Logs, cfg: cfg, verifier: v}
}

// answer is an HTTP answer of the service.
type answer struct{ testenv.Answer }

// fields decodes a validation body.
func (a answer) fields(t *testing.T) map[string][]string {
	t.Helper()
	if a.Status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", a.Status, a.Body)
	}
	var m map[string][]string
	if err := json.Unmarshal(a.Body, &m); err != nil {
		t.Fatalf("validation body is not field -> messages: %v: %s", err, a.Body)
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
	header := map[string]string{}
	if r.token != "" {
		header = testenv.Bearer(r.token)
	}
	maps.Copy(header, r.header)
	return answer{testenv.Call(s.t, apiDocs.Client(s.t, nil), r.method, s.base+r.path, r.body, header)}
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
	m := a.Map(t)
	tokens, _ := m["tokens"].(map[string]any)
	s := session{body: m}
	s.id, _ = m["id"].(string)
	s.email, _ = m["email"].(string)
	s.access, _ = tokens["access"].(string)
	s.refresh, _ = tokens["refresh"].(string)
	if s.id == "" || s.access == "" || s.refresh == "" {
		t.Fatalf("answer lacks id or tokens: %s", a.Body)
	}
	return s
}

func (s *server) register(email, first, last string) session {
	s.t.Helper()
	a := s.post("/api/auth/register/", "", regBody(email, first, last, goodPassword))
	if a.Status != http.StatusCreated {
		s.t.Fatalf("register %s: %d %s", email, a.Status, a.Body)
	}
	return toSession(s.t, a)
}

func (s *server) login(email, pw string) answer {
	return s.post("/api/auth/login/", "", map[string]any{"email": email, "password": pw})
}

func (s *server) serviceToken() string {
	s.t.Helper()
	a := s.post("/api/auth/token/service/", "", map[string]any{"client_id": systest.BFFClientID, "client_secret": systest.BFFClientSecret})
	if a.Status != http.StatusOK {
		s.t.Fatalf("service token: %d %s", a.Status, a.Body)
	}
	tok, _ := a.Map(s.t)["access"].(string)
	return tok
}

// countByEmail asks the service how many users have the email.
func (s *server) countByEmail(email string) int {
	s.t.Helper()
	a := s.get("/api/auth/users/?email="+urlQuery(email), s.serviceToken())
	if a.Status != http.StatusOK {
		s.t.Fatalf("find by email: %d %s", a.Status, a.Body)
	}
	n, _ := a.Map(s.t)["count"].(float64)
	return int(n)
}

func urlQuery(s string) string {
	r := strings.NewReplacer("+", "%2B", " ", "%20", "@", "%40")
	return r.Replace(s)
}

func wantDetail(t *testing.T, a answer, status int, code, detail string) {
	t.Helper()
	if a.Status != status {
		t.Fatalf("status %d, want %d: %s", a.Status, status, a.Body)
	}
	m := a.Map(t)
	if m["code"] != code || (detail != "" && m["detail"] != detail) {
		t.Fatalf("body %s, want code %q detail %q", a.Body, code, detail)
	}
}

// refresh posts a refresh token to the refresh endpoint.
func (s *server) refresh(tok string) answer {
	return s.post("/api/auth/token/refresh/", "", map[string]any{"refresh": tok})
}
