package web

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// Every answer of every service carries the security headers Django's
// SecurityMiddleware and XFrameOptionsMiddleware send, errors included:
// a route's answer, its error, a 404 of no route, a 405 and a recovered
// panic.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	t.Parallel()
	for name, csp := range map[string]string{"API default": "", "own policy": "default-src 'self'"} {
		e := NewEngine(EngineOptions{Service: "test", ContentSecurityPolicy: csp})
		e.GET("/ok", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"ok": true}) })
		e.GET("/fail", Responder{}.Handle(func(*gin.Context) error { return Errorf(CodeNotAuthenticated, "no") }))
		e.GET("/panic", func(*gin.Context) { panic("boom") })
		wantCSP := csp
		if wantCSP == "" {
			wantCSP = APIContentSecurityPolicy
		}
		for _, rq := range []struct{ method, path string }{
			{http.MethodGet, "/ok"}, {http.MethodGet, "/fail"}, {http.MethodGet, "/nowhere"},
			{http.MethodPost, "/ok"}, {http.MethodGet, "/panic"},
		} {
			w := httptest.NewRecorder()
			e.ServeHTTP(w, httptest.NewRequest(rq.method, rq.path, nil))
			for k, v := range map[string]string{
				"X-Content-Type-Options":     "nosniff",
				"Referrer-Policy":            "same-origin",
				"X-Frame-Options":            "DENY",
				"Cross-Origin-Opener-Policy": "same-origin",
				"Content-Security-Policy":    wantCSP,
			} {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %s %s (%d): %s = %q, want %q", name, rq.method, rq.path, w.Code, k, got, v)
				}
			}
		}
	}
}

// NoStore marks an answer that carries tokens as not cacheable anywhere
// (RFC 6749 §5.1).
func TestNoStore(t *testing.T) {
	t.Parallel()
	e := NewEngine(EngineOptions{Service: "test"})
	e.POST("/token", NoStore, func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"access": "x"}) })
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/token", nil))
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q", got)
	}
	if got := w.Header().Get("Pragma"); got != "no-cache" {
		t.Errorf("Pragma = %q", got)
	}
}
