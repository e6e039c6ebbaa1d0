package httpapi

import (
	"net/http"
	"time"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/web"
)

// errorTable is the one mapping of domain errors to the contract's answers.
var errorTable = []web.Mapping{
	{Err: customer.ErrNotFound, Answer: web.Error{Code: web.CodeNotFound, Detail: "Customer profile not found."}},
	{Err: customer.ErrProfileExists, Answer: web.Error{Code: web.CodeConflict, Detail: "Customer profile already exists."}},
	{Err: customer.ErrForbidden, Answer: web.Error{Code: web.CodePermissionDenied, Detail: "You do not have permission to perform this action."}},
	{Err: customer.ErrInvalidPage, Answer: web.Error{Code: web.CodeNotFound, Detail: "Invalid page."}},
	{Err: customer.ErrBusy, Answer: web.Error{Code: web.CodeUnavailable, Detail: "The customer profile is being changed by another request. Try again shortly.", RetryAfter: time.Second}},
	{Err: customer.ErrIdempotencyMismatch, Answer: web.Error{Code: web.CodeUnprocessable, Detail: "This Idempotency-Key was already used with a different request body."}},
	// A valid token whose user the auth service says is gone: answered as
	// the auth service (and simplejwt) answers that token.
	{Err: customer.ErrUserNotFound, Answer: web.Error{Code: CodeUserNotFound, Detail: "User not found", Status: http.StatusUnauthorized}},
	{Err: customer.ErrUserUnconfirmed, Answer: web.Error{Code: web.CodeUpstream, Detail: "The auth service could not confirm the user, so no profile was created. Try again shortly.", RetryAfter: time.Second}},
}

// CodeUserNotFound is the code of the 401 to a token whose user no longer
// exists, the auth service's own.
const CodeUserNotFound = "user_not_found"

// responder is the service's one error path: validation errors are the
// field -> messages 400 (web.Responder's own rule), the table maps the
// sentinel errors, anything else is a logged 500 without its text.
var responder = web.Responder{Table: errorTable}
