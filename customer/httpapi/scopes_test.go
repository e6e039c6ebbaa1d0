package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/customer-platform/customer/customertest"
	"github.com/acme/customer-platform/internal/contract"
)

// serviceToken mints a service token; scope is the scope claim's value
// (nil: no scope claim at all, as the Django auth service issues them).
func serviceToken(t testing.TB, scope any) string {
	t.Helper()
	c := claimsFor("svc-client", contract.RoleService)
	if scope != nil {
		c["scope"] = scope
	}
	return mint(t, testKey, jwt.SigningMethodHS256, c)
}

// TestServiceTokenScopes: a service token may do only what its scope claim
// allows (customers:read, customers:write, customers:delete); anything else
// is the contract's 403 permission_denied and writes nothing. A token
// without a scope claim is refused everything unless the operator allows
// unscoped tokens (SERVICE_TOKENS_WITHOUT_SCOPE=allow), when it keeps the
// service role's rights (issue 18, least privilege).
func TestServiceTokenScopes(t *testing.T) {
	t.Parallel()
	const (
		read   = "read"
		write  = "write"
		delete = "delete"
	)
	// The service endpoints, each with the status it answers when allowed
	// and the scope it needs.
	rows := []struct {
		method, path string // %s is a profile's id
		body         any
		ok           int
		needs        string
	}{
		{"GET", "%s/", nil, 200, read},
		{"GET", "", nil, 200, read},
		{"GET", "%s/services/", nil, 200, read},
		{"GET", "stats/", nil, 200, read},
		{"POST", "check_profile_exists/", "owner-user-id", 200, read},
		{"PATCH", "%s/", map[string]any{"city": "Shelbyville"}, 200, write},
		{"PUT", "%s/", validProfile(), 200, write},
		{"POST", "%s/increment_service/", map[string]any{"service_type": "repair"}, 200, write},
		{"DELETE", "%s/", nil, 204, delete},
	}
	all := map[string]bool{read: true, write: true, delete: true}
	for _, tc := range []struct {
		name          string
		scope         any // the claim; nil: none
		allowUnscoped bool
		grants        map[string]bool
		// malformed: the verifier may refuse the whole token (401
		// token_not_valid) rather than its scopes (403).
		malformed bool
	}{
		{name: "read only", scope: "customers:read", grants: map[string]bool{read: true}},
		{name: "write only", scope: "customers:write", grants: map[string]bool{write: true}},
		{name: "delete only", scope: "customers:delete", grants: map[string]bool{delete: true}},
		{name: "read and write", scope: "customers:write customers:read", grants: map[string]bool{read: true, write: true}},
		{name: "all three", scope: "customers:read customers:write customers:delete", grants: all},
		{name: "another service's scope", scope: "users:read users:delete"},
		{name: "a look-alike", scope: "customers:read:all customers customers:*"},
		{name: "empty scope", scope: ""},
		{name: "scope not a string", scope: []string{"customers:read"}, malformed: true},
		{name: "no scope claim, denied", scope: nil},
		{name: "no scope claim, allowed", scope: nil, allowUnscoped: true, grants: all},
		{name: "scope claim when unscoped are allowed", scope: "customers:read", allowUnscoped: true, grants: map[string]bool{read: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarnessDeps(t, customertest.KnownUsers(), func(d *Deps) { d.AllowUnscopedServiceTokens = tc.allowUnscoped })
			tok := serviceToken(t, tc.scope)
			for _, row := range rows {
				owner := newPerson(t, contract.RoleCustomer)
				id := h.createProfile(owner, nil)
				body := row.body
				if body == "owner-user-id" {
					body = map[string]any{"user_id": owner.ID}
				}
				before := h.snapshot()
				r := h.do(row.method, apiPath("%s", strings.Replace(row.path, "%s", id, 1)), tok, body)
				name := row.method + " /" + row.path
				if tc.grants[row.needs] {
					if r.Code != row.ok {
						t.Errorf("%s, allowed by its scope: %d %s", name, r.Code, r.Body)
					}
					if row.path == "stats/" && r.json(t)["scope"] != "all" {
						t.Errorf("stats of a service: %s", r.Body)
					}
					continue
				}
				if tc.malformed && r.Code == http.StatusUnauthorized {
					if m := r.json(t); m["code"] != "token_not_valid" {
						t.Errorf("%s refused with %s", name, r.Body)
					}
				} else if r.Code != http.StatusForbidden {
					t.Errorf("%s without customers:%s: %d %s, want 403", name, row.needs, r.Code, r.Body)
					continue
				} else if m := r.json(t); m["code"] != "permission_denied" || m["detail"] != "You do not have permission to perform this action." {
					t.Errorf("%s refused with %s", name, r.Body)
				}
				if after := h.snapshot(); after != before {
					t.Errorf("%s: a refused request changed the database", name)
				}
			}
		})
	}
}

// TestScopesBindOnlyServiceTokens: a person's token is judged by its role
// alone; a scope claim on it neither adds nor takes anything.
func TestScopesBindOnlyServiceTokens(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	owner := newPerson(t, contract.RoleCustomer)
	id := h.createProfile(owner, nil)
	c := claimsFor(contract.NewID(), contract.RoleEmployee)
	c["scope"] = ""
	staff := mint(t, testKey, jwt.SigningMethodHS256, c)
	h.expect(h.do("GET", apiPath("%s/", id), staff, nil), 200, "an employee with an empty scope claim")
	h.expect(h.do("POST", apiPath("%s/increment_service/", id), staff, nil), 200, "an employee's increment")
	c = claimsFor(owner.ID, contract.RoleCustomer)
	c["scope"] = "customers:read customers:write customers:delete"
	scoped := mint(t, testKey, jwt.SigningMethodHS256, c)
	h.expect(h.do("POST", apiPath("%s/increment_service/", id), scoped, nil), 403, "a customer claiming every scope")
	other := newPerson(t, contract.RoleCustomer)
	h.createProfile(other, nil)
	c = claimsFor(other.ID, contract.RoleCustomer)
	c["scope"] = "customers:read"
	h.expect(h.do("GET", apiPath("%s/", id), mint(t, testKey, jwt.SigningMethodHS256, c), nil), 404, "another customer claiming customers:read")
}
