package auth

import "slices"

// Scopes of service accounts (the scope claim of a service token,
// space-separated as RFC 9068 §2.2.3 has it). Each client gets the ones
// configured with it in AUTH_SERVICE_CLIENTS and nothing else.
const (
	// ScopeUsersRead reads users: GET users/<id>/, users/?email=, the listing.
	ScopeUsersRead = "users:read"
	// ScopeUsersCreate creates users: POST users/.
	ScopeUsersCreate = "users:create"
	// ScopeUsersDeleteCustomers deletes users of the customer role only:
	// DELETE users/<id>/ of anyone else is refused.
	ScopeUsersDeleteCustomers = "users:delete:customers"
	// ScopeUsersDelete deletes any user.
	ScopeUsersDelete = "users:delete"
)

// Scopes the customer service enforces; the auth service only issues them.
const (
	ScopeCustomersRead   = "customers:read"
	ScopeCustomersWrite  = "customers:write"
	ScopeCustomersDelete = "customers:delete"
)

// KnownScopes are every scope a client may be configured with.
func KnownScopes() []string {
	return []string{
		ScopeUsersRead, ScopeUsersCreate, ScopeUsersDeleteCustomers, ScopeUsersDelete,
		ScopeCustomersRead, ScopeCustomersWrite, ScopeCustomersDelete,
	}
}

// Has reports whether the caller is a service account granted scope.
func (p Principal) Has(scope string) bool {
	return p.IsService() && slices.Contains(p.Scopes, scope)
}
