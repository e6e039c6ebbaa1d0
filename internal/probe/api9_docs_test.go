package probe

import (
	"net/http"
	"testing"
)

// probeAPI9InternalDocs: the BFF, outside development, does not publish
// the auth and customer services' internal documents (admin endpoints
// included) at /docs: the page, its script and the documents answer the
// contract's 404.
func probeAPI9InternalDocs(t *testing.T, s *suite) {
	for _, path := range []string{"/assets/openapi/auth.json", "/assets/openapi/customer.json", "/docs", "/assets/docs.js"} {
		a := s.call(t, http.MethodGet, s.bff+path, nil, nil)
		wantError(t, "GET "+path+" outside development", a, http.StatusNotFound, "not_found")
	}
}
