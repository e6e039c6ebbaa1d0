// Package httpapi is the BFF's Gin adapter: every route in this file, thin
// handler makers, the bearer-token middleware of /me, and the one table
// mapping the bff package's errors to the contract's answers.
package httpapi

import (
	"context"
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
	Verifier  *authclient.Verifier
	// Checks fail /readyz; Details add information to it without failing it.
	Checks  []web.Check
	Details func() map[string]any
	// Metrics, when set, is served as GET /metrics on the API (only when
	// there is no separate metrics listener).
	Metrics http.Handler
	// BenchFloor routes the benchmark's floor endpoint (floor.go).
	BenchFloor bool
	// AllowedOrigins may call the API from a browser page of another origin
	// (cors.go); empty: none.
	AllowedOrigins []string
}

// Routes registers every route of the BFF on r.
func Routes(r *gin.Engine, d Deps) {
	r.Use(securityHeaders, cors(d.AllowedOrigins))
	web.Health(r, d.Checks, d.Details)
	r.GET("/openapi.json", handleOpenAPI)
	if d.Metrics != nil {
		r.GET("/metrics", gin.WrapH(d.Metrics))
	}

	api := r.Group("/api/bff")
	api.POST("/register/", forwardClientAddr, handleRegister(d.Service, d.Validator))
	api.POST("/login/", forwardClientAddr, handleLogin(d.Service, d.Validator, d.Views))

	me := api.Group("/me", authenticate(d.Verifier))
	me.GET("/", handleGetMe(d.Views))
	me.PATCH("/", handlePatchMe(d.Service, d.Validator, d.Views))
	me.DELETE("/", handleDeleteMe(d.Service))

	if d.BenchFloor {
		api.GET("/bench/floor/", authenticate(d.Verifier), handleBenchFloor())
	}

	// The browser side (site.go): the registration page, the API docs and
	// their embedded assets.
	site := mustLoadSite()
	r.GET("/", site.index.handle)
	r.GET("/docs", site.docs.handle)
	r.GET("/assets/*path", site.handleAsset)
}

// callerKey is the context key of the authenticated caller.
type callerKey struct{}

// caller is who called a /me route.
type caller struct {
	userID string
	token  string
}

func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// callerFrom returns the caller authenticate stored; ok is false outside
// an authenticated route.
func callerFrom(ctx context.Context) (caller, bool) {
	c, ok := ctx.Value(callerKey{}).(caller)
	return c, ok
}

// forwardClientAddr makes the calls to the auth service carry the end
// user's address (X-Forwarded-For), which its per-address rate limits count,
// instead of the BFF's own. The address is gin's ClientIP: the peer, or the
// forwarded address when the peer is one of the BFF's TRUSTED_PROXIES.
func forwardClientAddr(c *gin.Context) {
	c.Request = c.Request.WithContext(authclient.WithClientAddr(c.Request.Context(), c.ClientIP()))
	c.Next()
}
