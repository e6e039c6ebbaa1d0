package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/web"
)

// statusOf is the one table from the bff package's codes to HTTP statuses;
// the codes whose status depends on their cause are resolved in toWeb.
var statusOf = map[string]int{
	bff.CodeInvalid:          http.StatusBadRequest,
	bff.CodeKeyReused:        http.StatusUnprocessableEntity,
	bff.CodeKeyInFlight:      http.StatusConflict,
	bff.CodeStoreUnavailable: http.StatusServiceUnavailable,
}

// upstreamStatus maps an upstream failure kind to the status the BFF answers.
func upstreamStatus(ue *bff.UpstreamError) (int, string) {
	switch {
	case errors.Is(ue, bff.ErrUpstreamInvalid):
		return http.StatusBadRequest, web.CodeInvalid
	case errors.Is(ue, bff.ErrUpstreamUnauthorized):
		return http.StatusUnauthorized, web.CodeTokenNotValid
	case errors.Is(ue, bff.ErrUpstreamForbidden):
		return http.StatusForbidden, web.CodePermissionDenied
	case errors.Is(ue, bff.ErrUpstreamNotFound):
		return http.StatusNotFound, web.CodeNotFound
	case errors.Is(ue, bff.ErrUpstreamConflict):
		return http.StatusConflict, web.CodeConflict
	case errors.Is(ue, bff.ErrUpstreamThrottled):
		return http.StatusTooManyRequests, web.CodeThrottled
	}
	return http.StatusServiceUnavailable, web.CodeUpstream
}

// toWeb maps the bff package's errors to the contract's answers. An error
// it does not know is returned unchanged: web.Respond logs it and answers a
// generic 500. Causes of 5xx answers are logged here; their text never
// reaches the client.
func toWeb(c *gin.Context, err error) error {
	if be, ok := errors.AsType[*bff.Error](err); ok {
		if be.Fields != nil {
			return web.Invalid(be.Fields)
		}
		status, known := statusOf[be.Code]
		switch be.Code {
		case bff.CodeRegistrationFailed, bff.CodePartialUpdate:
			status, known = http.StatusServiceUnavailable, true
			if ue, ok := errors.AsType[*bff.UpstreamError](be.Cause); ok {
				status, _ = upstreamStatus(ue)
			}
		}
		if !known {
			return err
		}
		we := &web.Error{Code: be.Code, Detail: be.Detail, Status: status, RetryAfter: be.RetryAfter, Extra: be.Extra}
		logCause(c, status, be.Cause)
		return we
	}
	if ue, ok := errors.AsType[*bff.UpstreamError](err); ok {
		status, code := upstreamStatus(ue)
		if status == http.StatusBadRequest {
			return web.Invalid(ue.Fields)
		}
		if status >= 500 {
			logCause(c, status, ue)
			return &web.Error{Code: code, Status: status, RetryAfter: ue.RetryAfter,
				Detail: "The " + ue.Service + " service is unavailable. Please try again."}
		}
		we := &web.Error{Code: code, Status: status, Detail: ue.Detail, RetryAfter: ue.RetryAfter}
		if ue.Code != "" {
			we.Code = ue.Code // the service's own code (e.g. no_active_account), as it answered
		}
		if we.Detail == "" {
			we.Detail = http.StatusText(status) + "."
		}
		return we
	}
	if errors.Is(err, bff.ErrViewMismatch) {
		logCause(c, http.StatusBadGateway, err)
		return &web.Error{Code: web.CodeUpstream, Status: http.StatusBadGateway,
			Detail: "An upstream service answered with an unexpected document."}
	}
	return err
}

// webError is toWeb's answer as a *web.Error; anything else is logged and
// becomes the generic 500.
func webError(c *gin.Context, err error) *web.Error {
	if we, ok := errors.AsType[*web.Error](err); ok {
		return we
	}
	web.Logger(c).ErrorContext(c.Request.Context(), "request failed", slog.String("error", err.Error()))
	return &web.Error{Code: web.CodeInternal, Detail: "A server error occurred."}
}

func logCause(c *gin.Context, status int, cause error) {
	if status >= 500 && cause != nil {
		web.Logger(c).WarnContext(c.Request.Context(), "upstream failure", slog.Int("status", status), slog.String("error", cause.Error()))
	}
}
