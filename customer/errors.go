package customer

import (
	"errors"
	"fmt"

	"github.com/acme/customer-platform/internal/contract"
)

// Sentinel errors of the customer domain; adapters translate their own
// failures into these (a duplicate user_id becomes ErrProfileExists) and the
// HTTP adapter maps each to one status.
var (
	ErrNotFound      = errors.New("customer profile not found")
	ErrProfileExists = errors.New("customer profile already exists")
	ErrForbidden     = errors.New("permission denied")
	ErrInvalidPage   = errors.New("invalid page")
	// ErrBusy: another write of the profile held it for too long.
	ErrBusy = errors.New("the customer profile is being changed by another request")
	// ErrMissingScope: a service token without the scope the operation
	// needs. It is an ErrForbidden (errors.Is), answered as one.
	ErrMissingScope        = fmt.Errorf("%w: the service token's scope does not allow this", ErrForbidden)
	ErrIdempotencyMismatch = errors.New("idempotency key already used for a different request")
	// ErrUserNotFound: the auth service says the user does not exist (a
	// deleted account whose token is still valid). Users returns it.
	ErrUserNotFound = errors.New("user not found")
	// ErrUserUnconfirmed: the auth service could not be asked whether the
	// user exists (unreachable, too slow, an unexpected answer), so no
	// profile was created.
	ErrUserUnconfirmed = errors.New("the auth service could not confirm the user")
	// ErrUserExists: an erasure was asked for a user the auth service still
	// has (a wrong or forged user.deleted event); nothing was deleted.
	ErrUserExists = errors.New("the user still exists at the auth service")
)

// FieldErrors maps a field name to its problems: the contract's 400 body.
type FieldErrors map[string][]string

// Add records one problem of field.
func (fe FieldErrors) Add(field, msg string) { fe[field] = append(fe[field], msg) }

// Err returns the problems as a *contract.ValidationError, or nil when
// there are none.
func (fe FieldErrors) Err() error {
	if len(fe) == 0 {
		return nil
	}
	return &contract.ValidationError{Fields: fe}
}

// Validation messages, worded as Django REST framework words them.
const (
	MsgRequired     = "This field is required."
	MsgBlank        = "This field may not be blank."
	MsgNull         = "This field may not be null."
	MsgNotString    = "Not a valid string."
	MsgNotBool      = "Must be a valid boolean."
	MsgNullChar     = "Null characters are not allowed."
	MsgReadOnly     = "This field is read-only."
	MsgUnknown      = "Unknown field."
	MsgInvalidUUID  = "Must be a valid UUID."
	MsgInvalidDate  = "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
	MsgPostalCode   = "Enter a valid US postal code (12345 or 12345-6789)."
	MsgPhone        = "Enter a valid phone number."
	MsgNotObject    = "Expected a JSON object of booleans."
	MsgFutureDate   = "Service date cannot be in the future."
	MsgIdempotency  = "Idempotency-Key must be 1 to 255 visible ASCII characters."
	MsgNotInteger   = "A valid integer is required."
	MsgSearchLength = "Ensure this value has at most 200 characters."
)

// MsgMaxLength is the message for a string longer than n characters.
func MsgMaxLength(n int) string {
	return fmt.Sprintf("Ensure this field has no more than %d characters.", n)
}

// MsgNoSuchUser is the message for a user_id the auth service does not
// know, worded as Django REST framework's PrimaryKeyRelatedField words it.
func MsgNoSuchUser(id string) string {
	return fmt.Sprintf("Invalid pk \"%s\" - object does not exist.", id)
}

// MsgChoice is the message for a value outside a field's choices.
func MsgChoice(v string) string { return fmt.Sprintf("%q is not a valid choice.", v) }
