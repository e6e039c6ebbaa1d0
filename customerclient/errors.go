package customerclient

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

// Error is a failed call to the customer service: its Kind (one of the Err*
// kinds), the HTTP status, the service's detail, code and field errors, the
// retry delay of a 429, and NotSent when the request certainly never reached
// the service (the connection could not be made).
type Error = upstream.Error
