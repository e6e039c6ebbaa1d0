// Package contract is the vocabulary the services' API contract shares: the
// roles an access token carries, the field-by-field validation error that
// is the body of every 400, the form of ids and of emails. Each is defined
// here once; the domain packages (auth, customer, bff) and the clients use
// it. Only the standard library is imported, so the domain roots stay free
// of third-party code.
package contract

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
)

// Scopes of service accounts: the scope claim of a service token, a
// space-separated list of them (RFC 8693 §4.2). The auth service issues
// them all and enforces the users:* ones; the customer service enforces
// the customers:* ones.
const (
	ScopeUsersRead            = "users:read"             // GET users/<id>/, users/?email=, the listing
	ScopeUsersCreate          = "users:create"           // POST users/
	ScopeUsersDeleteCustomers = "users:delete:customers" // DELETE users/<id>/ of a customer-role user only
	ScopeUsersDelete          = "users:delete"           // DELETE users/<id>/ of anyone
	ScopeCustomersRead        = "customers:read"         // any profile, the list, services, stats over all
	ScopeCustomersWrite       = "customers:write"        // PATCH/PUT <id>/, increment_service
	ScopeCustomersDelete      = "customers:delete"       // DELETE <id>/
)

// Roles carried by users and by the user_role claim of access tokens.
const (
	RoleCustomer = "customer"
	RoleEmployee = "employee"
	RoleAdmin    = "admin"
	// RoleService is the role of a machine's access token (a service
	// account such as the BFF); no user has it.
	RoleService = "service"
)

// IsUserRole reports whether r is a role a user account may have.
func IsUserRole(r string) bool {
	return r == RoleCustomer || r == RoleEmployee || r == RoleAdmin
}

// IsStaff reports whether r is a staff role (employee or admin).
func IsStaff(r string) bool { return r == RoleEmployee || r == RoleAdmin }

// ValidationError is bad input reported field by field: Fields is exactly
// the contract's 400 body, {"field": ["message", ...]}.
type ValidationError struct {
	Fields map[string][]string
}

func (e *ValidationError) Error() string {
	keys := slices.Sorted(maps.Keys(e.Fields))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+strings.Join(e.Fields[k], " "))
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// FieldError returns a validation error for one field.
func FieldError(field, msg string) *ValidationError {
	return &ValidationError{Fields: map[string][]string{field: {msg}}}
}

// NewID returns a random (version 4) UUID in its canonical textual form.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return FormatUUID(b)
}

// FormatUUID is b in the canonical textual form of a UUID (lower-case hex,
// 8-4-4-4-12); the version and variant bits are the caller's.
func FormatUUID(b [16]byte) string {
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// ValidID reports whether s has the canonical textual form of a UUID
// (any version, either case).
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// MaxEchoedName bounds the length, in bytes, of a client's member name
// echoed back as the key of a field error.
const MaxEchoedName = 64

// EchoedName is an unknown member's name as an error names it: cut to
// MaxEchoedName bytes and marked "...", so a client cannot make an answer
// echo a huge name.
func EchoedName(name string) string {
	if len(name) <= MaxEchoedName {
		return name
	}
	return name[:MaxEchoedName] + "..."
}

// NormalizeEmail is the stored and compared form of an email: trimmed and
// lower-cased, so emails are unique case-insensitively.
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}
