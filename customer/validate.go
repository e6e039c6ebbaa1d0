package customer

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Field names of the contract's customer JSON; validation errors are keyed by them.
const (
	FieldID                           = "id"
	FieldUserID                       = "user_id"
	FieldStreetAddress                = "street_address"
	FieldCity                         = "city"
	FieldState                        = "state"
	FieldPostalCode                   = "postal_code"
	FieldCountry                      = "country"
	FieldCompanyName                  = "company_name"
	FieldBusinessType                 = "business_type"
	FieldTaxID                        = "tax_id"
	FieldEmergencyContactName         = "emergency_contact_name"
	FieldEmergencyContactPhone        = "emergency_contact_phone"
	FieldEmergencyContactRelationship = "emergency_contact_relationship"
	FieldPreferredContactMethod       = "preferred_contact_method"
	FieldNotificationPreferences      = "notification_preferences"
	FieldIsVerified                   = "is_verified"
	FieldCustomerSince                = "customer_since"
	FieldTotalServices                = "total_services"
	FieldLastServiceDate              = "last_service_date"
	FieldCreatedAt                    = "created_at"
	FieldUpdatedAt                    = "updated_at"
	FieldEmail                        = "email"
	FieldFirstName                    = "first_name"
	FieldLastName                     = "last_name"
	FieldPhoneNumber                  = "phone_number"

	FieldServiceType = "service_type"
	FieldNotes       = "notes"
	FieldPerformedAt = "performed_at"
	FieldIdempotency = "Idempotency-Key"
	FieldSearch      = "search"
)

// MaxLength is the longest value, in characters, of each string field.
var MaxLength = map[string]int{
	FieldStreetAddress:                255,
	FieldCity:                         100,
	FieldState:                        100,
	FieldPostalCode:                   20,
	FieldCountry:                      100,
	FieldCompanyName:                  200,
	FieldBusinessType:                 50,
	FieldTaxID:                        50,
	FieldEmergencyContactName:         200,
	FieldEmergencyContactPhone:        20,
	FieldEmergencyContactRelationship: 100,
	FieldPreferredContactMethod:       10,
	FieldServiceType:                  100,
	FieldNotes:                        2000,
}

// Limits of notification_preferences.
const (
	MaxPreferences      = 20
	MaxPreferenceKeyLen = 50
)

// MaxIdempotencyKey is the longest Idempotency-Key accepted.
const MaxIdempotencyKey = 255

// MaxSearch is the longest search term accepted.
const MaxSearch = 200

// futureSkew is how far in the future a performed_at may lie (clock skew).
const futureSkew = 5 * time.Minute

var (
	usPostalCode  = regexp.MustCompile(`^[0-9]{5}(-[0-9]{4})?$`)
	phonePattern  = regexp.MustCompile(`^\+?[0-9 ().\-]{3,20}$`)
	preferenceKey = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
)

// Changes are the writable fields a request sends; a nil field was not sent
// (and is left as it is). NotificationPreferences is nil when not sent.
type Changes struct {
	StreetAddress                *string
	City                         *string
	State                        *string
	PostalCode                   *string
	Country                      *string
	CompanyName                  *string
	BusinessType                 *string
	TaxID                        *string
	EmergencyContactName         *string
	EmergencyContactPhone        *string
	EmergencyContactRelationship *string
	PreferredContactMethod       *string
	NotificationPreferences      map[string]bool
	IsVerified                   *bool // staff only
}

// strings lists the string fields of ch by name, for uniform checks.
func (ch *Changes) strings() []struct {
	name string
	v    **string
} {
	return []struct {
		name string
		v    **string
	}{
		{FieldStreetAddress, &ch.StreetAddress},
		{FieldCity, &ch.City},
		{FieldState, &ch.State},
		{FieldPostalCode, &ch.PostalCode},
		{FieldCountry, &ch.Country},
		{FieldCompanyName, &ch.CompanyName},
		{FieldBusinessType, &ch.BusinessType},
		{FieldTaxID, &ch.TaxID},
		{FieldEmergencyContactName, &ch.EmergencyContactName},
		{FieldEmergencyContactPhone, &ch.EmergencyContactPhone},
		{FieldEmergencyContactRelationship, &ch.EmergencyContactRelationship},
		{FieldPreferredContactMethod, &ch.PreferredContactMethod},
	}
}

// Sent lists the names of the fields ch sets.
func (ch Changes) Sent() []string {
	var out []string
	for _, f := range ch.strings() {
		if *f.v != nil {
			out = append(out, f.name)
		}
	}
	if ch.NotificationPreferences != nil {
		out = append(out, FieldNotificationPreferences)
	}
	if ch.IsVerified != nil {
		out = append(out, FieldIsVerified)
	}
	return out
}

// Empty reports whether ch sets nothing.
func (ch Changes) Empty() bool { return len(ch.Sent()) == 0 }

// blankAllowed are the string fields that may be sent empty.
var blankAllowed = map[string]bool{
	FieldState:                        true,
	FieldCompanyName:                  true,
	FieldBusinessType:                 true,
	FieldTaxID:                        true,
	FieldEmergencyContactName:         true,
	FieldEmergencyContactPhone:        true,
	FieldEmergencyContactRelationship: true,
}

// requiredOnCreate are the fields a new profile (or a full update) must carry.
var requiredOnCreate = []string{FieldStreetAddress, FieldCity, FieldPostalCode}

// normalize trims the whitespace around every string sent, as Django REST
// framework's CharField does, and returns a copy.
func (ch Changes) normalize() Changes {
	for _, f := range ch.strings() {
		if *f.v != nil {
			s := strings.TrimSpace(**f.v)
			*f.v = &s
		}
	}
	return ch
}

// validate checks each field sent on its own. requireAll also demands the
// fields a profile cannot be without (create, and a full update).
func (ch Changes) validate(fe FieldErrors, requireAll bool) {
	for _, f := range ch.strings() {
		v := *f.v
		if v == nil {
			continue
		}
		s := *v
		switch {
		case strings.IndexByte(s, 0) >= 0:
			fe.Add(f.name, MsgNullChar)
			continue
		case utf8.RuneCountInString(s) > MaxLength[f.name]:
			fe.Add(f.name, MsgMaxLength(MaxLength[f.name]))
			continue
		case s == "" && !blankAllowed[f.name]:
			fe.Add(f.name, MsgBlank)
			continue
		}
		switch f.name {
		case FieldBusinessType:
			if s != "" && !slices.Contains(BusinessTypes, s) {
				fe.Add(f.name, MsgChoice(s))
			}
		case FieldPreferredContactMethod:
			if s != ContactEmail && s != ContactPhone && s != ContactSMS {
				fe.Add(f.name, MsgChoice(s))
			}
		case FieldEmergencyContactPhone:
			if s != "" && !phonePattern.MatchString(s) {
				fe.Add(f.name, MsgPhone)
			}
		}
	}
	if ch.NotificationPreferences != nil {
		validatePreferences(fe, ch.NotificationPreferences)
	}
	if requireAll {
		sent := ch.Sent()
		for _, name := range requiredOnCreate {
			if !slices.Contains(sent, name) {
				fe.Add(name, MsgRequired)
			}
		}
	}
}

func validatePreferences(fe FieldErrors, p map[string]bool) {
	if len(p) > MaxPreferences {
		fe.Add(FieldNotificationPreferences, msgTooManyPreferences())
		return
	}
	for k := range p {
		if len(k) > MaxPreferenceKeyLen || !preferenceKey.MatchString(k) {
			fe.Add(FieldNotificationPreferences, "Invalid key "+strconv.Quote(truncate(k, MaxPreferenceKeyLen))+": keys are letters, digits and underscores, starting with a letter, at most "+strconv.Itoa(MaxPreferenceKeyLen)+" characters.")
			return
		}
	}
}

// msgTooManyPreferences is the message for notification_preferences with
// more than MaxPreferences keys.
func msgTooManyPreferences() string {
	return "Ensure this object has no more than " + strconv.Itoa(MaxPreferences) + " keys."
}

// validPreferenceKey reports whether k may be a notification_preferences key;
// DecodeProfile checks the keys before decoding their values.
func validPreferenceKey(k string) bool {
	return len(k) <= MaxPreferenceKeyLen && preferenceKey.MatchString(k)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// isUSA reports whether a country names the United States.
func isUSA(country string) bool {
	switch strings.ToUpper(strings.TrimSpace(country)) {
	case "USA", "US", "U.S.", "U.S.A.", "UNITED STATES", "UNITED STATES OF AMERICA":
		return true
	}
	return false
}

// validateWhole checks the rules that span fields on the profile as it would
// be after the change: a US profile needs a US postal code.
func validateWhole(fe FieldErrors, c Customer, ch Changes) {
	if _, bad := fe[FieldPostalCode]; bad {
		return
	}
	if _, bad := fe[FieldCountry]; bad {
		return
	}
	if ch.PostalCode == nil && ch.Country == nil {
		return
	}
	if isUSA(c.Country) && !usPostalCode.MatchString(c.PostalCode) {
		fe.Add(FieldPostalCode, MsgPostalCode)
	}
}

// apply writes the changes into c.
func (ch Changes) apply(c *Customer) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&c.StreetAddress, ch.StreetAddress)
	set(&c.City, ch.City)
	set(&c.State, ch.State)
	set(&c.PostalCode, ch.PostalCode)
	set(&c.Country, ch.Country)
	set(&c.CompanyName, ch.CompanyName)
	set(&c.BusinessType, ch.BusinessType)
	set(&c.TaxID, ch.TaxID)
	set(&c.EmergencyContact.Name, ch.EmergencyContactName)
	set(&c.EmergencyContact.Phone, ch.EmergencyContactPhone)
	set(&c.EmergencyContact.Relationship, ch.EmergencyContactRelationship)
	set(&c.PreferredContactMethod, ch.PreferredContactMethod)
	if ch.NotificationPreferences != nil {
		c.NotificationPreferences = make(map[string]bool, len(ch.NotificationPreferences))
		for k, v := range ch.NotificationPreferences {
			c.NotificationPreferences[k] = v
		}
	}
	if ch.IsVerified != nil {
		c.IsVerified = *ch.IsVerified
	}
}

// ValidateCreate checks the body of a profile creation on its own (every
// problem at once) and returns the profile it describes, with the defaults
// filled in; ids and dates are set by the Service.
func ValidateCreate(ch Changes) (Customer, error) {
	ch = ch.normalize()
	fe := FieldErrors{}
	ch.validate(fe, true)
	c := Customer{
		Address:                 Address{Country: DefaultCountry},
		PreferredContactMethod:  ContactEmail,
		NotificationPreferences: DefaultNotificationPreferences(),
	}
	ch.apply(&c)
	validateWhole(fe, c, Changes{PostalCode: ch.PostalCode, Country: ch.Country})
	if err := fe.Err(); err != nil {
		return Customer{}, err
	}
	return c, nil
}

// ValidateUpdate checks changes against the current profile and returns the
// normalised changes to store. full (PUT) also demands the required fields.
func ValidateUpdate(current Customer, ch Changes, full bool) (Changes, error) {
	ch = ch.normalize()
	fe := FieldErrors{}
	ch.validate(fe, full)
	merged := current.Clone()
	ch.apply(&merged)
	validateWhole(fe, merged, ch)
	if err := fe.Err(); err != nil {
		return Changes{}, err
	}
	return ch, nil
}

// ValidIdempotencyKey reports whether k is an acceptable Idempotency-Key.
func ValidIdempotencyKey(k string) bool {
	if k == "" || len(k) > MaxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// validateService checks the body of increment_service.
func validateService(in ServiceInput, now time.Time) (ServiceInput, error) {
	fe := FieldErrors{}
	in.ServiceType = strings.TrimSpace(in.ServiceType)
	in.Notes = strings.TrimSpace(in.Notes)
	for _, f := range []struct{ name, v string }{{FieldServiceType, in.ServiceType}, {FieldNotes, in.Notes}} {
		switch {
		case strings.IndexByte(f.v, 0) >= 0:
			fe.Add(f.name, MsgNullChar)
		case utf8.RuneCountInString(f.v) > MaxLength[f.name]:
			fe.Add(f.name, MsgMaxLength(MaxLength[f.name]))
		}
	}
	if in.PerformedAt != nil && in.PerformedAt.After(now.Add(futureSkew)) {
		fe.Add(FieldPerformedAt, MsgFutureDate)
	}
	return in, fe.Err()
}

// fingerprint identifies the request of an increment_service call, so that a
// retry with the same Idempotency-Key and a different body is told apart.
func (in ServiceInput) fingerprint() string {
	h := sha256.New()
	h.Write([]byte(in.ServiceType))
	h.Write([]byte{0})
	h.Write([]byte(in.Notes))
	h.Write([]byte{0})
	if in.PerformedAt != nil {
		h.Write([]byte(in.PerformedAt.UTC().Format(time.RFC3339Nano)))
	}
	return hex.EncodeToString(h.Sum(nil))
}
