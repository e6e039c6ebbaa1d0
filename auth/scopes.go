package auth

import (
	"slices"

	"github.com/acme/customer-platform/internal/contract"
)

// The scopes of service accounts (internal/contract). Each client gets the
// ones configured with it in AUTH_SERVICE_CLIENT_SCOPES and nothing else.
const (
	ScopeUsersRead            = contract.ScopeUsersRead
	ScopeUsersCreate          = contract.ScopeUsersCreate
	ScopeUsersDeleteCustomers = contract.ScopeUsersDeleteCustomers
	ScopeUsersDelete          = contract.ScopeUsersDelete
	ScopeCustomersRead        = contract.ScopeCustomersRead
	ScopeCustomersWrite       = contract.ScopeCustomersWrite
	ScopeCustomersDelete      = contract.ScopeCustomersDelete
)

// knownScopes are every scope a client may be configured with.
var knownScopes = []string{
	ScopeUsersRead, ScopeUsersCreate, ScopeUsersDeleteCustomers, ScopeUsersDelete,
	ScopeCustomersRead, ScopeCustomersWrite, ScopeCustomersDelete,
}

// KnownScopes are every scope a client may be configured with (a copy).
func KnownScopes() []string { return slices.Clone(knownScopes) }

// Has reports whether the caller is a service account granted scope.
func (p Principal) Has(scope string) bool {
	return p.IsService() && slices.Contains(p.Scopes, scope)
}
