package authclient

import (
	"errors"
	"net/http"

	"github.com/acme/customer-platform/internal/upstream"
)

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

// CodeDeadlineExceeded is the code of the auth service's 503 to a register
// whose Registration-Deadline passed before the user was inserted.
const CodeDeadlineExceeded = "deadline_exceeded"

// DeadlineExceeded reports whether err is the auth service's refusal of a
// register whose deadline (RegisterRequest.Deadline) had passed: certainly
// no user was created by that call. A context's deadline, a timeout or any
// other 503 is not that: the outcome of such a call is unknown.
func DeadlineExceeded(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Status == http.StatusServiceUnavailable && e.Code == CodeDeadlineExceeded
}
