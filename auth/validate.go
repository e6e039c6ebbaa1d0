package auth

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/acme/customer-platform/internal/contract"
)

// Field limits of the user model (Django's AbstractUser and EmailField).
const (
	MaxEmailLength = 254
	MaxNameLength  = 150
	MaxPhoneLength = 20
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

// RegisterInput is the body of POST /api/auth/register/. A nil field was not
// sent.
type RegisterInput struct {
	Email, FirstName, LastName, PhoneNumber *string
	Password1, Password2                    *string
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

// cleanText trims a text field like DRF's CharField and checks presence and
// length; it returns the cleaned value.
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
// role, date or hash) and the password; the problems are in f. Uniqueness of
// the email is the store's to check.
func (in RegisterInput) Validate(rules *PasswordRules, f Fields) (User, string) {
	u := User{
		Email:       cleanEmail(f, "email", in.Email, true),
		FirstName:   cleanText(f, "first_name", in.FirstName, true, false, MaxNameLength),
		LastName:    cleanText(f, "last_name", in.LastName, true, false, MaxNameLength),
		PhoneNumber: cleanPhone(f, "phone_number", in.PhoneNumber),
	}
	p1 := password(f, "password1", in.Password1, true)
	p2 := password(f, "password2", in.Password2, true)
	if in.Password1 != nil && in.Password2 != nil && p1 != "" && p2 != "" && p1 != p2 {
		f.Add("password2", MsgPasswordMatch)
	}
	if p1 != "" && len(f["password1"]) == 0 {
		for _, m := range rules.Validate(p1, attributesOf(in.FirstName, in.LastName, in.Email)) {
			f.Add("password1", m)
		}
	}
	return u, p1
}

// Validate checks a staff creation; the password is optional ("" when not
// sent) and follows the same rules as at registration.
func (in CreateUserInput) Validate(rules *PasswordRules, f Fields) (User, string) {
	u := User{
		Email:       cleanEmail(f, "email", in.Email, true),
		FirstName:   cleanText(f, "first_name", in.FirstName, false, true, MaxNameLength),
		LastName:    cleanText(f, "last_name", in.LastName, false, true, MaxNameLength),
		PhoneNumber: cleanPhone(f, "phone_number", in.PhoneNumber),
		Role:        contract.RoleCustomer,
	}
	if in.Role != nil {
		r := strings.TrimSpace(*in.Role)
		if !contract.IsUserRole(r) {
			f.Add("user_role", fmt.Sprintf("%q is not a valid choice.", r))
		} else {
			u.Role = r
		}
	}
	pw := ""
	if in.Password != nil {
		pw = password(f, "password", in.Password, false)
		if pw != "" && len(f["password"]) == 0 {
			for _, m := range rules.Validate(pw, attributesOf(in.FirstName, in.LastName, in.Email)) {
				f.Add("password", m)
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
		e := cleanEmail(f, "email", in.Email, true)
		out.Email = &e
	}
	if in.FirstName != nil {
		n := cleanText(f, "first_name", in.FirstName, true, false, MaxNameLength)
		out.FirstName = &n
	}
	if in.LastName != nil {
		n := cleanText(f, "last_name", in.LastName, true, false, MaxNameLength)
		out.LastName = &n
	}
	if in.PhoneNumber != nil {
		p := cleanPhone(f, "phone_number", in.PhoneNumber)
		out.PhoneNumber = &p
	}
	return out
}

// password checks presence and the byte bound; passwords are not trimmed.
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
	if len(*v) > MaxPasswordBytes {
		f.Add(name, msgMaxLength(MaxPasswordBytes))
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
