package apitest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// CheckServed is each service's document test: the document raw (named
// name) is valid OpenAPI 3.0, examples included, and complete (Lint); every
// engine's routes are exactly its operations, apart from the routes in
// notAPI; and GET /openapi.json on the first engine serves raw as is.
func CheckServed(t *testing.T, name string, raw []byte, engines []*gin.Engine, notAPI ...string) {
	t.Helper()
	doc, err := Load(name, raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range doc.Lint() {
		t.Errorf("lint: %s", p)
	}
	for _, e := range engines {
		for _, p := range doc.RouteDrift(e.Routes(), notAPI...) {
			t.Error(p)
		}
	}
	w := httptest.NewRecorder()
	engines[0].ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	body, _ := io.ReadAll(w.Result().Body)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || !bytes.Equal(body, raw) {
		t.Fatalf("GET /openapi.json: %d %q, %d bytes", w.Code, w.Header().Get("Content-Type"), len(body))
	}
}
