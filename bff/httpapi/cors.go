package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/internal/web"
)

// What a cross-origin frontend may send and read.
const (
	corsAllowMethods  = "GET, POST, PATCH, DELETE"
	corsAllowHeaders  = "Authorization, Content-Type, Idempotency-Key, X-Request-ID, traceparent, tracestate"
	corsExposeHeaders = "X-Cache, X-Request-ID, Retry-After, Idempotent-Replayed"
	corsMaxAge        = "600"
)

// ParseOrigin checks one entry of CORS_ALLOWED_ORIGINS: an http or https
// origin (scheme, host, optional port; a trailing slash is dropped) and
// returns it as browsers send it in the Origin header.
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(s), "/"))
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not a URL", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%q: an origin is http:// or https:// followed by a host (no wildcard)", s)
	case u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return "", fmt.Errorf("%q: an origin is a scheme, a host and an optional port, nothing else", s)
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), nil
}

// cors lets the browser pages of the allowed origins call the API: it
// answers their preflight requests and adds the Access-Control headers to
// their requests. Other origins get no Access-Control header, so browsers
// keep their pages from reading the answers, and their preflights are
// refused. Same-origin pages (the BFF's own) need none of this. Tokens
// travel in the Authorization header, never in cookies: credentials mode is
// not allowed.
func cors(origins []string) gin.HandlerFunc {
	allowed := slices.Clone(origins)
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		preflight := c.Request.Method == http.MethodOptions && origin != "" && c.GetHeader("Access-Control-Request-Method") != ""
		if len(allowed) == 0 && !preflight {
			c.Next()
			return
		}
		h := c.Writer.Header()
		h.Add("Vary", "Origin")
		if !slices.Contains(allowed, origin) {
			if preflight {
				web.Respond(c, web.Errorf(web.CodePermissionDenied, "Cross-origin requests from this origin are not allowed."))
				return
			}
			c.Next()
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		c.Next()
	}
}

// ContentSecurityPolicy is the BFF's Content-Security-Policy (its engine
// sets it on every answer, with the other security headers every service
// sends: web.NewEngine): the BFF's own scripts, styles, images and API
// only; no inline script, no other origin, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
