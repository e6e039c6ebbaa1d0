package customer_test

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/customer-platform/customer"
)

// members reads a JSON object into raw members, as the HTTP adapters do.
func members(t *testing.T, body string) map[string]json.RawMessage {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &obj); err != nil {
		t.Fatalf("test body %s: %v", body, err)
	}
	return obj
}

func TestDecodeProfile(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("k", 100)
	userField := func(n string) bool {
		return slices.Contains([]string{"email", "first_name", "last_name", "phone_number", "password1", "password2"}, n)
	}
	for _, c := range []struct {
		name string
		body string
		o    customer.DecodeOptions
		want customer.FieldErrors // nil: no problem
	}{
		{name: "every writable field", body: `{"street_address":"1 Main St","city":"Springfield","state":"IL","postal_code":"62701",
			"country":"USA","company_name":"Acme","business_type":"llc","tax_id":"1","emergency_contact_name":"C",
			"emergency_contact_phone":"+1 555 0101","emergency_contact_relationship":"friend","preferred_contact_method":"sms",
			"notification_preferences":{"email":true,"sms":false}}`},
		{name: "empty", body: `{}`},
		{name: "wrong types", body: `{"street_address":1,"city":true,"postal_code":[1],"state":{"$ne":""}}`,
			want: customer.FieldErrors{"street_address": {customer.MsgNotString}, "city": {customer.MsgNotString}, "postal_code": {customer.MsgNotString}, "state": {customer.MsgNotString}}},
		{name: "nulls", body: `{"street_address":null,"notification_preferences":null}`,
			want: customer.FieldErrors{"street_address": {customer.MsgNull}, "notification_preferences": {customer.MsgNull}}},
		{name: "preferences not an object", body: `{"notification_preferences":"yes"}`,
			want: customer.FieldErrors{"notification_preferences": {customer.MsgNotObject}}},
		{name: "every bad preference named", body: `{"notification_preferences":{"$set":true,"email":"yes"}}`,
			want: customer.FieldErrors{"notification_preferences": {
				`Invalid key "$set": keys are letters, digits and underscores, starting with a letter.`,
				`Value of "email" must be a boolean.`,
			}}},
		{name: "a long preference key is cut", body: `{"notification_preferences":{"` + long + `":true}}`,
			want: customer.FieldErrors{"notification_preferences": {`Invalid key "` + long[:64] + `...": keys are letters, digits and underscores, starting with a letter.`}}},
		{name: "too many preferences", body: `{"notification_preferences":{` + manyPreferences(customer.MaxPreferences+1) + `}}`,
			want: customer.FieldErrors{"notification_preferences": {"Ensure this object has no more than 20 keys."}}},
		{name: "read-only members", body: `{"id":"x","is_verified":true,"user_id":"u","total_services":3,"email":"a@example.com"}`,
			want: customer.FieldErrors{"id": {customer.MsgReadOnly}, "is_verified": {customer.MsgReadOnly}, "user_id": {customer.MsgReadOnly}, "total_services": {customer.MsgReadOnly}, "email": {customer.MsgReadOnly}}},
		{name: "staff sets is_verified", body: `{"is_verified":true}`, o: customer.DecodeOptions{Verified: true}},
		{name: "staff sends a bad is_verified", body: `{"is_verified":"yes"}`, o: customer.DecodeOptions{Verified: true},
			want: customer.FieldErrors{"is_verified": {customer.MsgNotBool}}},
		{name: "staff create names the user", body: `{"user_id":"6f9619ff-8b86-4011-b42d-00c04fc964ff"}`, o: customer.DecodeOptions{UserID: true}},
		{name: "unknown members, long names cut", body: `{"favourite_colour":"blue","$where":"1","` + long + `":1}`,
			want: customer.FieldErrors{"favourite_colour": {customer.MsgUnknown}, "$where": {customer.MsgUnknown}, long[:64] + "...": {customer.MsgUnknown}}},
		{name: "members claimed by others are skipped", body: `{"email":1,"password1":"x","city":"Salem","user_role":"admin"}`, o: customer.DecodeOptions{Others: userField},
			want: customer.FieldErrors{"user_role": {customer.MsgUnknown}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, fe := customer.DecodeProfile(members(t, c.body), c.o)
			for k, v := range fe {
				slices.Sort(v)
				fe[k] = v
			}
			for k, v := range c.want {
				slices.Sort(v)
				c.want[k] = v
			}
			if len(fe) != len(c.want) || !maps.EqualFunc(fe, c.want, slices.Equal) {
				t.Fatalf("field errors %v, want %v", fe, c.want)
			}
			if c.want == nil && fe.Err() != nil {
				t.Fatalf("Err() = %v for no problem", fe.Err())
			}
			if c.want != nil && fe.Err() == nil {
				t.Fatal("Err() = nil for problems")
			}
		})
	}
}

func manyPreferences(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("x", i) + `":true`)
	}
	return b.String()
}

// TestDecodeProfileValues checks what a good body decodes to: every field
// sent is set, nothing else is.
func TestDecodeProfileValues(t *testing.T) {
	t.Parallel()
	body, fe := customer.DecodeProfile(members(t, `{"city":"Salem","state":"","notification_preferences":{"email":false},
		"is_verified":false,"user_id":"6F9619FF-8B86-4011-B42D-00C04FC964FF"}`), customer.DecodeOptions{Verified: true, UserID: true})
	if len(fe) != 0 {
		t.Fatal(fe)
	}
	ch := body.Changes
	if ch.City == nil || *ch.City != "Salem" || ch.State == nil || *ch.State != "" || ch.IsVerified == nil || *ch.IsVerified ||
		len(ch.NotificationPreferences) != 1 || ch.NotificationPreferences["email"] {
		t.Fatalf("changes %+v", ch)
	}
	if got := ch.Sent(); !slices.Equal(got, []string{customer.FieldCity, customer.FieldState, customer.FieldNotificationPreferences, customer.FieldIsVerified}) {
		t.Fatalf("sent %v", got)
	}
	if body.UserID != "6F9619FF-8B86-4011-B42D-00C04FC964FF" {
		t.Fatalf("user id %q", body.UserID)
	}

	// A member with a problem is not set: validation does not report it again
	// as missing when the caller merges only the untyped errors.
	body, _ = customer.DecodeProfile(members(t, `{"city":1}`), customer.DecodeOptions{})
	if body.Changes.City != nil {
		t.Fatal("a bad city was decoded")
	}
}

// TestDecodeRegistration decodes the customer part of a BFF registration:
// the user fields next to it are the caller's, the customer fields are
// decoded and validated with the service's own rules.
func TestDecodeRegistration(t *testing.T) {
	t.Parallel()
	obj := members(t, `{"email":"ada@example.com","first_name":"Ada","last_name":"L","phone_number":"+1 555 0100",
		"password1":"pw","password2":"pw","street_address":"1 Main St","city":"Springfield","postal_code":"62701"}`)
	auth := map[string]bool{"email": true, "first_name": true, "last_name": true, "phone_number": true, "password1": true, "password2": true}
	body, fe := customer.DecodeProfile(obj, customer.DecodeOptions{Others: func(n string) bool { return auth[n] }})
	if len(fe) != 0 {
		t.Fatal(fe)
	}
	c, err := customer.ValidateCreate(body.Changes)
	if err != nil || c.City != "Springfield" || c.Country != customer.DefaultCountry {
		t.Fatalf("%+v %v", c, err)
	}
	var forwarded []string
	for name := range obj {
		if customer.WritableField(name) {
			forwarded = append(forwarded, name)
		}
	}
	slices.Sort(forwarded)
	if !slices.Equal(forwarded, []string{"city", "postal_code", "street_address"}) {
		t.Fatalf("customer members %v", forwarded)
	}
}

func TestWritableField(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		customer.FieldCity: true, customer.FieldPreferredContactMethod: true, customer.FieldNotificationPreferences: true,
		customer.FieldIsVerified: false, customer.FieldUserID: false, customer.FieldID: false, customer.FieldEmail: false, "password1": false, "": false,
	} {
		if customer.WritableField(name) != want {
			t.Errorf("WritableField(%q) != %v", name, want)
		}
	}
}

func TestDecodeService(t *testing.T) {
	t.Parallel()
	in, fe := customer.DecodeService(members(t, `{"service_type":"repair","notes":"boiler","performed_at":"2025-01-02T03:04+02:00"}`))
	if len(fe) != 0 || in.ServiceType != "repair" || in.Notes != "boiler" || in.PerformedAt == nil ||
		!in.PerformedAt.Equal(time.Date(2025, 1, 2, 1, 4, 0, 0, time.UTC)) || in.PerformedAt.Location() != time.UTC {
		t.Fatalf("%+v %v", in, fe)
	}
	_, fe = customer.DecodeService(members(t, `{"performed_at":"yesterday","notes":null,"count":5}`))
	want := customer.FieldErrors{customer.FieldPerformedAt: {customer.MsgInvalidDate}, customer.FieldNotes: {customer.MsgNull}, "count": {customer.MsgUnknown}}
	if !maps.EqualFunc(fe, want, slices.Equal) {
		t.Fatalf("field errors %v", fe)
	}
}

func TestDecodeCheckExists(t *testing.T) {
	t.Parallel()
	id, fe := customer.DecodeCheckExists(members(t, `{"user_id":"abc"}`))
	if id != "abc" || len(fe) != 0 {
		t.Fatalf("%q %v", id, fe)
	}
	id, fe = customer.DecodeCheckExists(members(t, `{}`))
	if id != "" || len(fe) != 0 {
		t.Fatalf("%q %v", id, fe)
	}
	_, fe = customer.DecodeCheckExists(members(t, `{"user_id":7,"email":"x"}`))
	if want := (customer.FieldErrors{customer.FieldUserID: {customer.MsgNotString}, "email": {customer.MsgUnknown}}); !maps.EqualFunc(fe, want, slices.Equal) {
		t.Fatalf("field errors %v", fe)
	}
}

func TestDecodeString(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string][2]string{
		`"x"`:        {"x", ""},
		` "\u00e9" `: {"é", ""},
		`null`:       {"", customer.MsgNull},
		`1`:          {"", customer.MsgNotString},
		`{}`:         {"", customer.MsgNotString},
		``:           {"", customer.MsgNotString},
	} {
		s, msg := customer.DecodeString(json.RawMessage(raw))
		if s != want[0] || msg != want[1] {
			t.Errorf("DecodeString(%s) = %q, %q", raw, s, msg)
		}
	}
}
