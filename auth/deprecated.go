package auth

import "github.com/acme/customer-platform/internal/contract"

// Aliases of package contract kept only while packages outside the auth
// service still name them here; they go once those callers use contract.
const (
	// Deprecated: use contract.RoleCustomer.
	RoleCustomer = contract.RoleCustomer
	// Deprecated: use contract.RoleService.
	RoleService = contract.RoleService
)

// NormalizeEmail is contract.NormalizeEmail.
//
// Deprecated: use contract.NormalizeEmail.
func NormalizeEmail(email string) string { return contract.NormalizeEmail(email) }
