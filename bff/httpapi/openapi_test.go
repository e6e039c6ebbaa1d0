package httpapi

import (
	"log/slog"
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"

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

// TestOpenAPIDocument checks that the document is valid and complete, that
// it describes exactly the routes the BFF serves (with and without the
// optional routes), and that it is served as it is embedded.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	var engines []*gin.Engine
	for _, d := range []Deps{{}, {Metrics: http.NotFoundHandler(), BenchFloor: true}} {
		e := web.NewEngine(web.EngineOptions{Service: "bff-test", Logger: quiet})
		Routes(e, d)
		engines = append(engines, e)
	}
	apitest.CheckServed(t, "bff", OpenAPI(), engines, notAPI...)
}
