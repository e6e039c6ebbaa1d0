package bff

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Error codes of the BFF's own answers. The HTTP adapter's responder maps
// each code to one status; the status of registration_failed and
// partial_update follows their Cause: the refusal's status when a service
// refused (400 when it rejected the data), else 503.
const (
	CodeInvalid            = "invalid"             // 400, Fields
	CodeRegistrationFailed = "registration_failed" // 503, or the refusal's status (see above)
	// CodeRegistrationPending: the registration's outcome is not settled
	// yet (the BFF finishes or undoes it); retry with the same key.
	CodeRegistrationPending = "registration_pending"   // 503
	CodeKeyReused           = "idempotency_key_reused" // 422: same key, another body
	CodeKeyInFlight         = "idempotency_key_in_use" // 409: same key, first request still running
	CodePartialUpdate       = "partial_update"         // the failing side's status
	CodeDeletionPending     = "deletion_pending"       // 202: the saga finishes the deletion
	CodeStoreUnavailable    = "service_unavailable"    // 503: the BFF's own database is down
)

// Error is an answer of the BFF a client may see: a validation error
// (Fields set) or a {"detail", "code"} error with extra members.
type Error struct {
	Code       string
	Detail     string
	Fields     map[string][]string
	RetryAfter time.Duration
	Extra      map[string]any
	// Cause is the internal failure behind the answer: logged, never shown.
	Cause error
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

func (e *Error) Error() string {
	if e.Fields != nil {
		keys := slices.Sorted(maps.Keys(e.Fields))
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+": "+strings.Join(e.Fields[k], " "))
		}
		return "bff: invalid: " + strings.Join(parts, "; ")
	}
	return "bff: " + e.Code + ": " + e.Detail
}

// Invalid returns a validation error, or nil when fields is empty.
func Invalid(fields map[string][]string) error {
	if len(fields) == 0 {
		return nil
	}
	return &Error{Code: CodeInvalid, Fields: fields}
}

// Store errors.
var (
	ErrSagaNotFound = errors.New("saga not found")
	// ErrStateChanged is a guarded transition that found the saga in
	// another state: someone else advanced it.
	ErrStateChanged = errors.New("saga state changed")
	ErrKeyExists    = errors.New("idempotency key exists") // also as *KeyExistsError
	ErrKeyNotFound  = errors.New("idempotency key not found")
	// ErrKeyChanged is a guarded idempotency record update that found the
	// record no longer held by the caller.
	ErrKeyChanged = errors.New("idempotency record changed")
)

// Kinds of an UpstreamError, matched with errors.Is.
var (
	ErrUpstreamInvalid      = errors.New("upstream rejected the input")
	ErrUpstreamNotFound     = errors.New("upstream: not found")
	ErrUpstreamUnauthorized = errors.New("upstream: unauthorized")
	ErrUpstreamForbidden    = errors.New("upstream: forbidden")
	ErrUpstreamConflict     = errors.New("upstream: conflict")
	ErrUpstreamThrottled    = errors.New("upstream: rate limited")
	ErrUpstreamUnavailable  = errors.New("upstream unavailable")
)

// Services named in UpstreamError.Service.
const (
	ServiceAuth     = "auth"
	ServiceCustomer = "customer"
)

// UpstreamError is a failed call to the auth or the customer service, as
// the adapters report it.
type UpstreamError struct {
	Service    string // ServiceAuth or ServiceCustomer
	Kind       error  // one of the ErrUpstream* kinds
	Status     int    // the answer's HTTP status; 0 without an answer
	Code       string // the answer's code, when any
	Detail     string // the answer's detail, when any
	Fields     map[string][]string
	RetryAfter time.Duration
	// NotSent is true when the request certainly never reached the service
	// (connection refused, an open circuit breaker): it cannot have had any
	// effect. A timeout, a reset connection or a 5xx are not that certain.
	NotSent bool
	Err     error
}

func (e *UpstreamError) Error() string {
	s := fmt.Sprintf("%s service: %v", e.Service, e.Kind)
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is matches the error's kind.
func (e *UpstreamError) Is(target error) bool { return target == e.Kind }

// Unwrap returns the cause.
func (e *UpstreamError) Unwrap() error { return e.Err }

// upstreamOf returns err's *UpstreamError, or one of kind unavailable
// wrapping err (an adapter's unexpected failure counts as ambiguous).
func upstreamOf(service string, err error) *UpstreamError {
	if ue, ok := errors.AsType[*UpstreamError](err); ok {
		return ue
	}
	return &UpstreamError{Service: service, Kind: ErrUpstreamUnavailable, Err: err}
}

// definitive reports whether the service answered with a refusal (a 4xx):
// the call had no effect and repeating it would not help.
func (e *UpstreamError) definitive() bool {
	return e.Kind != ErrUpstreamUnavailable
}

// CodeUserNotFound is the auth service's code of an answer saying the
// user does not exist (a 401 to a valid token of a deleted user).
const CodeUserNotFound = "user_not_found"

// userGone reports whether a delete of a user failed because the user is
// already gone: an explicit "user not found" (401 user_not_found to the
// user's own token, 404 to the service account), never any other 401 (an
// expired or rejected token says nothing about the user).
func userGone(err error) bool {
	ue, ok := errors.AsType[*UpstreamError](err)
	if !ok {
		return false
	}
	return errors.Is(ue, ErrUpstreamNotFound) ||
		errors.Is(ue, ErrUpstreamUnauthorized) && ue.Code == CodeUserNotFound
}

// Final reports whether err (nil: success) is the final outcome of a
// registration, the same for any retry of the same request: success, the
// BFF's or a service's refusal of the data (400), or a registration undone
// because the customer service refused its data. A throttled, rejected
// or unavailable call, and anything pending, is not final.
func Final(err error) bool {
	if err == nil {
		return true
	}
	if be, ok := errors.AsType[*Error](err); ok {
		switch be.Code {
		case CodeInvalid:
			return true
		case CodeRegistrationFailed:
			if be.Extra["compensated"] != true || be.Extra["pending"] == true {
				return false
			}
			ue, ok := errors.AsType[*UpstreamError](be.Cause)
			return ok && errors.Is(ue, ErrUpstreamInvalid)
		}
		return false
	}
	ue, ok := errors.AsType[*UpstreamError](err)
	return ok && errors.Is(ue, ErrUpstreamInvalid)
}

// harmless reports whether the call certainly had no effect.
func (e *UpstreamError) harmless() bool { return e.NotSent || e.definitive() }

// KeyExistsError is ErrKeyExists with the live record the store found
// holding the key, so its caller need not read it again.
type KeyExistsError struct{ Record *IdempotencyRecord }

func (e *KeyExistsError) Error() string        { return ErrKeyExists.Error() }
func (e *KeyExistsError) Is(target error) bool { return target == ErrKeyExists }
