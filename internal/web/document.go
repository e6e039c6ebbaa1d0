package web

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// Document serves a fixed JSON document, such as a service's OpenAPI
// document at GET /openapi.json.
func Document(doc []byte) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json", doc)
	}
}
