package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/web"
)

// errorTable is the one mapping of the domain's sentinel errors to answers.
var errorTable = []struct {
	err  error
	resp web.Error
}{
	{auth.ErrInvalidCredentials, web.Error{Code: "no_active_account", Detail: "No active account found with the given credentials", Status: http.StatusUnauthorized}},
	{auth.ErrInvalidClient, web.Error{Code: "authentication_failed", Detail: "Invalid client credentials.", Status: http.StatusUnauthorized}},
	{auth.ErrTokenInvalid, web.Error{Code: web.CodeTokenNotValid, Detail: "Token is invalid or expired"}},
	{auth.ErrTokenBlacklisted, web.Error{Code: web.CodeTokenNotValid, Detail: "Token is blacklisted"}},
	{auth.ErrAccountGone, web.Error{Code: "user_not_found", Detail: "User not found", Status: http.StatusUnauthorized}},
	{auth.ErrForbidden, web.Error{Code: web.CodePermissionDenied, Detail: "You do not have permission to perform this action."}},
	{auth.ErrNotFound, web.Error{Code: web.CodeNotFound, Detail: "Not found."}},
	{auth.ErrBusy, web.Error{Code: "service_unavailable", Detail: "The server is busy, try again shortly.", Status: http.StatusServiceUnavailable, RetryAfter: time.Second}},
}

// respond writes err in the contract's shape. Errors outside the table are
// logged and answered with a generic 500 by web.Respond.
func respond(c *gin.Context, err error) {
	if ve, ok := errors.AsType[*contract.ValidationError](err); ok {
		web.Respond(c, web.Invalid(ve.Fields))
		return
	}
	if te, ok := errors.AsType[*auth.ThrottledError](err); ok {
		secs := int((te.RetryAfter + time.Second - 1) / time.Second)
		web.Respond(c, &web.Error{
			Code:       web.CodeThrottled,
			Detail:     fmt.Sprintf("Request was throttled. Expected available in %d seconds.", secs),
			RetryAfter: te.RetryAfter,
		})
		return
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			e := m.resp
			if e.HTTPStatus() == http.StatusUnauthorized {
				c.Header("WWW-Authenticate", `Bearer realm="api"`)
			}
			web.Respond(c, &e)
			return
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		web.Respond(c, &web.Error{Code: "service_unavailable", Detail: "The request took too long.", Status: http.StatusServiceUnavailable})
		return
	}
	web.Respond(c, err)
}
