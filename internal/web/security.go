package web

import "github.com/gin-gonic/gin"

// APIContentSecurityPolicy is the policy of a service that serves only
// JSON: nothing on its answers may load, run or frame anything.
const APIContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'"

// securityHeaders sets, on every answer (errors and 404s included, since it
// runs first), the headers Django's SecurityMiddleware and
// XFrameOptionsMiddleware send — the auth service it stands in for answers
// with them — plus a Content-Security-Policy: csp, or the JSON API's.
func securityHeaders(csp string) gin.HandlerFunc {
	if csp == "" {
		csp = APIContentSecurityPolicy
	}
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Content-Security-Policy", csp)
		c.Next()
	}
}

// NoStore marks the answer as not to be stored by any cache: the handlers
// whose answers carry tokens use it (RFC 6749 §5.1 requires it of token
// responses; Pragma is for HTTP/1.0 caches).
func NoStore(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	c.Next()
}
