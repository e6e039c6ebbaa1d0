package httpapi

import (
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/web"
)

// errorTable is the one mapping of domain errors to the contract's answers.
var errorTable = []struct {
	err    error
	code   string
	detail string
}{
	{customer.ErrNotFound, web.CodeNotFound, "Customer profile not found."},
	{customer.ErrProfileExists, web.CodeConflict, "Customer profile already exists."},
	{customer.ErrForbidden, web.CodePermissionDenied, "You do not have permission to perform this action."},
	{customer.ErrInvalidPage, web.CodeNotFound, "Invalid page."},
	{customer.ErrIdempotencyMismatch, web.CodeUnprocessable, "This Idempotency-Key was already used with a different request body."},
}

// respondError writes err in the contract's shape; anything not in the
// table is a logged 500 without its text.
func respondError(c *gin.Context, err error) {
	if ve, ok := errors.AsType[*contract.ValidationError](err); ok {
		web.Respond(c, web.Invalid(ve.Fields))
		return
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			web.Respond(c, web.Errorf(e.code, "%s", e.detail))
			return
		}
	}
	web.Respond(c, err)
}
