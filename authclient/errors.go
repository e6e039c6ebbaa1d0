package authclient

import "github.com/acme/customer-platform/internal/upstream"

// Error kinds, matched with errors.Is (shared with the other upstream clients).
var (
	ErrValidation   = upstream.ErrValidation
	ErrNotFound     = upstream.ErrNotFound
	ErrUnauthorized = upstream.ErrUnauthorized
	ErrForbidden    = upstream.ErrForbidden
	ErrConflict     = upstream.ErrConflict
	ErrRateLimited  = upstream.ErrRateLimited
	ErrUnavailable  = upstream.ErrUnavailable
)

// Error is a failed call to the auth service: its Kind (one of the Err*
// kinds), the HTTP status, the service's detail and code, the field errors
// of a 400 verbatim (so a gateway can hand them to its client), and the
// retry delay of a 429.
type Error = upstream.Error
