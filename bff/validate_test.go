package bff

import (
	"encoding/json"
	"errors"
	"testing"
)

func object(t *testing.T, s string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func fieldsOf(t *testing.T, err error) map[string][]string {
	t.Helper()
	var be *Error
	if !errors.As(err, &be) || be.Fields == nil {
		t.Fatalf("want a validation error, got %v", err)
	}
	return be.Fields
}

func TestParseRegistration(t *testing.T) {
	t.Parallel()
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	good := `{"email":"Ada@Example.com","first_name":"Ada","last_name":"Lovelace","phone_number":"+1 503 555 0100",
		"password1":"Tr1cky-Wombat-Lantern","password2":"Tr1cky-Wombat-Lantern",
		"street_address":"1 Main St","city":"Portland","postal_code":"97201","notification_preferences":{"sms":true}}`
	reg, err := v.ParseRegistration(object(t, good))
	if err != nil {
		t.Fatal(err)
	}
	if reg.Auth.Email != "Ada@Example.com" || len(reg.Profile) != 4 || string(reg.Profile["city"]) != `"Portland"` {
		t.Fatalf("parsed: %+v", reg)
	}

	// Every problem of both services at once.
	fields := fieldsOf(t, func() error {
		_, err := v.ParseRegistration(object(t, `{"email":"nope","first_name":5,"password1":"password","password2":"other",
			"postal_code":"ABC","country":"USA","business_type":"empire","notification_preferences":{"sms":"yes"},
			"is_verified":true,"$where":"1","user_role":"admin"}`))
		return err
	}())
	for _, f := range []string{"email", "first_name", "last_name", "password1", "password2", "street_address", "city",
		"postal_code", "business_type", "notification_preferences", "is_verified", "$where", "user_role"} {
		if len(fields[f]) == 0 {
			t.Errorf("no error for %s: %v", f, fields)
		}
	}
	if len(fields["first_name"]) != 1 {
		t.Errorf("a type error is reported once: %v", fields["first_name"])
	}
	if got := fields["user_role"]; len(got) != 1 || got[0] != "This field is read-only." {
		t.Errorf("user_role: %q, want the auth service's read-only message once", got)
	}
}

func TestParsePatchAndLogin(t *testing.T) {
	t.Parallel()
	v, _ := NewValidator()
	p, err := v.ParsePatch(object(t, `{"first_name":"A","city":"Salem","notification_preferences":{"email":false}}`))
	if err != nil || len(p.User) != 1 || len(p.Profile) != 2 {
		t.Fatalf("patch: %+v %v", p, err)
	}
	if p, err := v.ParsePatch(object(t, `{}`)); err != nil || !p.Empty() {
		t.Fatalf("empty patch: %+v %v", p, err)
	}
	fields := fieldsOf(t, func() error {
		_, err := v.ParsePatch(object(t, `{"email":"x","city":"","password1":"p","id":"x","total_services":3}`))
		return err
	}())
	for _, f := range []string{"email", "city", "password1", "id", "total_services"} {
		if len(fields[f]) == 0 {
			t.Errorf("no error for %s: %v", f, fields)
		}
	}
	// Each member is refused once, by the service it belongs to: the user
	// JSON's read-only members by the auth service, the rest by the
	// customer service.
	fields = fieldsOf(t, func() error {
		_, err := v.ParsePatch(object(t, `{"user_role":"admin","id":"x","is_verified":true,"nonsense":1}`))
		return err
	}())
	want := map[string]string{"user_role": "This field is read-only.", "id": "This field is read-only.",
		"is_verified": "This field is read-only.", "nonsense": "Unknown field."}
	if len(fields) != len(want) {
		t.Errorf("patch errors: %v, want %v", fields, want)
	}
	for f, msg := range want {
		if len(fields[f]) != 1 || fields[f][0] != msg {
			t.Errorf("%s: %q, want [%q]", f, fields[f], msg)
		}
	}
	if c, err := v.ParseLogin(object(t, `{"email":"a@b.co","password":"pw"}`)); err != nil || c.Email != "a@b.co" {
		t.Fatalf("login: %+v %v", c, err)
	}
	fields = fieldsOf(t, func() error { _, err := v.ParseLogin(object(t, `{"email":"","extra":1}`)); return err }())
	if len(fields["email"]) == 0 || len(fields["password"]) == 0 || len(fields["extra"]) == 0 || len(fields) != 3 {
		t.Fatalf("login errors: %v", fields)
	}
}
