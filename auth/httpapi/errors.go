package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/web"
)

// errorTable is the one mapping of the domain's sentinel errors to answers.
var errorTable = []web.Mapping{
	{Err: auth.ErrInvalidCredentials, Answer: web.Error{Code: "no_active_account", Detail: "No active account found with the given credentials", Status: http.StatusUnauthorized}},
	{Err: auth.ErrInvalidClient, Answer: web.Error{Code: "authentication_failed", Detail: "Invalid client credentials.", Status: http.StatusUnauthorized}},
	{Err: auth.ErrTokenInvalid, Answer: web.Error{Code: web.CodeTokenNotValid, Detail: "Token is invalid or expired"}},
	{Err: auth.ErrTokenBlacklisted, Answer: web.Error{Code: web.CodeTokenNotValid, Detail: "Token is blacklisted"}},
	{Err: auth.ErrAccountGone, Answer: web.Error{Code: "user_not_found", Detail: "User not found", Status: http.StatusUnauthorized}},
	{Err: auth.ErrForbidden, Answer: web.Error{Code: web.CodePermissionDenied, Detail: "You do not have permission to perform this action."}},
	{Err: auth.ErrNotFound, Answer: web.Error{Code: web.CodeNotFound, Detail: "Not found."}},
	{Err: auth.ErrBusy, Answer: web.Error{Code: web.CodeUnavailable, Detail: "The server is busy, try again shortly.", RetryAfter: time.Second}},
	// A registration whose deadline passed created nothing: 503, as the
	// service could not do it in time (not 408, which says the client was
	// slow to send and which clients may repeat on their own).
	{Err: auth.ErrDeadlineExceeded, Answer: web.Error{Code: CodeDeadlineExceeded, Detail: "The registration's deadline passed before the user could be created; no user was created.", Status: http.StatusServiceUnavailable}},
	// A request whose client went away is answered like one that took too
	// long (the platform's answer to a deadline), not as a server error.
	{Err: context.Canceled, Answer: web.Error{Code: web.CodeUnavailable, Detail: "The request took too long."}},
}

// CodeDeadlineExceeded is the code of a registration refused because its
// Registration-Deadline passed: no user was created.
const CodeDeadlineExceeded = "deadline_exceeded"

// responder is the service's one error path: validation errors are the
// field -> messages 400 (web.Responder's own rule), a throttled request a
// 429 with Retry-After, the table maps the sentinel errors, anything else is
// a logged 500 without its text.
var responder = web.Responder{Table: errorTable, Translate: translate}

// translate answers the error that carries data: a retry delay.
func translate(_ *gin.Context, err error) *web.Error {
	if te, ok := errors.AsType[*auth.ThrottledError](err); ok {
		return &web.Error{
			Code:       web.CodeThrottled,
			Detail:     fmt.Sprintf("Request was throttled. Expected available in %d seconds.", web.Seconds(te.RetryAfter)),
			RetryAfter: te.RetryAfter,
		}
	}
	return nil
}
