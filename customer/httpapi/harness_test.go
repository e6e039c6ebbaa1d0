package httpapi

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
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/customer/customertest"
	customermongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/web"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// apiDocs holds every exchange of these tests to the service's OpenAPI document.
var apiDocs = apitest.Docs{apitest.MustLoad("customer", OpenAPI())}

// quiet discards the logs of the engines under test.
var quiet = slog.New(slog.DiscardHandler)

var testKey = []byte("test-signing-key-for-the-customer-api-0123456789")

// harness is the API on a real store in a fresh database.
type harness struct {
	t      *testing.T
	engine *gin.Engine
	db     *mongo.Database
	pub    *customertest.Publisher
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, customertest.KnownUsers())
}

// newHarnessWith is the API on a real store with the user directory given.
func newHarnessWith(t *testing.T, users customer.Users) *harness {
	t.Helper()
	return newHarnessDeps(t, users, nil)
}

// newHarnessDeps is newHarnessWith with set changing the routes' Deps
// before they are registered (nil: none).
func newHarnessDeps(t *testing.T, users customer.Users, set func(*Deps)) *harness {
	t.Helper()
	_, db := testenv.Mongo(t)
	store, err := customermongo.New(context.Background(), db)
	testenv.Must(t, err, "store")
	pub := &customertest.Publisher{}
	svc := customer.NewService(store, users, pub, customer.Options{Logger: quiet})
	v, err := authclient.NewVerifier(authclient.VerifierConfig{Key: testKey})
	testenv.Must(t, err, "verifier")
	e := web.NewEngine(web.EngineOptions{Service: "customer-test", Logger: quiet})
	d := Deps{Service: svc, Verifier: v}
	if set != nil {
		set(&d)
	}
	Routes(e, d)
	return &harness{t: t, engine: e, db: db, pub: pub}
}

// person is a test user with a token.
type person struct {
	ID    string
	Role  string
	Token string
}

func newPerson(t testing.TB, role string) person {
	t.Helper()
	id := contract.NewID()
	if role == contract.RoleService {
		id = "bff"
	}
	c := claimsFor(id, role)
	if role == contract.RoleService { // a service granted every scope of the customer service
		c["scope"] = strings.Join(customer.ServiceScopes(), " ")
	}
	return person{ID: id, Role: role, Token: mint(t, testKey, jwt.SigningMethodHS256, c)}
}

func claimsFor(id, role string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"token_type": "access",
		"exp":        now.Add(5 * time.Minute).Unix(),
		"iat":        now.Unix(),
		"jti":        contract.NewID(),
		"user_id":    id,
		"email":      role + "@example.com",
		"first_name": "Tok",
		"last_name":  "En",
		"user_role":  role,
	}
}

func mint(t testing.TB, key any, m jwt.SigningMethod, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return s
}

// response is a recorded answer.
type response struct {
	Code   int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.Body, err)
	}
	return m
}

// do sends a request to the engine; body may be a string, []byte, nil or a
// value to encode as JSON.
func (h *harness) do(method, path, token string, body any, headers ...string) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			h.t.Fatalf("encode: %v", err)
		}
		rd = bytes.NewReader(buf)
	}
	req := httptest.NewRequest(method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	apiDocs.Handler(h.t, h.engine).ServeHTTP(rec, req)
	return response{Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

func (h *harness) expect(r response, code int, what string) {
	h.t.Helper()
	if r.Code != code {
		h.t.Fatalf("%s: status %d, want %d; body %s", what, r.Code, code, r.Body)
	}
}

// validProfile is a complete, valid create body.
func validProfile() map[string]any {
	return map[string]any{
		"street_address": "1 Main St",
		"city":           "Springfield",
		"state":          "IL",
		"postal_code":    "62701",
		"company_name":   "Acme",
		"business_type":  "llc",
	}
}

// createProfile creates p's own profile and returns its id.
func (h *harness) createProfile(p person, body map[string]any) string {
	h.t.Helper()
	if body == nil {
		body = validProfile()
	}
	r := h.do(http.MethodPost, "/api/v1/customers/profile/create/", p.Token, body)
	h.expect(r, http.StatusCreated, "create profile")
	return r.json(h.t)["id"].(string)
}

// count returns how many documents a collection holds.
func (h *harness) count(coll string, filter bson.D) int64 {
	h.t.Helper()
	if filter == nil {
		filter = bson.D{}
	}
	n, err := h.db.Collection(coll).CountDocuments(context.Background(), filter)
	testenv.Must(h.t, err, "count")
	return n
}

// snapshot returns every customer document, to prove a request wrote nothing.
func (h *harness) snapshot() string {
	h.t.Helper()
	cur, err := h.db.Collection(customermongo.CustomersCollection).Find(context.Background(), bson.D{})
	testenv.Must(h.t, err, "find")
	var docs []bson.M
	testenv.Must(h.t, cur.All(context.Background(), &docs), "all")
	cur, err = h.db.Collection(customermongo.ServicesCollection).Find(context.Background(), bson.D{})
	testenv.Must(h.t, err, "find")
	var recs []bson.M
	testenv.Must(h.t, cur.All(context.Background(), &recs), "all")
	return fmt.Sprint(docs, recs)
}

func apiPath(path string, args ...any) string {
	return "/api/v1/customers/" + fmt.Sprintf(path, args...)
}
