package httpapi

import (
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/web"
)

// TestOpenAPIDocument checks that the document is valid and complete, that
// it describes exactly the routes the service serves, and that it is served
// as it is embedded.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	e := web.NewEngine(web.EngineOptions{Service: "auth-test"})
	Routes(e, Deps{})
	apitest.CheckServed(t, "auth", OpenAPI(), []*gin.Engine{e})
}
