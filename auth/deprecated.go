package auth

import "github.com/acme/customer-platform/internal/contract"

// Aliases of package contract kept only while packages outside the auth
// service (bff/rediscache's benchmark, cmd/migrate's end-to-end test) still
// name them here; they go once those callers use contract.

// RoleCustomer is contract.RoleCustomer.
//
// Deprecated: use contract.RoleCustomer.
const RoleCustomer = contract.RoleCustomer

// NormalizeEmail is contract.NormalizeEmail.
//
// Deprecated: use contract.NormalizeEmail.
func NormalizeEmail(email string) string { return contract.NormalizeEmail(email) }
