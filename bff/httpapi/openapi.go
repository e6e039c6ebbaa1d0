package httpapi

import (
	"bytes"
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// openAPIDocument is the BFF's OpenAPI 3.0 document: every route, its
// parameters, bodies, answers and error shapes. The tests hold the routes
// and every exchange of the end-to-end tests to it.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns a copy of the service's OpenAPI document (JSON).
func OpenAPI() []byte { return bytes.Clone(openAPIDocument) }

// handleOpenAPI serves the document at GET /openapi.json.
func handleOpenAPI(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", openAPIDocument)
}
