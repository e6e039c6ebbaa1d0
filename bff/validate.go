package bff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/customer"
)

// Field names of the user part of a request.
const (
	fieldEmail       = "email"
	fieldFirstName   = "first_name"
	fieldLastName    = "last_name"
	fieldPhoneNumber = "phone_number"
	fieldPassword1   = "password1"
	fieldPassword2   = "password2"
	fieldPassword    = "password"
)

// userFields are the auth service's writable user fields.
var userFields = []string{fieldEmail, fieldFirstName, fieldLastName, fieldPhoneNumber}

// customerStringFields are the customer's writable string fields.
var customerStringFields = []string{
	customer.FieldStreetAddress, customer.FieldCity, customer.FieldState, customer.FieldPostalCode,
	customer.FieldCountry, customer.FieldCompanyName, customer.FieldBusinessType, customer.FieldTaxID,
	customer.FieldEmergencyContactName, customer.FieldEmergencyContactPhone,
	customer.FieldEmergencyContactRelationship, customer.FieldPreferredContactMethod,
}

// customerReadOnly are fields of the customer JSON no request may set.
var customerReadOnly = []string{
	customer.FieldID, customer.FieldUserID, customer.FieldIsVerified, customer.FieldCustomerSince,
	customer.FieldTotalServices, customer.FieldLastServiceDate, customer.FieldCreatedAt, customer.FieldUpdatedAt,
	"user_role", "date_joined",
}

func isCustomerField(name string) bool {
	return name == customer.FieldNotificationPreferences || slices.Contains(customerStringFields, name)
}

// Validator checks request bodies with the auth and customer services' own
// rules, so bad input is refused before anything is created.
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

// Registration is a validated registration request.
type Registration struct {
	Auth AuthRegistration
	// Profile holds the customer fields as sent (raw JSON by name).
	Profile map[string]json.RawMessage
}

// fieldErrs collects field -> messages.
type fieldErrs map[string][]string

func (f fieldErrs) add(field, msg string) { f[field] = append(f[field], msg) }

// mergeUntyped adds a service's field errors, except for fields that
// already have a type error (a missing value would be reported again).
func (f fieldErrs) mergeUntyped(m map[string][]string) {
	for k, v := range m {
		if _, typed := f[k]; !typed {
			f[k] = append(f[k], v...)
		}
	}
}

// mergeUntyped adds the field errors of a customer validation error.
func mergeUntyped(f fieldErrs, err error) {
	if ve, ok := errors.AsType[*customer.ValidationError](err); ok {
		f.mergeUntyped(ve.Fields)
	}
}

// stringField decodes a member that must be a string; a problem is added
// to f and nil returned.
func stringField(f fieldErrs, name string, raw json.RawMessage) *string {
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("null")) {
		f.add(name, customer.MsgNull)
		return nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		f.add(name, customer.MsgNotString)
		return nil
	}
	return &s
}

// preferencesField decodes notification_preferences: an object of booleans.
func preferencesField(f fieldErrs, raw json.RawMessage) map[string]bool {
	var obj map[string]json.RawMessage
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) || json.Unmarshal(raw, &obj) != nil || obj == nil {
		f.add(customer.FieldNotificationPreferences, customer.MsgNotObject)
		return nil
	}
	out := make(map[string]bool, len(obj))
	for k, v := range obj {
		if !customer.ValidPreferenceKey(k) {
			f.add(customer.FieldNotificationPreferences, customer.MsgNotObject)
			return nil
		}
		var b bool
		if json.Unmarshal(v, &b) != nil {
			f.add(customer.FieldNotificationPreferences, customer.MsgNotObject)
			return nil
		}
		out[k] = b
	}
	return out
}

// customerChanges decodes the customer members of obj into Changes.
func customerChanges(f fieldErrs, obj map[string]json.RawMessage) (customer.Changes, map[string]json.RawMessage) {
	var ch customer.Changes
	sent := map[string]json.RawMessage{}
	targets := map[string]**string{
		customer.FieldStreetAddress:                &ch.StreetAddress,
		customer.FieldCity:                         &ch.City,
		customer.FieldState:                        &ch.State,
		customer.FieldPostalCode:                   &ch.PostalCode,
		customer.FieldCountry:                      &ch.Country,
		customer.FieldCompanyName:                  &ch.CompanyName,
		customer.FieldBusinessType:                 &ch.BusinessType,
		customer.FieldTaxID:                        &ch.TaxID,
		customer.FieldEmergencyContactName:         &ch.EmergencyContactName,
		customer.FieldEmergencyContactPhone:        &ch.EmergencyContactPhone,
		customer.FieldEmergencyContactRelationship: &ch.EmergencyContactRelationship,
		customer.FieldPreferredContactMethod:       &ch.PreferredContactMethod,
	}
	for name, raw := range obj {
		if !isCustomerField(name) {
			continue
		}
		sent[name] = raw
		if name == customer.FieldNotificationPreferences {
			ch.NotificationPreferences = preferencesField(f, raw)
			continue
		}
		*targets[name] = stringField(f, name, raw)
	}
	return ch, sent
}

// checkUnknown reports members that are neither allowed nor known.
func checkUnknown(f fieldErrs, obj map[string]json.RawMessage, allowed func(string) bool) {
	for name := range obj {
		switch {
		case allowed(name):
		case slices.Contains(customerReadOnly, name):
			f.add(name, customer.MsgReadOnly)
		default:
			f.add(name, customer.MsgUnknown)
		}
	}
}

// ParseRegistration validates a registration body with both services' rules
// and returns every field error at once (a *Error with Fields).
func (v *Validator) ParseRegistration(obj map[string]json.RawMessage) (Registration, error) {
	f := fieldErrs{}
	authFields := []string{fieldEmail, fieldFirstName, fieldLastName, fieldPhoneNumber, fieldPassword1, fieldPassword2}
	checkUnknown(f, obj, func(n string) bool { return slices.Contains(authFields, n) || isCustomerField(n) })

	strs := map[string]*string{}
	for _, name := range authFields {
		if raw, ok := obj[name]; ok {
			strs[name] = stringField(f, name, raw)
		}
	}
	in := auth.RegisterInput{
		Email: strs[fieldEmail], FirstName: strs[fieldFirstName], LastName: strs[fieldLastName],
		PhoneNumber: strs[fieldPhoneNumber], Password1: strs[fieldPassword1], Password2: strs[fieldPassword2],
	}
	af := auth.Fields{}
	in.Validate(v.passwords, af)
	f.mergeUntyped(af)

	ch, sent := customerChanges(f, obj)
	if _, err := customer.ValidateCreate(ch); err != nil {
		mergeUntyped(f, err)
	}
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
		Profile: sent,
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

// ParsePatch validates a PATCH body: each field with the rules of the
// service that owns it.
func (v *Validator) ParsePatch(obj map[string]json.RawMessage) (Patch, error) {
	f := fieldErrs{}
	checkUnknown(f, obj, func(n string) bool { return slices.Contains(userFields, n) || isCustomerField(n) })
	p := Patch{User: map[string]json.RawMessage{}}
	strs := map[string]*string{}
	for _, name := range userFields {
		if raw, ok := obj[name]; ok {
			p.User[name] = raw
			strs[name] = stringField(f, name, raw)
		}
	}
	up := auth.ProfileUpdate{}
	for name, target := range map[string]**string{fieldEmail: &up.Email, fieldFirstName: &up.FirstName, fieldLastName: &up.LastName, fieldPhoneNumber: &up.PhoneNumber} {
		if s := strs[name]; s != nil {
			*target = s
		}
	}
	af := auth.Fields{}
	up.Validate(af)
	f.mergeUntyped(af)
	ch, sent := customerChanges(f, obj)
	p.Profile = sent
	// The country of the stored profile is unknown here: rules that depend
	// on it (a US postal code) are the customer service's to check.
	if _, err := customer.ValidateUpdate(customer.Customer{}, ch, false); err != nil {
		mergeUntyped(f, err)
	}
	if err := Invalid(f); err != nil {
		return Patch{}, err
	}
	return p, nil
}

// Credentials are a login's email and password.
type Credentials struct {
	Email    string
	Password string
}

// ParseLogin checks that a login body has an email and a password.
func (v *Validator) ParseLogin(obj map[string]json.RawMessage) (Credentials, error) {
	f := fieldErrs{}
	checkUnknown(f, obj, func(n string) bool { return n == fieldEmail || n == fieldPassword })
	var c Credentials
	for _, name := range []string{fieldEmail, fieldPassword} {
		raw, ok := obj[name]
		if !ok {
			f.add(name, customer.MsgRequired)
			continue
		}
		s := stringField(f, name, raw)
		switch {
		case s == nil:
		case *s == "":
			f.add(name, customer.MsgBlank)
		case name == fieldEmail:
			c.Email = *s
		default:
			c.Password = *s
		}
	}
	if err := Invalid(f); err != nil {
		return Credentials{}, err
	}
	return c, nil
}
