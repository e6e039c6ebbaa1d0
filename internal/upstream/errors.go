package upstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Error kinds, matched with errors.Is.
var (
	ErrValidation   = errors.New("validation failed")
	ErrNotFound     = errors.New("not found")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrConflict     = errors.New("conflict")
	ErrRateLimited  = errors.New("rate limited")
	ErrUnavailable  = errors.New("upstream unavailable")
)

// Error is a failed call to an upstream service.
type Error struct {
	Service    string              // "auth", "customer"
	Kind       error               // one of the Err* kinds
	Op         string              // "POST /api/auth/register/"
	Status     int                 // HTTP status, 0 without an answer
	Detail     string              // the service's detail message, when any
	Code       string              // the service's code, when any
	Fields     map[string][]string // the field errors of a 400, verbatim
	RetryAfter time.Duration       // of a 429
	// NotSent is true when the request certainly never reached the service
	// (the connection could not be made).
	NotSent bool
	cause   error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s: %v", e.Service, e.Op, e.Kind)
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Is matches the error's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the underlying cause (a network error, a context error).
func (e *Error) Unwrap() error { return e.cause }

// Unavailable builds an ErrUnavailable error for a call that could not be
// made or completed (e.g. the caller gave up waiting).
func Unavailable(service, op, detail string, cause error) *Error {
	return &Error{Service: service, Kind: ErrUnavailable, Op: op, Detail: detail, cause: cause}
}

// dialFailed reports whether a transport error happened before anything
// was written: the connection could not be made.
func dialFailed(err error) bool {
	op, ok := errors.AsType[*net.OpError](err)
	return ok && op.Op == "dial"
}

// FromResponse maps a non-2xx answer — ours, or Django's (HTML error pages,
// {"detail"} bodies, empty bodies) — to an *Error.
func FromResponse(op string, status int, header http.Header, raw []byte) *Error {
	e := &Error{Op: op, Status: status}
	var generic map[string]json.RawMessage
	if json.Unmarshal(raw, &generic) == nil {
		if d, ok := generic["detail"]; ok {
			_ = json.Unmarshal(d, &e.Detail)
		}
		if c, ok := generic["code"]; ok {
			_ = json.Unmarshal(c, &e.Code)
		}
	}
	switch {
	case status == http.StatusBadRequest:
		e.Kind = ErrValidation
		e.Fields = fieldErrors(generic)
		if len(e.Fields) == 0 {
			msg := e.Detail
			if msg == "" {
				msg = "Invalid request."
			}
			e.Fields = map[string][]string{"non_field_errors": {msg}}
		}
	case status == http.StatusUnauthorized:
		e.Kind = ErrUnauthorized
	case status == http.StatusForbidden:
		e.Kind = ErrForbidden
	case status == http.StatusNotFound:
		e.Kind = ErrNotFound
	case status == http.StatusConflict:
		e.Kind = ErrConflict
	case status == http.StatusTooManyRequests:
		e.Kind = ErrRateLimited
		e.RetryAfter = retryAfter(header.Get("Retry-After"))
	default:
		e.Kind = ErrUnavailable
		if e.Detail == "" && status < 500 {
			e.Detail = "unexpected status"
		}
	}
	return e
}

// fieldErrors keeps a DRF validation body verbatim: each member a list of
// messages (a single string is wrapped; other values are kept as JSON text).
func fieldErrors(body map[string]json.RawMessage) map[string][]string {
	out := map[string][]string{}
	for k, v := range body {
		if k == "code" {
			continue
		}
		var list []string
		if json.Unmarshal(v, &list) == nil {
			out[k] = list
			continue
		}
		var one string
		if json.Unmarshal(v, &one) == nil {
			if k == "detail" {
				k = "non_field_errors"
			}
			out[k] = []string{one}
			continue
		}
		out[k] = []string{string(v)}
	}
	return out
}

// retryAfter parses a Retry-After header (seconds or an HTTP date); one
// second when absent or unreadable.
func retryAfter(h string) time.Duration {
	if n, err := strconv.Atoi(h); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return time.Second
}
