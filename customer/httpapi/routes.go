// Package httpapi is the customer service's HTTP API on Gin: every route of
// the contract's customer section, thin handler makers that decode, call
// the customer.Service and encode, and the one table mapping the domain's
// errors to the contract's answers.
package httpapi

import (
	"bytes"
	_ "embed"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/web"
)

// Prefix is where the customer API lives.
const Prefix = "/api/v1/customers"

// openAPIDocument is the service's OpenAPI 3.0 document: every route, its
// parameters, bodies, answers and error shapes. The tests hold the routes
// and every exchange of the end-to-end tests to it.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns a copy of the service's OpenAPI document (JSON).
func OpenAPI() []byte { return bytes.Clone(openAPIDocument) }

// Deps are what the routes need.
type Deps struct {
	Service  *customer.Service
	Verifier web.TokenVerifier
	// Checks fail /readyz; Details add information to it without failing it.
	Checks  []web.Check
	Details func() map[string]any
	// AllowUnscopedServiceTokens (SERVICE_TOKENS_WITHOUT_SCOPE=allow) gives
	// a service token without a scope claim every scope of the service, as
	// before scopes existed (tokens of the Django auth service have none);
	// false refuses such a token everything a scope guards.
	AllowUnscopedServiceTokens bool
	// PublicURL (PUBLIC_URL) is the service's public base URL, such as
	// https://customers.example.com: the pagination links are absolute
	// under it when set, and relative (path and query) otherwise; they are
	// never built from the request's Host.
	PublicURL string
}

// Routes registers every route of the customer service on r: health,
// readiness, the OpenAPI document and the API, where every route needs a
// valid access token.
func Routes(r gin.IRouter, d Deps) {
	web.Health(r, d.Checks, d.Details)
	r.GET("/openapi.json", web.Document(openAPIDocument))

	s := d.Service
	links := newPageLinks(d.PublicURL)
	g := r.Group(Prefix, web.Bearer(d.Verifier, nil), actors(d.AllowUnscopedServiceTokens))

	g.POST("/profile/create/", handleCreateProfile(s))
	g.GET("/profile/", handleGetProfile(s))
	g.PATCH("/profile/update/", handleUpdateProfile(s, false))
	g.PUT("/profile/update/", handleUpdateProfile(s, true))
	g.DELETE("/profile/delete/", handleDeleteProfile(s))

	g.POST("/check_profile_exists/", handleCheckProfileExists(s))
	g.GET("/stats/", handleStats(s))

	g.GET("/", handleList(s, links))
	g.POST("/", handleCreateForUser(s))

	g.GET("/:id/", handleGet(s))
	g.PATCH("/:id/", handleUpdate(s, false))
	g.PUT("/:id/", handleUpdate(s, true))
	g.DELETE("/:id/", handleDelete(s))
	g.POST("/:id/increment_service/", handleIncrementService(s))
	g.GET("/:id/services/", handleServices(s, links))
	g.POST("/:id/verify/", handleVerify(s))
}
