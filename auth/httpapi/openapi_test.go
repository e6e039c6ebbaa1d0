package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/web"
)

// TestOpenAPIDocument checks that the document is valid OpenAPI 3.0 (its
// examples included), complete (examples, error answers, X-Request-ID), that
// it describes exactly the routes the service serves, and that it is served
// as it is embedded.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc, err := apitest.Load("auth", OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range doc.Lint() {
		t.Errorf("lint: %s", p)
	}

	e := web.NewEngine(web.EngineOptions{Service: "auth-test"})
	web.Health(e, nil, nil) // authd registers the health endpoints next to Routes
	Routes(e, nil, nil)
	for _, p := range doc.RouteDrift(e.Routes()) {
		t.Error(p)
	}

	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	body, _ := io.ReadAll(w.Result().Body)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" || !bytes.Equal(body, OpenAPI()) {
		t.Fatalf("GET /openapi.json: %d %q, %d bytes", w.Code, w.Header().Get("Content-Type"), len(body))
	}
}
