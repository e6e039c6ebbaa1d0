package probe

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// probeAPI9Inventory: what the services publish is what the contract
// lists. Routes outside it — old versions, admin and debug paths, stray
// files — are the contract's 404 at every service; the metrics are not on
// the API's port; the BFF's own document describes only the BFF.
func probeAPI9Inventory(t *testing.T, s *suite) {
	c := s.customerAccount(t, "inventory")
	for _, base := range []string{s.auth, s.customer, s.bff} {
		for _, path := range []string{
			"/api/v0/customers/", "/api/v2/customers/", "/api/customers/", "/api/auth/admin/", "/admin/", "/api/bff/admin/",
			"/api/bff/users/", "/api/bff/v1/me/", "/debug/pprof/", "/debug/vars", "/metrics", "/.env", "/.git/config",
			"/swagger.json", "/api/auth/users/export/", "/api/v1/customers/export/",
		} {
			for _, h := range []map[string]string{nil, c.as(), s.admin.as()} {
				a := s.call(t, http.MethodGet, base+path, nil, h)
				if a.Status == http.StatusOK {
					t.Errorf("GET %s%s answers 200: %.200s", base, path, a.Body)
					continue
				}
				if a.Status == http.StatusNotFound {
					wantError(t, "GET "+path, a, http.StatusNotFound, "not_found")
				} else if a.Status != http.StatusUnauthorized && a.Status != http.StatusForbidden && a.Status != http.StatusMethodNotAllowed {
					t.Errorf("GET %s%s: %s, want 404", base, path, a)
				}
			}
		}
	}
	a := s.call(t, http.MethodGet, s.bff+"/openapi.json", nil, nil)
	var doc struct{ Paths map[string]any }
	a.JSON(t, &doc)
	if a.Status != http.StatusOK || len(doc.Paths) == 0 {
		t.Fatalf("the BFF's document: %s", a)
	}
	for p := range doc.Paths {
		if !strings.HasPrefix(p, "/api/bff/") && !slices.Contains([]string{"/healthz", "/readyz", "/openapi.json", "/", "/docs"}, p) {
			t.Errorf("the BFF's public document lists %s, not a BFF route", p)
		}
	}
}
