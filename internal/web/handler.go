package web

import (
	"context"
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/internal/contract"
)

// Handler is a route handler that writes only its success: it returns its
// error, and the service's Responder writes it. No handler writes an error
// answer itself.
type Handler func(c *gin.Context) error

// Mapping is one row of a service's error table: every error that is (by
// errors.Is) Err is answered with Answer.
type Mapping struct {
	Err    error
	Answer Error
}

// Responder is a service's one error path: its table of domain errors and,
// for errors that carry data (a retry delay, a cause), Translate. Field
// errors (*contract.ValidationError) are the contract's 400 in every
// service and need neither.
type Responder struct {
	// Table maps sentinel errors to answers; the first match wins.
	Table []Mapping
	// Translate, when set, maps the errors the table cannot (typed errors
	// such as validation errors); it returns nil for errors it does not know.
	Translate func(c *gin.Context, err error) *Error
}

// Handle adapts h to gin: a returned error is written by Respond.
func (r Responder) Handle(h Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := h(c); err != nil {
			r.Respond(c, err)
		}
	}
}

// Respond writes err in the contract's shape and aborts the chain. A *Error
// is written as it is, a *contract.ValidationError as the field -> messages
// 400; other errors go through Translate, then the table;
// what neither knows becomes, through the package's Respond, a logged 500
// without its text.
func (r Responder) Respond(c *gin.Context, err error) {
	Respond(c, r.Answer(c, err))
}

// Answer is the error Respond writes for err: a *Error when the responder
// knows err, else err itself.
func (r Responder) Answer(c *gin.Context, err error) error {
	if _, ok := errors.AsType[*Error](err); ok {
		return err
	}
	if ve, ok := errors.AsType[*contract.ValidationError](err); ok {
		return Invalid(ve.Fields)
	}
	if r.Translate != nil {
		if we := r.Translate(c, err); we != nil {
			return we
		}
	}
	for _, m := range r.Table {
		if errors.Is(err, m.Err) {
			e := m.Answer
			return &e
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeUnavailable, Detail: "The request took too long."}
	}
	return err
}
