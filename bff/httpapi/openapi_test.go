package httpapi

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/web"
)

// notAPI are the BFF's routes that are not part of its JSON API, and so not
// in the document: the metrics endpoint (served on the API port only when
// there is no separate metrics listener), the benchmark's floor, and the
// browser side (the registration page, the docs and their assets).
var notAPI = []string{"/metrics", "/api/bff/bench/floor/", "/", "/docs", "/assets/*path"}

// quiet discards the logs of the engines under test.
var quiet = slog.New(slog.DiscardHandler)

// TestOpenAPIDocument checks that the document is valid OpenAPI 3.0 (its
// examples included), complete (examples, error answers, X-Request-ID), that
// it describes exactly the routes the BFF serves, and that it is served as
// it is embedded.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc, err := apitest.Load("bff", OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range doc.Lint() {
		t.Errorf("lint: %s", p)
	}

	for _, d := range []Deps{{}, {Metrics: http.NotFoundHandler(), BenchFloor: true}} {
		e := web.NewEngine(web.EngineOptions{Service: "bff-test", Logger: quiet})
		Routes(e, d)
		for _, p := range doc.RouteDrift(e.Routes(), notAPI...) {
			t.Error(p)
		}
	}

	e := web.NewEngine(web.EngineOptions{Service: "bff-test", Logger: quiet})
	Routes(e, Deps{})
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	body, _ := io.ReadAll(w.Result().Body)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || !bytes.Equal(body, OpenAPI()) {
		t.Fatalf("GET /openapi.json: %d %q, %d bytes", w.Code, w.Header().Get("Content-Type"), len(body))
	}
}
