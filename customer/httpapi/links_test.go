package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/acme/customer-platform/customer/customertest"
	"github.com/acme/customer-platform/internal/contract"
)

// TestPageLinksNeverComeFromTheHostHeader: the next and previous links of
// the list and of <id>/services/ are built from the configured public base
// URL, or are relative (path and query) without one; a forged Host (or
// X-Forwarded-Host, X-Forwarded-Proto) never reaches them (issue 18).
func TestPageLinksNeverComeFromTheHostHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, publicURL, base string
	}{
		{name: "relative without PUBLIC_URL"},
		{name: "absolute under PUBLIC_URL", publicURL: "https://customers.example.com", base: "https://customers.example.com"},
		{name: "PUBLIC_URL with a trailing slash", publicURL: "https://customers.example.com/", base: "https://customers.example.com"},
		{name: "PUBLIC_URL with a path prefix", publicURL: "https://gw.example.com/customer-api", base: "https://gw.example.com/customer-api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarnessDeps(t, customertest.KnownUsers(), func(d *Deps) { d.PublicURL = tc.publicURL })
			admin := newPerson(t, contract.RoleAdmin)
			staff := newPerson(t, contract.RoleEmployee)
			h.seedProfiles(admin, 6)
			owner := newPerson(t, contract.RoleCustomer)
			id := h.createProfile(owner, nil)
			for range 3 {
				h.expect(h.do(http.MethodPost, apiPath("%s/increment_service/", id), staff.Token, nil), http.StatusOK, "increment")
			}
			forged := []string{"Host", "evil.example", "X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https"}

			for _, c := range []struct{ path, next, previous string }{
				{apiPath("?page=2&page_size=1&city=C0"), "", "/api/v1/customers/?city=C0&page_size=1"},
				{apiPath("?page=2&page_size=1"), "/api/v1/customers/?page=3&page_size=1", "/api/v1/customers/?page_size=1"},
				{apiPath("%s/services/?page=2&page_size=1", id), fmt.Sprintf("/api/v1/customers/%s/services/?page=3&page_size=1", id), fmt.Sprintf("/api/v1/customers/%s/services/?page_size=1", id)},
			} {
				r := h.do(http.MethodGet, c.path, admin.Token, nil, forged...)
				h.expect(r, http.StatusOK, c.path)
				if strings.Contains(string(r.Body), "evil.example") {
					t.Fatalf("%s: the forged host is in the answer: %s", c.path, r.Body)
				}
				page := r.json(t)
				want := func(rel string) any {
					if rel == "" {
						return nil
					}
					return tc.base + rel
				}
				if page["next"] != want(c.next) || page["previous"] != want(c.previous) {
					t.Errorf("%s: next %v, previous %v; want %v, %v", c.path, page["next"], page["previous"], want(c.next), want(c.previous))
				}
			}
		})
	}
}
