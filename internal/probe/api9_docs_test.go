package probe

import (
	"net/http"
	"strings"
	"testing"
)

// probeAPI9InternalDocs: the BFF, outside development, does not publish
// the auth and customer services' internal documents (admin endpoints
// included) at /docs.
func probeAPI9InternalDocs(t *testing.T, s *suite) {
	for _, name := range []string{"auth", "customer"} {
		a := s.call(t, http.MethodGet, s.bff+"/assets/openapi/"+name+".json", nil, nil)
		if a.Status != http.StatusNotFound {
			t.Errorf("the BFF publishes the %s service's document outside development: %d %.120s", name, a.Status, a.Body)
		}
	}
	a := s.call(t, http.MethodGet, s.bff+"/docs", nil, nil)
	for _, internal := range []string{"auth.json", "customer.json", "/api/auth/users", "/api/v1/customers"} {
		if strings.Contains(string(a.Body), internal) {
			t.Errorf("/docs names %s outside development", internal)
		}
	}
	a = s.call(t, http.MethodGet, s.bff+"/assets/docs.js", nil, nil)
	for _, internal := range []string{"auth.json", "customer.json"} {
		if strings.Contains(string(a.Body), internal) {
			t.Errorf("/docs' script loads %s outside development", internal)
		}
	}
}
