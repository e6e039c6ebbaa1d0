// Package web is the HTTP platform the three services share: the one error
// responder writing the contract's Django REST framework shapes, the
// middleware chain (request id, access log, recovery, body limit, tracing),
// strict JSON decoding, health endpoints and a server that drains on shutdown.
package web

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// Error codes of the contract's {"detail", "code"} shape.
const (
	CodeInvalid          = "invalid"
	CodeNotAuthenticated = "not_authenticated"
	CodeTokenNotValid    = "token_not_valid"
	CodePermissionDenied = "permission_denied"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeTooLarge         = "request_too_large"
	CodeUnsupportedMedia = "unsupported_media_type"
	CodeUnprocessable    = "unprocessable"
	CodeThrottled        = "throttled"
	CodeUpstream         = "upstream_unavailable"
	CodeUnavailable      = "service_unavailable"
	CodeInternal         = "error"
)

// statusOf is the one table from code to HTTP status.
var statusOf = map[string]int{
	CodeInvalid:          http.StatusBadRequest,
	CodeNotAuthenticated: http.StatusUnauthorized,
	CodeTokenNotValid:    http.StatusUnauthorized,
	CodePermissionDenied: http.StatusForbidden,
	CodeNotFound:         http.StatusNotFound,
	CodeMethodNotAllowed: http.StatusMethodNotAllowed,
	CodeConflict:         http.StatusConflict,
	CodeTooLarge:         http.StatusRequestEntityTooLarge,
	CodeUnsupportedMedia: http.StatusUnsupportedMediaType,
	CodeUnprocessable:    http.StatusUnprocessableEntity,
	CodeThrottled:        http.StatusTooManyRequests,
	CodeUpstream:         http.StatusServiceUnavailable,
	CodeUnavailable:      http.StatusServiceUnavailable,
	CodeInternal:         http.StatusInternalServerError,
}

// Error is an error a client may see. Fields, when set, makes it a
// validation error written as {"field": ["message"]}; otherwise it is written
// as {"detail", "code"} plus Extra.
type Error struct {
	Code       string
	Detail     string
	Fields     map[string][]string
	Status     int            // overrides the code's status when non-zero (e.g. 502)
	RetryAfter time.Duration  // sets Retry-After when positive
	Extra      map[string]any // extra members of the body, e.g. "compensated"
}

func (e *Error) Error() string {
	if e.Fields != nil {
		return fmt.Sprintf("invalid: %v", e.Fields)
	}
	return e.Code + ": " + e.Detail
}

// HTTPStatus is the status the error is written with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	if s, ok := statusOf[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Errorf builds an Error with a code and a formatted detail.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Invalid builds a validation error from a field -> messages map.
func Invalid(fields map[string][]string) *Error {
	return &Error{Code: CodeInvalid, Fields: fields}
}

// FieldError builds a validation error for one field.
func FieldError(field, msg string) *Error {
	return Invalid(map[string][]string{field: {msg}})
}

// Body is the JSON body of the error.
func (e *Error) Body() any {
	if e.Fields != nil {
		return e.Fields
	}
	b := make(map[string]any, 2+len(e.Extra))
	maps.Copy(b, e.Extra)
	b["detail"] = e.Detail
	b["code"] = e.Code
	return b
}

// Respond writes err in the contract's shape and aborts the chain. An error
// that is not a *Error is logged (once, here) and answered with a generic 500:
// internal text never reaches a client. Every 401 names the scheme it wants
// (WWW-Authenticate), as Django REST framework's answers do.
func Respond(c *gin.Context, err error) {
	var we *Error
	if !errors.As(err, &we) {
		Logger(c).ErrorContext(c.Request.Context(), "request failed", slog.String("error", err.Error()))
		we = &Error{Code: CodeInternal, Detail: "A server error occurred."}
	}
	if we.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(Seconds(we.RetryAfter)))
	}
	status := we.HTTPStatus()
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", BearerChallenge)
	}
	c.AbortWithStatusJSON(status, we.Body())
}

// BearerChallenge is the WWW-Authenticate value of every 401.
const BearerChallenge = `Bearer realm="api"`

// Seconds is d in whole seconds, rounded up: the value of a Retry-After
// header and of the "Expected available in N seconds." details.
func Seconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
