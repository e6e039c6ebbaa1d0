package customerd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/acme/customer-platform/customer/customerd"
	"github.com/acme/customer-platform/customer/httpapi"
	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

func TestMain(m *testing.M) { os.Exit(systest.Main(m)) }

// apiDocs holds every exchange of these tests to the service's OpenAPI document.
var apiDocs = apitest.Docs{apitest.MustLoad("customer", httpapi.OpenAPI())}

const signingKey = systest.SigningKey

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	cfg, err := customerd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k"}))
	testenv.Must(t, err, "defaults")
	if cfg.HTTPAddr != ":8002" || cfg.MetricsAddr != ":9102" || cfg.Database != "customers" || cfg.AuthURL != "http://127.0.0.1:8001" ||
		cfg.AuthTimeout != time.Second || cfg.ShutdownTimeout != 15*time.Second || cfg.MongoURI.Reveal() != "mongodb://127.0.0.1:27017/" ||
		cfg.RedisURL != "" || cfg.LogLevel != "info" || cfg.Environment != "development" {
		t.Fatalf("defaults: %+v", cfg)
	}
	if _, err := customerd.LoadConfig(config.FromMap(nil)); err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY") {
		t.Fatalf("missing key: %v", err)
	}
	_, err = customerd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k", "AUTH_TIMEOUT": "soon", "AUTH_URL": "auth", "CUSTOMER_DB": "a/b", "SHUTDOWN_TIMEOUT": "-1s"}))
	for _, k := range []string{"AUTH_TIMEOUT", "AUTH_URL", "CUSTOMER_DB", "SHUTDOWN_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("bad %s not reported: %v", k, err)
		}
	}
	if _, err := customerd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "k", "CUSTOMER_SERVICE_CLIENT_ID": "customer"})); err == nil || !strings.Contains(err.Error(), "CUSTOMER_SERVICE_CLIENT_ID") {
		t.Fatalf("a client id without its secret: %v", err)
	}
	cfg, err = customerd.LoadConfig(config.FromMap(map[string]string{"JWT_SIGNING_KEY": "top-secret", "MONGODB_URI": "mongodb://u:pw@db/", "REDIS_URL": "redis://:pw@r:6379/0",
		"CUSTOMER_SERVICE_CLIENT_ID": "customer", "CUSTOMER_SERVICE_CLIENT_SECRET": "pw"}))
	testenv.Must(t, err, "load")
	b, _ := json.Marshal(cfg)
	if bytes.Contains(b, []byte("top-secret")) || bytes.Contains(b, []byte("pw")) {
		t.Fatalf("secrets in the logged config: %s", b)
	}
}

// fakeAuth answers like the auth service: the profile of the bearer's user
// and users by id for staff tokens, recording the tokens it was sent.
type fakeAuth struct {
	srv    *httptest.Server
	mu     sync.Mutex
	tokens []string
}

func newFakeAuth(t *testing.T) *fakeAuth {
	f := &fakeAuth{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		f.mu.Lock()
		f.tokens = append(f.tokens, tok)
		f.mu.Unlock()
		claims := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(signingKey), nil }); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"detail":"Given token not valid for any token type","code":"token_not_valid"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/auth/profile/":
			fmt.Fprintf(w, `{"id":%q,"email":"from-auth@example.com","first_name":"Auth","last_name":"Profile","phone_number":"+1 555 0101","user_role":"customer","date_joined":"2025-01-01T00:00:00Z"}`, claims["user_id"])
		case strings.HasPrefix(r.URL.Path, "/api/auth/users/"):
			if role := claims["user_role"]; role == "customer" {
				w.WriteHeader(http.StatusForbidden)
				_, _ = w.Write([]byte(`{"detail":"You do not have permission to perform this action.","code":"permission_denied"}`))
				return
			}
			id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/auth/users/"), "/")
			fmt.Fprintf(w, `{"id":%q,"email":"staff-view@example.com","first_name":"Stella","last_name":"Viewed","phone_number":"+1 555 0202","user_role":"customer","date_joined":"2025-01-01T00:00:00Z"}`, id)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAuth) sawToken(tok string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.tokens {
		if t == tok {
			return true
		}
	}
	return false
}

// start runs the customer service alone (systest: a fresh database, short
// timeouts) with the options given.
func start(t *testing.T, o systest.Options) (*systest.System, *systest.Instance) {
	t.Helper()
	o.Services = []string{"customer"}
	sys := systest.Start(t, o)
	return sys, sys.Service("customer")
}

func token(t *testing.T, id, role string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"token_type": "access", "exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(),
		"jti": contract.NewID(), "user_id": id, "email": role + "@example.com", "first_name": "Token", "last_name": role, "user_role": role,
	}).SignedString([]byte(signingKey))
	testenv.Must(t, err, "sign")
	return s
}

// call sends a request with the bearer tok ("" none) and header pairs,
// checks the exchange against the document, and decodes a JSON object.
func call(t *testing.T, method, url, tok string, body any, headers ...string) (int, map[string]any, http.Header) {
	t.Helper()
	h := map[string]string{}
	if tok != "" {
		h = testenv.Bearer(tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	a := testenv.Call(t, apiDocs.Client(t, nil), method, url, body, h)
	var m map[string]any
	_ = json.Unmarshal(a.Body, &m)
	return a.Status, m, a.Header
}

func TestRunEndToEnd(t *testing.T) {
	t.Parallel()
	auth := newFakeAuth(t)
	sys, svc := start(t, systest.Options{Redis: true, Env: map[string]string{"AUTH_URL": auth.srv.URL}})
	rd := sys.Redis
	base := svc.URL + "/api/v1/customers/"

	opt, _ := redis.ParseURL(rd.URL)
	rc := redis.NewClient(opt)
	defer rc.Close()

	code, body, _ := call(t, "GET", svc.URL+"/readyz", "", nil)
	if code != 200 || body["details"].(map[string]any)["redis"] != "ok" {
		t.Fatalf("readyz: %d %v", code, body)
	}

	userID := contract.NewID()
	owner := token(t, userID, "customer")
	employee := token(t, contract.NewID(), "employee")
	admin := token(t, contract.NewID(), "admin")

	code, body, hdr := call(t, "POST", base+"profile/create/", owner, map[string]any{"street_address": "1 Main St", "city": "Springfield", "postal_code": "62701"}, "X-Request-ID", "req-123")
	if code != 201 || hdr.Get("X-Request-ID") != "req-123" {
		t.Fatalf("create: %d %v", code, body)
	}
	id := body["id"].(string)
	// Owner view: token names and email, phone from the auth service.
	if body["email"] != "customer@example.com" || body["last_name"] != "customer" || body["phone_number"] != "+1 555 0101" {
		t.Fatalf("owner view: %v", body)
	}
	if !auth.sawToken(owner) {
		t.Fatal("the owner's token was not forwarded to the auth service")
	}
	code, body, _ = call(t, "GET", base+id+"/", employee, nil)
	if code != 200 || body["email"] != "staff-view@example.com" || body["first_name"] != "Stella" || body["phone_number"] != "+1 555 0202" {
		t.Fatalf("staff view: %d %v", code, body)
	}
	if !auth.sawToken(employee) {
		t.Fatal("the employee's token was not forwarded")
	}
	if code, _, _ := call(t, "PATCH", base+"profile/update/", owner, map[string]any{"company_name": "Acme"}); code != 200 {
		t.Fatalf("update: %d", code)
	}
	if code, _, _ := call(t, "POST", base+id+"/increment_service/", employee, nil); code != 200 {
		t.Fatalf("increment: %d", code)
	}
	if code, _, _ := call(t, "POST", base+id+"/verify/", employee, nil); code != 200 {
		t.Fatalf("verify: %d", code)
	}
	if code, _, _ := call(t, "DELETE", base+id+"/", admin, nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	// Each write's event reaches the change stream, in order, through the
	// outbox and the relay.
	want := []string{"create", "update", "service", "verify", "delete"}
	var entries []redis.XMessage
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the events of the writes in the stream", func() bool {
		entries, _ = rc.XRange(context.Background(), changefeed.Stream, "-", "+").Result()
		return len(entries) >= len(want)
	}))
	for i, op := range want {
		got, err := changefeed.Decode(entries[i].Values["event"].(string))
		testenv.Must(t, err, "decode %v", entries[i].Values)
		if !got.SpanContext().IsValid() {
			t.Fatalf("%s event without the write's trace context: %+v", op, got)
		}
		if got.Topic != changefeed.CustomerChanged || got.UserID != userID || got.CustomerID != id || got.Op != op || got.ID == "" {
			t.Fatalf("event %+v, want op %s for %s/%s", got, op, userID, id)
		}
	}
	// Metrics are on their own port.
	resp, err := http.Get(svc.MetricsURL + "/metrics")
	testenv.Must(t, err, "metrics")
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(mb, []byte("http_server_request_duration")) {
		t.Fatalf("metrics: %d", resp.StatusCode)
	}
	if code, _, _ := call(t, "GET", svc.URL+"/metrics", "", nil); code != 404 {
		t.Fatalf("/metrics on the API port: %d", code)
	}

	// A megabyte of dots in the Authorization header is refused.
	req, _ := http.NewRequest("GET", base+"profile/", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat(".", 1<<20))
	resp, err = http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 431 && resp.StatusCode != 401 {
			t.Fatalf("huge header: %d", resp.StatusCode)
		}
	}

	// Redis down: writes still succeed and readiness holds, reporting it.
	rd.Stop()
	owner2 := token(t, contract.NewID(), "customer")
	if code, body, _ := call(t, "POST", base+"profile/create/", owner2, map[string]any{"street_address": "2 Main St", "city": "Springfield", "postal_code": "62701"}); code != 201 {
		t.Fatalf("create with redis down: %d %v", code, body)
	}
	code, body, _ = call(t, "GET", svc.URL+"/readyz", "", nil)
	if code != 200 || body["details"].(map[string]any)["redis"] != "unavailable" {
		t.Fatalf("readyz with redis down: %d %v", code, body)
	}

	// The auth service down: the user fields are null and the answer succeeds.
	auth.srv.Close()
	code, body, _ = call(t, "GET", base+"profile/", owner2, nil)
	if code != 200 || body["phone_number"] != nil || body["email"] != "customer@example.com" {
		t.Fatalf("owner view, auth down: %d %v", code, body)
	}
	code, body, _ = call(t, "GET", base+"?page_size=5", employee, nil)
	if code != 200 || body["count"] != float64(1) {
		t.Fatalf("staff list, auth down: %d %v", code, body)
	}
	if item := body["results"].([]any)[0].(map[string]any); item["email"] != nil || item["first_name"] != nil || item["phone_number"] != nil {
		t.Fatalf("staff view, auth down: %v", item)
	}
}

func TestRunWithoutRedisAndDatabaseDown(t *testing.T) {
	t.Parallel()
	_, svc := start(t, systest.Options{})
	code, body, _ := call(t, "GET", svc.URL+"/readyz", "", nil)
	if code != 200 || body["details"].(map[string]any)["redis"] != "not configured" {
		t.Fatalf("readyz: %d %v", code, body)
	}
	if code, _, _ := call(t, "GET", svc.URL+"/healthz", "", nil); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	if code, body, _ := call(t, "GET", svc.URL+"/api/v1/customers/", "", nil); code != 401 || body["code"] != "not_authenticated" {
		t.Fatalf("no token: %d %v", code, body)
	}

	// A service that cannot reach its database does not start.
	cfg, err := customerd.LoadConfig(config.FromMap(map[string]string{
		"JWT_SIGNING_KEY": signingKey, "HTTP_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0",
		"MONGODB_URI": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&connectTimeoutMS=200",
	}))
	testenv.Must(t, err, "config")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := customerd.Run(ctx, cfg, daemon.Options{Logger: slog.New(slog.DiscardHandler), Lookup: config.FromMap(nil)}); err == nil {
		t.Fatal("Run succeeded without a database")
	}
}
