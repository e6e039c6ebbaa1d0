package auth

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/acme/customer-platform/internal/contract"
)

// The decoders turn a JSON object body, read as its raw members by name,
// into the input of a Service method, next to the rules of that input. The
// auth service's HTTP API and the BFF (which checks a registration before
// it creates anything) call the same ones.
//
// A decoder reads the members it knows as strings. When one is null or
// not a string, or (where the body is closed) a member is not one the
// input takes, the body is refused whole: the error is a
// *contract.ValidationError naming every problem at once, as Django REST
// framework reports every field: those problems, and what the input's
// rules say of the other members (a type error replaces the rules'
// messages for its field). A body that decodes is returned with a nil
// error; its rules are checked by the input's Check, and by the Service
// method, which applies them after its rate limits.
//
// Among the rules: a NUL character in any text member (names, email,
// phone number, passwords, client credentials, a refresh token) is refused
// with MsgNullCharacters, as Django REST framework's CharField refuses it,
// field by field; so a NUL is never stored nor signed into a token, and
// the BFF, which decodes and checks with these, answers as the auth
// service does.

// readOnlyUserFields are the members of the user JSON a body never sets.
var readOnlyUserFields = []string{
	FieldID, FieldUserRole, FieldDateJoined, FieldTokens, FieldPassword, FieldPassword1, FieldPassword2,
}

// profileFields are the members a profile update sets.
var profileFields = []string{FieldEmail, FieldFirstName, FieldLastName, FieldPhoneNumber}

// IsProfileField reports whether name is a member of the user JSON that
// the user changes with a profile update (email, first_name, last_name,
// phone_number).
func IsProfileField(name string) bool { return slices.Contains(profileFields, name) }

// IsReadOnlyUserField reports whether name is a member of the user JSON (or
// of the register body) that a profile update may not set: it is refused
// with MsgReadOnly rather than MsgUnknownField.
func IsReadOnlyUserField(name string) bool { return slices.Contains(readOnlyUserFields, name) }

// decoder reads the string members of a body and collects what is wrong
// with them.
type decoder struct {
	body map[string]json.RawMessage
	errs Fields
}

func newDecoder(body map[string]json.RawMessage) *decoder {
	return &decoder{body: body, errs: Fields{}}
}

// str returns a string member; nil when it is absent, null or not a string
// (the last two are errors).
func (d *decoder) str(name string) *string {
	raw, ok := d.body[name]
	if !ok {
		return nil
	}
	if string(bytes.TrimSpace(raw)) == "null" {
		d.errs.Add(name, MsgNull)
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		d.errs.Add(name, MsgNotString)
		return nil
	}
	return &s
}

// only refuses every member that is not in allowed and not taken by others
// (nil: none): a read-only member of the user JSON with MsgReadOnly, any
// other with MsgUnknownField.
func (d *decoder) only(allowed []string, others func(string) bool) {
	for name := range d.body {
		switch {
		case slices.Contains(allowed, name), others != nil && others(name):
		case IsReadOnlyUserField(name):
			d.errs.Add(name, MsgReadOnly)
		default:
			d.errs.Add(contract.EchoedName(name), MsgUnknownField)
		}
	}
}

// err is nil when every member decoded; otherwise every problem of the
// body: the decoding problems, and what validate (the input's rules) says
// of the other members.
func (d *decoder) err(validate func(Fields)) error {
	if len(d.errs) == 0 {
		return nil
	}
	f := Fields{}
	validate(f)
	for k, v := range d.errs {
		f[k] = v
	}
	return f.Err()
}

// DecodeRegister decodes the auth members of a registration body (email,
// first_name, last_name, phone_number, password1, password2); it does not
// look at other members (the auth service ignores them; the BFF gives them
// to the customer service). rules are the password rules the refusal of an
// undecodable body reports with.
func DecodeRegister(body map[string]json.RawMessage, rules *PasswordRules) (RegisterInput, error) {
	return DecodeRegisterWithKey(body, nil, rules)
}

// DecodeRegisterWithKey is DecodeRegister for the auth service's own
// register endpoint: key is its Idempotency-Key header (nil: not sent),
// which becomes the input's RegistrationKey; a refused body reports a
// malformed key with its other problems.
func DecodeRegisterWithKey(body map[string]json.RawMessage, key *string, rules *PasswordRules) (RegisterInput, error) {
	return DecodeRegisterRequest(body, RegisterHeaders{Key: key}, rules)
}

// RegisterHeaders are the headers of the auth service's register endpoint
// that become part of its input; nil: not sent.
type RegisterHeaders struct {
	Key      *string // Idempotency-Key: the input's RegistrationKey
	Deadline *string // Registration-Deadline: the input's Deadline
}

// DecodeRegisterRequest is DecodeRegister for the auth service's own
// register endpoint, with its headers; a refused body reports a malformed
// header with its other problems.
func DecodeRegisterRequest(body map[string]json.RawMessage, h RegisterHeaders, rules *PasswordRules) (RegisterInput, error) {
	d := newDecoder(body)
	in := RegisterInput{
		Email: d.str(FieldEmail), FirstName: d.str(FieldFirstName), LastName: d.str(FieldLastName),
		PhoneNumber: d.str(FieldPhoneNumber), Password1: d.str(FieldPassword1), Password2: d.str(FieldPassword2),
		RegistrationKey: h.Key, Deadline: h.Deadline,
	}
	return in, d.err(func(f Fields) { in.Validate(rules, f) })
}

// DecodeProfileUpdate decodes a profile update body (any of email,
// first_name, last_name, phone_number). Every other member is refused
// (read-only members of the user JSON with MsgReadOnly, the rest with
// MsgUnknownField, a long name cut by contract.EchoedName) unless others
// reports that the caller takes it (nil: the caller takes none; the BFF
// passes the customer service's members).
func DecodeProfileUpdate(body map[string]json.RawMessage, others func(name string) bool) (ProfileUpdate, error) {
	d := newDecoder(body)
	d.only(profileFields, others)
	in := ProfileUpdate{
		Email: d.str(FieldEmail), FirstName: d.str(FieldFirstName),
		LastName: d.str(FieldLastName), PhoneNumber: d.str(FieldPhoneNumber),
	}
	return in, d.err(func(f Fields) { in.Validate(f) })
}

// DecodeLogin decodes a login body (email, password); other members are
// not looked at.
func DecodeLogin(body map[string]json.RawMessage) (LoginInput, error) {
	d := newDecoder(body)
	in := LoginInput{Email: d.str(FieldEmail), Password: d.str(FieldPassword)}
	return in, d.err(func(f Fields) { in.Validate(f) })
}

// DecodeCreateUser decodes the body of a staff creation (email,
// first_name, last_name, phone_number, user_role, password); other members
// are not looked at. A refused body is only reported to a caller that may
// create users (AuthorizeCreateUser): the handler checks that first.
func DecodeCreateUser(body map[string]json.RawMessage, rules *PasswordRules) (CreateUserInput, error) {
	d := newDecoder(body)
	in := CreateUserInput{
		Email: d.str(FieldEmail), FirstName: d.str(FieldFirstName), LastName: d.str(FieldLastName),
		PhoneNumber: d.str(FieldPhoneNumber), Role: d.str(FieldUserRole), Password: d.str(FieldPassword),
	}
	return in, d.err(func(f Fields) { in.Validate(rules, f) })
}

// DecodeServiceToken decodes a service token request (client_id,
// client_secret); other members are not looked at.
func DecodeServiceToken(body map[string]json.RawMessage) (ServiceTokenInput, error) {
	d := newDecoder(body)
	in := ServiceTokenInput{ClientID: d.str(FieldClientID), ClientSecret: d.str(FieldClientSecret)}
	return in, d.err(func(f Fields) { in.Validate(f) })
}

// DecodeRefresh decodes the refresh member of a refresh or logout body;
// other members are not looked at.
func DecodeRefresh(body map[string]json.RawMessage) (*string, error) {
	d := newDecoder(body)
	tok := d.str(FieldRefresh)
	return tok, d.err(func(f Fields) { refreshToken(f, tok) })
}
