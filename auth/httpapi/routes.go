// Package httpapi is the auth service's Gin adapter: every route of the
// contract's auth section in Routes, thin handlers that decode (with the
// auth package's decoders), call the auth.Service and encode, and the one
// responder mapping the domain's errors to the contract's answers.
package httpapi

import (
	"bytes"
	_ "embed"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/web"
)

// openAPIDocument is the service's OpenAPI 3.0 document: every route, its
// parameters, bodies, answers and error shapes. The tests hold the routes
// and every exchange of the end-to-end tests to it.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns a copy of the service's OpenAPI document (JSON).
func OpenAPI() []byte { return bytes.Clone(openAPIDocument) }

// Deps are what the routes serve with.
type Deps struct {
	Service  *auth.Service
	Verifier web.TokenVerifier // checks bearer access tokens
	// Checks are the dependencies /readyz probes; Details, when set, adds
	// informational members to it that never fail readiness.
	Checks  []web.Check
	Details func() map[string]any
	// PublicURL is the service's public base URL (PUBLIC_URL, e.g.
	// https://auth.example.com): the listing's links are absolute on it
	// when set, relative otherwise; never built from the request's Host.
	PublicURL string
}

// Routes registers every route of the auth service on r.
func Routes(r gin.IRouter, d Deps) {
	s := d.Service
	bearer := web.Bearer(d.Verifier, nil)

	web.Health(r, d.Checks, d.Details) // GET /healthz, GET /readyz
	r.GET("/openapi.json", web.Document(openAPIDocument))

	g := r.Group("/api/auth")

	// The answers that carry tokens are never stored by a cache (RFC 6749 §5.1).
	g.POST("/register/", web.NoStore, handleRegister(s))
	g.POST("/login/", web.NoStore, handleLogin(s))
	g.POST("/token/refresh/", web.NoStore, handleRefresh(s))
	g.POST("/token/service/", web.NoStore, handleServiceToken(s))

	g.POST("/logout/", bearer, handleLogout(s))
	g.GET("/profile/", bearer, handleProfile(s))
	g.PATCH("/profile/update/", bearer, handleUpdateProfile(s))
	g.DELETE("/profile/delete/", bearer, handleDeleteSelf(s))

	g.GET("/users/", bearer, handleFindUsers(s, d.PublicURL))
	g.POST("/users/", bearer, handleCreateUser(s))
	g.GET("/users/:id/", bearer, handleGetUser(s))
	g.DELETE("/users/:id/", bearer, handleDeleteUser(s))
}
