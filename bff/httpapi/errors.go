package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/web"
)

// newResponder returns the BFF's one error path: the table answers the bff
// package's sentinel errors, translate its typed errors (whose answer
// depends on what they carry). An error neither knows is a logged 500
// without its text (web.Respond).
func newResponder() web.Responder {
	return web.Responder{Table: sentinels, Translate: translate}
}

// sentinels is the table of the bff package's sentinel errors.
var sentinels = []web.Mapping{
	{Err: bff.ErrViewMismatch, Answer: web.Error{Code: web.CodeUpstream, Status: http.StatusBadGateway,
		Detail: "An upstream service answered with an unexpected document."}},
}

// translate maps *bff.Error and *bff.UpstreamError. It is the one place
// that logs the cause of the BFF's 5xx answers, the table's included (the
// responder calls it first with every error): the cause's text never
// reaches the client.
func translate(c *gin.Context, err error) *web.Error {
	we := typed(err)
	status := 0
	if we != nil {
		status = we.HTTPStatus()
	} else if m, ok := sentinelOf(err); ok {
		status = m.Answer.HTTPStatus()
	}
	if status >= 500 {
		attrs := []any{slog.Int("status", status), slog.String("error", err.Error())}
		if be, ok := errors.AsType[*bff.Error](err); ok && be.Cause != nil {
			attrs = append(attrs, slog.String("cause", be.Cause.Error()))
		}
		web.Logger(c).WarnContext(c.Request.Context(), "upstream failure", attrs...)
	}
	return we
}

// sentinelOf is the row of the table that answers err, the responder's
// first match.
func sentinelOf(err error) (web.Mapping, bool) {
	for _, m := range sentinels {
		if errors.Is(err, m.Err) {
			return m, true
		}
	}
	return web.Mapping{}, false
}

// typed is the answer to a *bff.Error or a *bff.UpstreamError in err's
// chain, nil for any other error.
func typed(err error) *web.Error {
	if be, ok := errors.AsType[*bff.Error](err); ok {
		return fromError(be)
	}
	if ue, ok := errors.AsType[*bff.UpstreamError](err); ok {
		return fromUpstream(ue)
	}
	return nil
}

// fromError answers the BFF's own errors: each code has one status, except
// registration_failed and partial_update, which take their cause's (see
// bff.CodeRegistrationFailed).
func fromError(be *bff.Error) *web.Error {
	if be.Fields != nil {
		return web.Invalid(be.Fields)
	}
	var status int
	switch be.Code {
	case bff.CodeInvalid:
		status = http.StatusBadRequest
	case bff.CodeKeyReused:
		status = http.StatusUnprocessableEntity
	case bff.CodeKeyInFlight:
		status = http.StatusConflict
	case bff.CodeStoreUnavailable, bff.CodeRegistrationPending:
		status = http.StatusServiceUnavailable
	case bff.CodeRegistrationFailed, bff.CodePartialUpdate:
		status = http.StatusServiceUnavailable
		if ue, ok := errors.AsType[*bff.UpstreamError](be.Cause); ok {
			status, _ = upstreamStatus(ue)
		}
	default:
		return web.Errorf(web.CodeInternal, "A server error occurred.")
	}
	return &web.Error{Code: be.Code, Detail: be.Detail, Status: status, RetryAfter: be.RetryAfter, Extra: be.Extra}
}

// fromUpstream answers a failed call to a service: its refusals as the
// service gave them (its field errors, code and detail), its
// unavailability as the BFF's own 503 naming the service.
func fromUpstream(ue *bff.UpstreamError) *web.Error {
	status, code := upstreamStatus(ue)
	switch {
	case status == http.StatusBadRequest:
		return web.Invalid(ue.Fields)
	case status >= 500:
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

// upstreamStatus maps an upstream failure kind to the status and code the
// BFF answers.
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
