package customer

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

// The decoders turn the members of a JSON request body (as read into a map
// of raw members) into the domain's inputs, collecting every problem field by
// field: unknown members, members the caller may not write, wrong JSON types,
// nulls, operator objects, bad preference keys. The customer service's HTTP
// API and the BFF's pre-validation of registrations and patches decode with
// them, so both answer the same body with the same 400.

// fieldKind says how a request may use a member of the customer JSON.
type fieldKind int

const (
	kindString   fieldKind = iota + 1 // a writable string
	kindPrefs                         // notification_preferences
	kindVerified                      // is_verified: staff only
	kindUserID                        // user_id: only when a staff member creates a profile for a user
	kindReadOnly                      // never written by a request
)

// profileFields are the members of the customer JSON and how they are written.
var profileFields = map[string]fieldKind{
	FieldStreetAddress:                kindString,
	FieldCity:                         kindString,
	FieldState:                        kindString,
	FieldPostalCode:                   kindString,
	FieldCountry:                      kindString,
	FieldCompanyName:                  kindString,
	FieldBusinessType:                 kindString,
	FieldTaxID:                        kindString,
	FieldEmergencyContactName:         kindString,
	FieldEmergencyContactPhone:        kindString,
	FieldEmergencyContactRelationship: kindString,
	FieldPreferredContactMethod:       kindString,
	FieldNotificationPreferences:      kindPrefs,
	FieldIsVerified:                   kindVerified,
	FieldUserID:                       kindUserID,
	FieldID:                           kindReadOnly,
	FieldCustomerSince:                kindReadOnly,
	FieldTotalServices:                kindReadOnly,
	FieldLastServiceDate:              kindReadOnly,
	FieldCreatedAt:                    kindReadOnly,
	FieldUpdatedAt:                    kindReadOnly,
	FieldEmail:                        kindReadOnly,
	FieldFirstName:                    kindReadOnly,
	FieldLastName:                     kindReadOnly,
	FieldPhoneNumber:                  kindReadOnly,
}

// WritableField reports whether name is a member of the customer JSON that
// the owner of a profile writes: the address, business and contact strings
// and notification_preferences (not is_verified, not user_id).
func WritableField(name string) bool {
	k := profileFields[name]
	return k == kindString || k == kindPrefs
}

// DecodeOptions say which members a profile body may carry besides the
// writable ones.
type DecodeOptions struct {
	// Verified lets the body set is_verified (a staff member's update).
	Verified bool
	// UserID lets the body name the profile's user (a staff member's create).
	UserID bool
	// Others, when set, claims members that belong to someone else, such as
	// the user fields next to the customer fields of the BFF's registration
	// and patch: a claimed member is skipped, neither decoded nor reported.
	// It is asked before the customer JSON's own read-only members (so it
	// may claim email or first_name).
	Others func(name string) bool
}

// ProfileBody is a decoded profile body.
type ProfileBody struct {
	Changes Changes
	// UserID is the user a staff member creates the profile for; only
	// decoded when DecodeOptions.UserID allows it.
	UserID string
}

// DecodeProfile decodes the members of a profile body (create, update, and
// the customer part of the BFF's registration and patch), collecting every
// problem. It checks the JSON only; ValidateCreate and ValidateUpdate check
// the values.
func DecodeProfile(obj map[string]json.RawMessage, o DecodeOptions) (ProfileBody, FieldErrors) {
	var body ProfileBody
	fe := FieldErrors{}
	ch := &body.Changes
	strs := map[string]**string{
		FieldStreetAddress:                &ch.StreetAddress,
		FieldCity:                         &ch.City,
		FieldState:                        &ch.State,
		FieldPostalCode:                   &ch.PostalCode,
		FieldCountry:                      &ch.Country,
		FieldCompanyName:                  &ch.CompanyName,
		FieldBusinessType:                 &ch.BusinessType,
		FieldTaxID:                        &ch.TaxID,
		FieldEmergencyContactName:         &ch.EmergencyContactName,
		FieldEmergencyContactPhone:        &ch.EmergencyContactPhone,
		FieldEmergencyContactRelationship: &ch.EmergencyContactRelationship,
		FieldPreferredContactMethod:       &ch.PreferredContactMethod,
	}
	for name, raw := range obj {
		if o.Others != nil && o.Others(name) {
			continue
		}
		switch profileFields[name] {
		case kindString:
			if s, msg := DecodeString(raw); msg != "" {
				fe.Add(name, msg)
			} else {
				*strs[name] = &s
			}
		case kindPrefs:
			prefs, msgs := decodePreferences(raw)
			for _, m := range msgs {
				fe.Add(name, m)
			}
			if len(msgs) == 0 {
				ch.NotificationPreferences = prefs
			}
		case kindVerified:
			if !o.Verified {
				fe.Add(name, MsgReadOnly)
			} else if b, msg := decodeBool(raw); msg != "" {
				fe.Add(name, msg)
			} else {
				ch.IsVerified = &b
			}
		case kindUserID:
			if !o.UserID {
				fe.Add(name, MsgReadOnly)
			} else if s, msg := DecodeString(raw); msg != "" {
				fe.Add(name, msg)
			} else {
				body.UserID = s
			}
		case kindReadOnly:
			fe.Add(name, MsgReadOnly)
		default:
			fe.AddUnknown(name)
		}
	}
	return body, fe
}

// DecodeService decodes the optional body of increment_service.
func DecodeService(obj map[string]json.RawMessage) (ServiceInput, FieldErrors) {
	var in ServiceInput
	fe := FieldErrors{}
	for name, raw := range obj {
		switch name {
		case FieldServiceType, FieldNotes:
			s, msg := DecodeString(raw)
			if msg != "" {
				fe.Add(name, msg)
				continue
			}
			if name == FieldServiceType {
				in.ServiceType = s
			} else {
				in.Notes = s
			}
		case FieldPerformedAt:
			s, msg := DecodeString(raw)
			if msg == "" {
				t, err := parseTimestamp(s)
				if err != nil {
					msg = MsgInvalidDate
				} else {
					in.PerformedAt = &t
				}
			}
			if msg != "" {
				fe.Add(name, msg)
			}
		default:
			fe.AddUnknown(name)
		}
	}
	return in, fe
}

// DecodeCheckExists decodes the optional body of check_profile_exists: the
// user_id a staff member asks about ("" when not sent).
func DecodeCheckExists(obj map[string]json.RawMessage) (string, FieldErrors) {
	fe := FieldErrors{}
	var userID string
	for name, raw := range obj {
		if name != FieldUserID {
			fe.AddUnknown(name)
			continue
		}
		s, msg := DecodeString(raw)
		if msg != "" {
			fe.Add(name, msg)
			continue
		}
		userID = s
	}
	return userID, fe
}

// DecodeString decodes a member that must be a JSON string; otherwise the
// second result is the message saying what is wrong (MsgNull for a null,
// MsgNotString for any other type).
func DecodeString(raw json.RawMessage) (string, string) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return "", MsgNotString
	case raw[0] == 'n':
		return "", MsgNull
	case raw[0] != '"':
		return "", MsgNotString
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", MsgNotString
	}
	return s, ""
}

// AddUnknown records an unknown member, keyed by its name cut to 64 bytes
// (and "..."), so a client cannot make the answer echo a huge name.
func (fe FieldErrors) AddUnknown(name string) { fe.Add(contract.EchoedName(name), MsgUnknown) }

// decodeBool decodes a JSON boolean.
func decodeBool(raw json.RawMessage) (bool, string) {
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true, ""
	case "false":
		return false, ""
	case "null":
		return false, MsgNull
	}
	return false, MsgNotBool
}

// decodePreferences decodes notification_preferences: an object whose keys
// are plain names (no "$" operators, no dotted paths) and whose values are
// booleans. Every bad key and value is named.
func decodePreferences(raw json.RawMessage) (map[string]bool, []string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == 'n' {
		return nil, []string{MsgNull}
	}
	var members map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &members) != nil {
		return nil, []string{MsgNotObject}
	}
	if len(members) > MaxPreferences {
		return nil, []string{msgTooManyPreferences()}
	}
	prefs := make(map[string]bool, len(members))
	var msgs []string
	for k, v := range members {
		if !validPreferenceKey(k) {
			msgs = append(msgs, "Invalid key "+strconv.Quote(contract.EchoedName(k))+": keys are letters, digits and underscores, starting with a letter.")
			continue
		}
		b, msg := decodeBool(v)
		if msg != "" {
			msgs = append(msgs, "Value of "+strconv.Quote(k)+" must be a boolean.")
			continue
		}
		prefs[k] = b
	}
	return prefs, msgs
}

// parseTimestamp parses an RFC 3339 timestamp (with or without fractional
// seconds and seconds, as DRF accepts).
func parseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		return t.UTC(), nil
	}
	if t2, err2 := time.Parse("2006-01-02T15:04Z07:00", s); err2 == nil {
		return t2.UTC(), nil
	}
	return time.Time{}, err
}
