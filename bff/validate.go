package bff

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
)

// Validator checks request bodies before anything is created or changed,
// with the auth and customer services' own decoders and rules: each member
// of a body is decoded by the service it belongs to, so the BFF's 400 names
// the problems each service would name, worded as it words them, all at
// once.
type Validator struct {
	passwords *auth.PasswordRules
}

// NewValidator loads the password rules (the common-password list).
func NewValidator() (*Validator, error) {
	rules, err := auth.NewPasswordRules()
	if err != nil {
		return nil, fmt.Errorf("bff: %w", err)
	}
	return &Validator{passwords: rules}, nil
}

// registerMember reports whether a member of a registration is one the
// auth service's register reads (auth.DecodeRegister).
func registerMember(name string) bool {
	return auth.IsProfileField(name) || name == auth.FieldPassword1 || name == auth.FieldPassword2
}

// userMember reports whether a member of a body is the auth service's: a
// member of the user JSON, which it reads or refuses as read-only; the
// others are the customer service's to decode or refuse.
func userMember(name string) bool {
	return auth.IsProfileField(name) || auth.IsReadOnlyUserField(name)
}

// fieldErrs collects field -> messages.
type fieldErrs map[string][]string

// add records the field errors of a *contract.ValidationError in err.
func (f fieldErrs) add(err error) { f.addRules(err, nil) }

// addRules records what a service's rules say of the values, except for
// fields whose member could not be decoded: the rules saw them as absent,
// and the decoding problem is the one to report (as the services do).
func (f fieldErrs) addRules(err error, undecoded map[string][]string) {
	if ve, ok := errors.AsType[*contract.ValidationError](err); ok {
		for k, v := range ve.Fields {
			if _, bad := undecoded[k]; !bad {
				f[k] = append(f[k], v...)
			}
		}
	}
}

// members are the members of obj that keep says to keep, as sent.
func members(obj map[string]json.RawMessage, keep func(string) bool) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for name, raw := range obj {
		if keep(name) {
			out[name] = raw
		}
	}
	return out
}

// Registration is a validated registration request.
type Registration struct {
	Auth AuthRegistration
	// Profile holds the customer fields as sent (raw JSON by name).
	Profile map[string]json.RawMessage
}

// ParseRegistration validates a registration body with both services'
// decoders and rules and returns every field error at once (a *Error with
// Fields): the members of the user JSON as the auth service decodes and
// checks them, every other member as the customer service's profile
// creation does.
func (v *Validator) ParseRegistration(obj map[string]json.RawMessage) (Registration, error) {
	f := fieldErrs{}
	in, err := auth.DecodeRegister(obj, v.passwords)
	if err == nil {
		err = in.Check(v.passwords)
	}
	f.add(err)
	// The other members of the user JSON (id, user_role, ...) are refused
	// as the auth service refuses them in a profile update.
	for name := range obj {
		if auth.IsReadOnlyUserField(name) && !registerMember(name) {
			f[name] = append(f[name], auth.MsgReadOnly)
		}
	}

	body, undecoded := customer.DecodeProfile(obj, customer.DecodeOptions{Others: userMember})
	f.add(undecoded.Err())
	_, err = customer.ValidateCreate(body.Changes)
	f.addRules(err, undecoded)
	if err := Invalid(f); err != nil {
		return Registration{}, err
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return Registration{
		Auth: AuthRegistration{
			Email: deref(in.Email), FirstName: deref(in.FirstName), LastName: deref(in.LastName),
			PhoneNumber: deref(in.PhoneNumber), Password1: deref(in.Password1), Password2: deref(in.Password2),
		},
		Profile: members(obj, customer.WritableField),
	}, nil
}

// Patch is a validated PATCH of the merged view: the members for each
// service, as sent.
type Patch struct {
	User    map[string]json.RawMessage
	Profile map[string]json.RawMessage
}

// Empty reports whether the patch changes nothing.
func (p Patch) Empty() bool { return len(p.User) == 0 && len(p.Profile) == 0 }

// ParsePatch validates a PATCH body: the members of the user JSON as the
// auth service's profile update decodes and checks them, every other member
// as the customer service's profile update does.
func (v *Validator) ParsePatch(obj map[string]json.RawMessage) (Patch, error) {
	f := fieldErrs{}
	up, err := auth.DecodeProfileUpdate(obj, func(name string) bool { return !userMember(name) })
	if err == nil {
		err = up.Check()
	}
	f.add(err)

	body, undecoded := customer.DecodeProfile(obj, customer.DecodeOptions{Others: userMember})
	f.add(undecoded.Err())
	// The country of the stored profile is unknown here: rules that depend
	// on it (a US postal code) are the customer service's to check.
	_, err = customer.ValidateUpdate(customer.Customer{}, body.Changes, false)
	f.addRules(err, undecoded)
	if err := Invalid(f); err != nil {
		return Patch{}, err
	}
	return Patch{User: members(obj, auth.IsProfileField), Profile: members(obj, customer.WritableField)}, nil
}

// Credentials are a login's email and password.
type Credentials struct {
	Email    string
	Password string
}

// ParseLogin decodes and checks a login body as the auth service's login
// does (an email and a password are required). The BFF's login body is
// closed (its OpenAPI document): any other member is refused, named as the
// services name an unknown member.
func (v *Validator) ParseLogin(obj map[string]json.RawMessage) (Credentials, error) {
	f := fieldErrs{}
	in, err := auth.DecodeLogin(obj)
	if err == nil {
		err = in.Check()
	}
	f.add(err)
	unknown := customer.FieldErrors{}
	for name := range obj {
		if name != auth.FieldEmail && name != auth.FieldPassword {
			unknown.AddUnknown(name)
		}
	}
	f.add(unknown.Err())
	if ierr := Invalid(f); ierr != nil {
		return Credentials{}, ierr
	}
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{Email: *in.Email, Password: *in.Password}, nil
}
