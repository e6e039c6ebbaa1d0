// Package httpapi is the BFF's Gin adapter: every route in this file, thin
// handler makers that return their error, and the one responder mapping the
// bff package's errors to the contract's answers (errors.go).
package httpapi

import (
	"bytes"
	_ "embed"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/web"
)

// Deps are what the routes need.
type Deps struct {
	Service   *bff.Service
	Validator *bff.Validator
	Views     bff.Views
	Verifier  web.TokenVerifier
	// Checks fail /readyz; Details add information to it without failing it.
	Checks  []web.Check
	Details func() map[string]any
	// Metrics, when set, is served as GET /metrics on the API (only when
	// there is no separate metrics listener).
	Metrics http.Handler
	// BenchFloor routes the benchmark's floor endpoint (floor.go).
	BenchFloor bool
	// PublishDocs serves the API documentation at /docs with the auth
	// and customer services' internal documents (BFF_PUBLISH_DOCS); off,
	// /docs and those documents are the contract's 404 (the BFF's own
	// /openapi.json stays: it is the public API).
	PublishDocs bool
	// AllowedOrigins may call the API from a browser page of another origin
	// (cors.go); empty: none.
	AllowedOrigins []string
}

// openAPIDocument is the BFF's OpenAPI 3.0 document: every route, its
// parameters, bodies, answers and error shapes. The tests hold the routes
// and every exchange of the end-to-end tests to it.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns a copy of the service's OpenAPI document (JSON).
func OpenAPI() []byte { return bytes.Clone(openAPIDocument) }

// Routes registers every route of the BFF on r.
func Routes(r *gin.Engine, d Deps) {
	resp := newResponder()
	r.Use(cors(d.AllowedOrigins))
	web.Health(r, d.Checks, d.Details) // GET /healthz and /readyz
	r.GET("/openapi.json", web.Document(openAPIDocument))
	if d.Metrics != nil {
		r.GET("/metrics", gin.WrapH(d.Metrics))
	}

	api := r.Group("/api/bff")
	api.POST("/register/", web.NoStore, forwardClientAddr, resp.Handle(handleRegister(d.Service, d.Validator, resp)))
	api.POST("/login/", web.NoStore, forwardClientAddr, resp.Handle(handleLogin(d.Service, d.Validator, d.Views)))

	bearer := web.Bearer(d.Verifier, admitUsersOnly)
	me := api.Group("/me", bearer)
	me.GET("/", resp.Handle(handleGetMe(d.Views)))
	me.PATCH("/", resp.Handle(handlePatchMe(d.Service, d.Validator, d.Views)))
	me.DELETE("/", resp.Handle(handleDeleteMe(d.Service)))

	if d.BenchFloor {
		api.GET("/bench/floor/", bearer, resp.Handle(handleBenchFloor()))
	}

	// The browser side (site.go): the registration page, the API docs and
	// their embedded assets.
	site := mustLoadSite()
	if !d.PublishDocs {
		site.withoutDocs()
	}
	r.GET("/", resp.Handle(site.index.handle))
	r.GET("/docs", resp.Handle(site.handleDocs))
	r.GET("/assets/*path", resp.Handle(site.handleAsset))
}

// forwardClientAddr makes the calls to the auth service carry the end
// user's address (X-Forwarded-For), which its per-address rate limits count,
// instead of the BFF's own. The address is gin's ClientIP: the peer, or the
// forwarded address when the peer is one of the BFF's TRUSTED_PROXIES.
func forwardClientAddr(c *gin.Context) {
	c.Request = c.Request.WithContext(authclient.WithClientAddr(c.Request.Context(), c.ClientIP()))
	c.Next()
}
