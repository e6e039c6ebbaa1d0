package httpapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/acme/customer-platform/customer"
)

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
	customer.FieldStreetAddress:                kindString,
	customer.FieldCity:                         kindString,
	customer.FieldState:                        kindString,
	customer.FieldPostalCode:                   kindString,
	customer.FieldCountry:                      kindString,
	customer.FieldCompanyName:                  kindString,
	customer.FieldBusinessType:                 kindString,
	customer.FieldTaxID:                        kindString,
	customer.FieldEmergencyContactName:         kindString,
	customer.FieldEmergencyContactPhone:        kindString,
	customer.FieldEmergencyContactRelationship: kindString,
	customer.FieldPreferredContactMethod:       kindString,
	customer.FieldNotificationPreferences:      kindPrefs,
	customer.FieldIsVerified:                   kindVerified,
	customer.FieldUserID:                       kindUserID,
	customer.FieldID:                           kindReadOnly,
	customer.FieldCustomerSince:                kindReadOnly,
	customer.FieldTotalServices:                kindReadOnly,
	customer.FieldLastServiceDate:              kindReadOnly,
	customer.FieldCreatedAt:                    kindReadOnly,
	customer.FieldUpdatedAt:                    kindReadOnly,
	customer.FieldEmail:                        kindReadOnly,
	customer.FieldFirstName:                    kindReadOnly,
	customer.FieldLastName:                     kindReadOnly,
	customer.FieldPhoneNumber:                  kindReadOnly,
}

// profileRequest is a decoded profile body.
type profileRequest struct {
	changes customer.Changes
	userID  string // only when allowed (a staff create)
}

// decodeOptions say which restricted members a request may carry.
type decodeOptions struct {
	verified bool // is_verified (staff)
	userID   bool // user_id (a staff create)
}

// decodeProfile decodes every member of a profile body, collecting every
// problem: unknown members, members the caller may not write, wrong JSON
// types, nulls, operator objects, bad preference keys.
func decodeProfile(obj map[string]json.RawMessage, o decodeOptions) (profileRequest, customer.FieldErrors) {
	var req profileRequest
	fe := customer.FieldErrors{}
	ch := &req.changes
	strs := map[string]**string{
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
		switch profileFields[name] {
		case kindString:
			if s, msg := decodeString(raw); msg != "" {
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
			if !o.verified {
				fe.Add(name, customer.MsgReadOnly)
			} else if b, msg := decodeBool(raw); msg != "" {
				fe.Add(name, msg)
			} else {
				ch.IsVerified = &b
			}
		case kindUserID:
			if !o.userID {
				fe.Add(name, customer.MsgReadOnly)
			} else if s, msg := decodeString(raw); msg != "" {
				fe.Add(name, msg)
			} else {
				req.userID = s
			}
		case kindReadOnly:
			fe.Add(name, customer.MsgReadOnly)
		default:
			fe.Add(fieldName(name), customer.MsgUnknown)
		}
	}
	return req, fe
}

// fieldName bounds the length of an unknown member's name echoed in an error.
func fieldName(name string) string {
	const max = 64
	if len(name) <= max {
		return name
	}
	return name[:max] + "..."
}

// decodeString decodes a JSON string; msg says what is wrong otherwise.
func decodeString(raw json.RawMessage) (string, string) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return "", customer.MsgNotString
	case raw[0] == 'n':
		return "", customer.MsgNull
	case raw[0] != '"':
		return "", customer.MsgNotString
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", customer.MsgNotString
	}
	return s, ""
}

// decodeBool decodes a JSON boolean.
func decodeBool(raw json.RawMessage) (bool, string) {
	switch string(bytes.TrimSpace(raw)) {
	case "true":
		return true, ""
	case "false":
		return false, ""
	case "null":
		return false, customer.MsgNull
	}
	return false, customer.MsgNotBool
}

// decodePreferences decodes notification_preferences: an object whose keys
// are plain names (no "$" operators, no dotted paths) and whose values are
// booleans.
func decodePreferences(raw json.RawMessage) (map[string]bool, []string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == 'n' {
		return nil, []string{customer.MsgNull}
	}
	var members map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &members) != nil {
		return nil, []string{customer.MsgNotObject}
	}
	if len(members) > customer.MaxPreferences {
		return nil, []string{"Ensure this object has no more than " + strconv.Itoa(customer.MaxPreferences) + " keys."}
	}
	prefs := make(map[string]bool, len(members))
	var msgs []string
	for k, v := range members {
		if !customer.ValidPreferenceKey(k) {
			msgs = append(msgs, "Invalid key "+strconv.Quote(fieldName(k))+": keys are letters, digits and underscores, starting with a letter.")
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

// decodeService decodes the optional body of increment_service.
func decodeService(obj map[string]json.RawMessage) (customer.ServiceInput, customer.FieldErrors) {
	var in customer.ServiceInput
	fe := customer.FieldErrors{}
	for name, raw := range obj {
		switch name {
		case customer.FieldServiceType, customer.FieldNotes:
			s, msg := decodeString(raw)
			if msg != "" {
				fe.Add(name, msg)
				continue
			}
			if name == customer.FieldServiceType {
				in.ServiceType = s
			} else {
				in.Notes = s
			}
		case customer.FieldPerformedAt:
			s, msg := decodeString(raw)
			if msg == "" {
				t, err := parseTimestamp(s)
				if err != nil {
					msg = customer.MsgInvalidDate
				} else {
					in.PerformedAt = &t
				}
			}
			if msg != "" {
				fe.Add(name, msg)
			}
		default:
			fe.Add(fieldName(name), customer.MsgUnknown)
		}
	}
	return in, fe
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

// decodeCheck decodes the optional body of check_profile_exists.
func decodeCheck(obj map[string]json.RawMessage) (string, customer.FieldErrors) {
	fe := customer.FieldErrors{}
	var userID string
	for name, raw := range obj {
		if name != customer.FieldUserID {
			fe.Add(fieldName(name), customer.MsgUnknown)
			continue
		}
		s, msg := decodeString(raw)
		if msg != "" {
			fe.Add(name, msg)
			continue
		}
		userID = s
	}
	return userID, fe
}
