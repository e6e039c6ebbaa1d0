package auth

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/acme/customer-platform/internal/contract"
)

// Member names of the user JSON and of the bodies the service reads.
const (
	FieldID           = "id"
	FieldEmail        = "email"
	FieldFirstName    = "first_name"
	FieldLastName     = "last_name"
	FieldPhoneNumber  = "phone_number"
	FieldUserRole     = "user_role"
	FieldDateJoined   = "date_joined"
	FieldTokens       = "tokens"
	FieldPassword     = "password"
	FieldPassword1    = "password1"
	FieldPassword2    = "password2"
	FieldRefresh      = "refresh"
	FieldClientID     = "client_id"
	FieldClientSecret = "client_secret"
	// FieldRegistrationKey is the member of the user JSON, as staff and
	// services read it, that carries the user's registration key.
	FieldRegistrationKey = "registration_key"
	// FieldIdempotencyKey names the Idempotency-Key header of a
	// registration in a validation error, as the customer service and the
	// BFF name theirs.
	FieldIdempotencyKey = "Idempotency-Key"
	// FieldRegistrationDeadline names the Registration-Deadline header of a
	// registration in a validation error.
	FieldRegistrationDeadline = "Registration-Deadline"
)

// Field limits of the user model (Django's AbstractUser and EmailField).
const (
	MaxEmailLength = 254
	MaxNameLength  = 150
	MaxPhoneLength = 20
	// MaxRegistrationKeyLength bounds a registration's Idempotency-Key (the
	// customer service's and the BFF's bound).
	MaxRegistrationKeyLength = 255
)

// Django REST framework's messages.
const (
	MsgRequired      = "This field is required."
	MsgBlank         = "This field may not be blank."
	MsgNull          = "This field may not be null."
	MsgNotString     = "Not a valid string."
	MsgInvalidEmail  = "Enter a valid email address."
	MsgInvalidPhone  = "Enter a valid phone number."
	MsgEmailTaken    = "user with this email already exists."
	MsgPasswordMatch = "The two password fields didn’t match."
	MsgReadOnly      = "This field is read-only."
	MsgUnknownField  = "Unknown field."
	// MsgNullCharacters is Django's ProhibitNullCharactersValidator's
	// message, which every CharField of Django REST framework applies.
	MsgNullCharacters = "Null characters are not allowed."
	// MsgIdempotencyKey is the customer service's and the BFF's message for
	// a malformed Idempotency-Key header.
	MsgIdempotencyKey = "Idempotency-Key must be 1 to 255 visible ASCII characters."
	// MsgRegistrationDeadline refuses a malformed Registration-Deadline.
	MsgRegistrationDeadline = "Registration-Deadline must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05.123Z."
)

func msgMaxLength(n int) string {
	return fmt.Sprintf("Ensure this field has no more than %d characters.", n)
}

// Fields collects field -> messages.
type Fields map[string][]string

// Add appends a message to a field.
func (f Fields) Add(field, msg string) { f[field] = append(f[field], msg) }

// Err returns the collected problems as a *contract.ValidationError, or nil.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	return &contract.ValidationError{Fields: f}
}

// RegisterInput is the body of POST /api/auth/register/ and its
// Idempotency-Key header. A nil field was not sent.
type RegisterInput struct {
	Email, FirstName, LastName, PhoneNumber *string
	Password1, Password2                    *string
	// RegistrationKey is the Idempotency-Key header, stored with the user
	// as its RegistrationKey; several header lines come joined by ", "
	// (and are refused).
	RegistrationKey *string
	// Deadline is the Registration-Deadline header: an RFC 3339 timestamp
	// after which the caller no longer waits for the answer; the user is
	// not created when its insert would start at or after it (nil: no
	// deadline). Several header lines come joined by ", " (and are refused).
	Deadline *string
}

// parseDeadline reads a Registration-Deadline value (RFC 3339, with or
// without a fraction, any offset).
func parseDeadline(v string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, v)
	return t, err == nil
}

// deadline is the registration's deadline; zero without one or when it is
// malformed (Validate reports that).
func (in RegisterInput) deadline() time.Time {
	if in.Deadline == nil {
		return time.Time{}
	}
	t, _ := parseDeadline(*in.Deadline)
	return t
}

// ValidRegistrationKey reports whether k is an acceptable registration
// key: 1 to 255 visible ASCII characters, as the customer service and the
// BFF accept an Idempotency-Key.
func ValidRegistrationKey(k string) bool {
	if k == "" || len(k) > MaxRegistrationKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// ProfileUpdate is the body of PATCH /api/auth/profile/update/: only the
// fields sent (non-nil) change.
type ProfileUpdate struct {
	Email, FirstName, LastName, PhoneNumber *string
}

// Empty reports whether nothing would change.
func (u ProfileUpdate) Empty() bool {
	return u.Email == nil && u.FirstName == nil && u.LastName == nil && u.PhoneNumber == nil
}

// CreateUserInput is the body of POST /api/auth/users/ (staff and service
// accounts). Without a password the account gets an unusable one.
type CreateUserInput struct {
	Email, FirstName, LastName, PhoneNumber *string
	Role                                    *string
	Password                                *string
}

// cleanText trims a text field like DRF's CharField and checks presence,
// length and (ProhibitNullCharactersValidator) NUL characters, with the
// messages in the order of CharField's validators; it returns the cleaned
// value.
func cleanText(f Fields, name string, v *string, required, allowBlank bool, max int) string {
	if v == nil {
		if required {
			f.Add(name, MsgRequired)
		}
		return ""
	}
	s := strings.TrimSpace(*v)
	if s == "" {
		if !allowBlank {
			f.Add(name, MsgBlank)
		}
		return ""
	}
	if utf8.RuneCountInString(s) > max {
		f.Add(name, msgMaxLength(max))
	}
	if strings.ContainsRune(s, 0) {
		f.Add(name, MsgNullCharacters)
	}
	return s
}

var (
	emailUserRe   = regexp.MustCompile("^(?i)[-!#$%&'*+/=?^_`{}|~0-9a-z]+(\\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*$")
	emailDomainRe = regexp.MustCompile(`^(?i)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$`)
	phoneRe       = regexp.MustCompile(`^\+?[ (]*[0-9][0-9 ().-]*$`)
)

// ValidEmail is Django's EmailValidator for ASCII addresses (dot-atom local
// part, a dotted domain whose last label does not end with a hyphen, or
// localhost).
func ValidEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return false
	}
	user, domain := s[:at], s[at+1:]
	if !emailUserRe.MatchString(user) {
		return false
	}
	if strings.EqualFold(domain, "localhost") {
		return true
	}
	return emailDomainRe.MatchString(domain) && !strings.HasSuffix(domain, "-")
}

// cleanEmail validates and normalises an email field.
func cleanEmail(f Fields, name string, v *string, required bool) string {
	s := cleanText(f, name, v, required, false, MaxEmailLength)
	if s == "" || len(f[name]) > 0 {
		return ""
	}
	if !ValidEmail(s) {
		f.Add(name, MsgInvalidEmail)
		return ""
	}
	return contract.NormalizeEmail(s)
}

// cleanPhone validates an optional phone number (digits, spaces, dots,
// dashes, parentheses, an optional leading +).
func cleanPhone(f Fields, name string, v *string) string {
	s := cleanText(f, name, v, false, true, MaxPhoneLength)
	if s != "" && len(f[name]) == 0 && !phoneRe.MatchString(s) {
		f.Add(name, MsgInvalidPhone)
	}
	return s
}

// Validate checks a registration and returns the cleaned user (without id,
// role, date or hash; with its registration key when one was sent) and the
// password; the problems are in f. Uniqueness of
// the email is the store's to check.
func (in RegisterInput) Validate(rules *PasswordRules, f Fields) (User, string) {
	u := User{
		Email:       cleanEmail(f, FieldEmail, in.Email, true),
		FirstName:   cleanText(f, FieldFirstName, in.FirstName, true, false, MaxNameLength),
		LastName:    cleanText(f, FieldLastName, in.LastName, true, false, MaxNameLength),
		PhoneNumber: cleanPhone(f, FieldPhoneNumber, in.PhoneNumber),
	}
	if in.RegistrationKey != nil {
		if ValidRegistrationKey(*in.RegistrationKey) {
			u.RegistrationKey = *in.RegistrationKey
		} else {
			f.Add(FieldIdempotencyKey, MsgIdempotencyKey)
		}
	}
	if in.Deadline != nil {
		if _, ok := parseDeadline(*in.Deadline); !ok {
			f.Add(FieldRegistrationDeadline, MsgRegistrationDeadline)
		}
	}
	p1 := password(f, FieldPassword1, in.Password1, true)
	p2 := password(f, FieldPassword2, in.Password2, true)
	if in.Password1 != nil && in.Password2 != nil && p1 != "" && p2 != "" && p1 != p2 {
		f.Add(FieldPassword2, MsgPasswordMatch)
	}
	if p1 != "" && len(f[FieldPassword1]) == 0 {
		for _, m := range rules.Validate(p1, attributesOf(in.FirstName, in.LastName, in.Email)) {
			f.Add(FieldPassword1, m)
		}
	}
	return u, p1
}

// Check returns what the rules find wrong with a registration, as a
// *contract.ValidationError, or nil. The email's uniqueness is the store's
// to check (Service.Register does).
func (in RegisterInput) Check(rules *PasswordRules) error {
	f := Fields{}
	in.Validate(rules, f)
	return f.Err()
}

// Validate checks a staff creation; the password is optional ("" when not
// sent) and follows the same rules as at registration.
func (in CreateUserInput) Validate(rules *PasswordRules, f Fields) (User, string) {
	u := User{
		Email:       cleanEmail(f, FieldEmail, in.Email, true),
		FirstName:   cleanText(f, FieldFirstName, in.FirstName, false, true, MaxNameLength),
		LastName:    cleanText(f, FieldLastName, in.LastName, false, true, MaxNameLength),
		PhoneNumber: cleanPhone(f, FieldPhoneNumber, in.PhoneNumber),
		Role:        contract.RoleCustomer,
	}
	if in.Role != nil {
		r := strings.TrimSpace(*in.Role)
		if !contract.IsUserRole(r) {
			f.Add(FieldUserRole, fmt.Sprintf("%q is not a valid choice.", r))
		} else {
			u.Role = r
		}
	}
	pw := ""
	if in.Password != nil {
		pw = password(f, FieldPassword, in.Password, false)
		if pw != "" && len(f[FieldPassword]) == 0 {
			for _, m := range rules.Validate(pw, attributesOf(in.FirstName, in.LastName, in.Email)) {
				f.Add(FieldPassword, m)
			}
		}
	}
	return u, pw
}

// Validate checks a profile update and returns the cleaned values of the
// fields sent.
func (in ProfileUpdate) Validate(f Fields) ProfileUpdate {
	var out ProfileUpdate
	if in.Email != nil {
		e := cleanEmail(f, FieldEmail, in.Email, true)
		out.Email = &e
	}
	if in.FirstName != nil {
		n := cleanText(f, FieldFirstName, in.FirstName, true, false, MaxNameLength)
		out.FirstName = &n
	}
	if in.LastName != nil {
		n := cleanText(f, FieldLastName, in.LastName, true, false, MaxNameLength)
		out.LastName = &n
	}
	if in.PhoneNumber != nil {
		p := cleanPhone(f, FieldPhoneNumber, in.PhoneNumber)
		out.PhoneNumber = &p
	}
	return out
}

// Check returns what the rules find wrong with a profile update, as a
// *contract.ValidationError, or nil. The email's uniqueness is the store's
// to check (Service.UpdateProfile does).
func (in ProfileUpdate) Check() error {
	f := Fields{}
	in.Validate(f)
	return f.Err()
}

// LoginInput is the body of POST /api/auth/login/.
type LoginInput struct {
	Email, Password *string
}

// Validate checks that a login has an email and a password, and returns
// them (the email trimmed, not yet normalised).
func (in LoginInput) Validate(f Fields) (email, pw string) {
	email = cleanText(f, FieldEmail, in.Email, true, false, MaxEmailLength)
	pw = password(f, FieldPassword, in.Password, true)
	return email, pw
}

// Check returns what is missing or too long in a login, as a
// *contract.ValidationError, or nil. Whether the credentials are right is
// Service.Login's to say.
func (in LoginInput) Check() error {
	f := Fields{}
	in.Validate(f)
	return f.Err()
}

// ServiceTokenInput is the body of POST /api/auth/token/service/.
type ServiceTokenInput struct {
	ClientID, ClientSecret *string
}

// MaxClientIDLength bounds a service client's id.
const MaxClientIDLength = 256

// Validate checks that a service token request has a client id and a
// secret, and returns them.
func (in ServiceTokenInput) Validate(f Fields) (id, secret string) {
	id = cleanText(f, FieldClientID, in.ClientID, true, false, MaxClientIDLength)
	secret = password(f, FieldClientSecret, in.ClientSecret, true)
	return id, secret
}

// MaxRefreshTokenLength bounds the refresh member of a body.
const MaxRefreshTokenLength = 1 << 16

// refreshToken checks the refresh member of a refresh or logout body.
func refreshToken(f Fields, v *string) string {
	return cleanText(f, FieldRefresh, v, true, false, MaxRefreshTokenLength)
}

// password checks presence, the byte bound and NUL characters (a password
// is a CharField too); passwords are not trimmed.
func password(f Fields, name string, v *string, required bool) string {
	if v == nil {
		if required {
			f.Add(name, MsgRequired)
		}
		return ""
	}
	if *v == "" {
		f.Add(name, MsgBlank)
		return ""
	}
	ok := true
	if len(*v) > MaxPasswordBytes {
		f.Add(name, msgMaxLength(MaxPasswordBytes))
		ok = false
	}
	if strings.ContainsRune(*v, 0) {
		f.Add(name, MsgNullCharacters)
		ok = false
	}
	if !ok {
		return ""
	}
	return *v
}

func attributesOf(first, last, email *string) UserAttributes {
	var a UserAttributes
	if first != nil {
		a.FirstName = strings.TrimSpace(*first)
	}
	if last != nil {
		a.LastName = strings.TrimSpace(*last)
	}
	if email != nil {
		a.Email = strings.TrimSpace(*email)
	}
	return a
}
