package auth_test

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
)

// body is a JSON object body as web.ReadObject returns it.
func body(t *testing.T, js string) map[string]json.RawMessage {
	t.Helper()
	var b map[string]json.RawMessage
	if err := json.Unmarshal([]byte(js), &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// fieldsOf returns the field errors of err (nil when err is nil) and fails
// on any other error.
func fieldsOf(t *testing.T, err error) map[string][]string {
	t.Helper()
	if err == nil {
		return nil
	}
	ve, ok := errors.AsType[*contract.ValidationError](err)
	if !ok {
		t.Fatalf("err = %v, want a *contract.ValidationError", err)
	}
	return ve.Fields
}

func wantFields(t *testing.T, err error, want map[string][]string) {
	t.Helper()
	got := fieldsOf(t, err)
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("fields = %v, want %v", got, want)
	}
}

func rules(t *testing.T) *auth.PasswordRules {
	t.Helper()
	r, err := auth.NewPasswordRules()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const goodRegistration = `{"email": "Ann@Example.com", "first_name": "Ann", "last_name": "Lee",
	"phone_number": "+1 555 0100", "password1": "Tr1cky-Wombat-Lantern", "password2": "Tr1cky-Wombat-Lantern"`

func TestDecodeRegister(t *testing.T) {
	t.Parallel()
	r := rules(t)
	for _, tc := range []struct {
		name string
		body string
		want map[string][]string
	}{
		{"good, other members left alone", goodRegistration + `, "city": 5, "nickname": null}`, nil},
		{"rules alone do not refuse a decodable body", `{"email": "not-an-email", "password1": "short"}`, nil},
		{"wrong type", goodRegistration + `, "email": 42}`, map[string][]string{"email": {auth.MsgNotString}}},
		{"null", goodRegistration + `, "first_name": null}`, map[string][]string{"first_name": {auth.MsgNull}}},
		{"a type error replaces the rules' messages and comes with theirs for the rest",
			`{"email": "ann@example.com", "first_name": "Ann", "password1": 5, "password2": "x"}`,
			map[string][]string{"password1": {auth.MsgNotString}, "last_name": {auth.MsgRequired}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := auth.DecodeRegister(body(t, tc.body), r)
			wantFields(t, err, tc.want)
		})
	}

	in, err := auth.DecodeRegister(body(t, goodRegistration+`}`), r)
	if err != nil || in.Email == nil || *in.Email != "Ann@Example.com" || *in.Password2 != "Tr1cky-Wombat-Lantern" {
		t.Fatalf("decoded %+v, %v", in, err)
	}
	if err := in.Check(r); err != nil {
		t.Fatalf("Check of a good registration: %v", err)
	}
}

func TestRegisterInputCheck(t *testing.T) {
	t.Parallel()
	r := rules(t)
	in, err := auth.DecodeRegister(body(t, `{"email": "ann@example.com", "first_name": " ", "last_name": "Lee",
		"password1": "Tr1cky-Wombat-Lantern", "password2": "Tr1cky-Wombat-Lanterns"}`), r)
	if err != nil {
		t.Fatal(err)
	}
	wantFields(t, in.Check(r), map[string][]string{"first_name": {auth.MsgBlank}, "password2": {auth.MsgPasswordMatch}})
}

func TestDecodeProfileUpdate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("n", 100)
	customerField := func(name string) bool { return name == "city" }
	for _, tc := range []struct {
		name   string
		body   string
		others func(string) bool
		want   map[string][]string
	}{
		{"good", `{"first_name": "Bo"}`, nil, nil},
		{"empty", `{}`, nil, nil},
		{"read-only", `{"user_role": "admin"}`, nil, map[string][]string{"user_role": {auth.MsgReadOnly}}},
		{"password is read-only", `{"password": "x"}`, nil, map[string][]string{"password": {auth.MsgReadOnly}}},
		{"unknown", `{"nickname": "x"}`, nil, map[string][]string{"nickname": {auth.MsgUnknownField}}},
		{"a long unknown name is cut", `{"` + long + `": 1}`, nil, map[string][]string{long[:contract.MaxEchoedName] + "...": {auth.MsgUnknownField}}},
		{"members others takes are left alone", `{"city": 5, "last_name": "Lee"}`, customerField, nil},
		{"others does not hide unknown members", `{"city": 5, "nick": ""}`, customerField, map[string][]string{"nick": {auth.MsgUnknownField}}},
		{"wrong type, with the rules' messages for the rest", `{"last_name": 12, "first_name": ""}`, nil,
			map[string][]string{"last_name": {auth.MsgNotString}, "first_name": {auth.MsgBlank}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := auth.DecodeProfileUpdate(body(t, tc.body), tc.others)
			wantFields(t, err, tc.want)
		})
	}

	in, err := auth.DecodeProfileUpdate(body(t, `{"email": " Bo@Example.com ", "phone_number": ""}`), nil)
	if err != nil || in.Email == nil || in.FirstName != nil || in.PhoneNumber == nil || *in.PhoneNumber != "" {
		t.Fatalf("decoded %+v, %v", in, err)
	}
	if err := in.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	bad := auth.ProfileUpdate{Email: new("nope")}
	wantFields(t, bad.Check(), map[string][]string{"email": {auth.MsgInvalidEmail}})
}

func TestDecodeLogin(t *testing.T) {
	t.Parallel()
	in, err := auth.DecodeLogin(body(t, `{"email": "a@example.com", "password": "pw", "remember": true}`))
	if err != nil || *in.Email != "a@example.com" || *in.Password != "pw" {
		t.Fatalf("decoded %+v, %v", in, err)
	}
	_, err = auth.DecodeLogin(body(t, `{"email": 5}`))
	wantFields(t, err, map[string][]string{"email": {auth.MsgNotString}, "password": {auth.MsgRequired}})

	in, err = auth.DecodeLogin(body(t, `{"email": " ", "password": ""}`))
	if err != nil {
		t.Fatal(err)
	}
	wantFields(t, in.Check(), map[string][]string{"email": {auth.MsgBlank}, "password": {auth.MsgBlank}})
}

func TestDecodeCreateUserServiceTokenAndRefresh(t *testing.T) {
	t.Parallel()
	_, err := auth.DecodeCreateUser(body(t, `{"email": "x@example.com", "user_role": 3}`), rules(t))
	wantFields(t, err, map[string][]string{"user_role": {auth.MsgNotString}})

	_, err = auth.DecodeServiceToken(body(t, `{"client_id": ["bff"]}`))
	wantFields(t, err, map[string][]string{"client_id": {auth.MsgNotString}, "client_secret": {auth.MsgRequired}})

	tok, err := auth.DecodeRefresh(body(t, `{"refresh": "abc"}`))
	if err != nil || *tok != "abc" {
		t.Fatalf("refresh %v, %v", tok, err)
	}
	_, err = auth.DecodeRefresh(body(t, `{"refresh": null}`))
	wantFields(t, err, map[string][]string{"refresh": {auth.MsgNull}})
}

// TestNullCharactersAreRefused: Django REST framework's CharField refuses a
// NUL (ProhibitNullCharactersValidator) in every text member the auth
// service's serializers read, field by field, with its own message; the BFF,
// which decodes and checks with these decoders, gets the same answer.
func TestNullCharactersAreRefused(t *testing.T) {
	t.Parallel()
	r := rules(t)
	const pw = "Tr1cky-Wombat-Lantern"
	nul := []string{auth.MsgNullCharacters}
	// decodeAndCheck decodes a body and checks its rules, as the BFF does.
	register := func(b map[string]json.RawMessage) error {
		in, err := auth.DecodeRegister(b, r)
		if err != nil {
			return err
		}
		return in.Check(r)
	}
	update := func(b map[string]json.RawMessage) error {
		in, err := auth.DecodeProfileUpdate(b, nil)
		if err != nil {
			return err
		}
		return in.Check()
	}
	login := func(b map[string]json.RawMessage) error {
		in, err := auth.DecodeLogin(b)
		if err != nil {
			return err
		}
		return in.Check()
	}
	create := func(b map[string]json.RawMessage) error {
		in, err := auth.DecodeCreateUser(b, r)
		if err != nil {
			return err
		}
		f := auth.Fields{}
		in.Validate(r, f)
		return f.Err()
	}
	reg := func(field, value string) string {
		m := map[string]string{"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee",
			"phone_number": "+1 555 0100", "password1": pw, "password2": pw}
		m[field] = value
		b, _ := json.Marshal(m)
		return string(b)
	}
	for _, tc := range []struct {
		name   string
		decode func(map[string]json.RawMessage) error
		body   string
		want   map[string][]string
	}{
		{"register email", register, reg("email", "ann\x00@example.com"), map[string][]string{"email": nul}},
		{"register first name", register, reg("first_name", "An\x00n"), map[string][]string{"first_name": nul}},
		{"register last name", register, reg("last_name", "\x00"), map[string][]string{"last_name": nul}},
		{"register phone", register, reg("phone_number", "555\x000100"), map[string][]string{"phone_number": nul}},
		{"register password1", register, reg("password1", pw+"\x00"), map[string][]string{"password1": nul}},
		{"register password2", register, reg("password2", pw+"\x00"), map[string][]string{"password2": nul}},
		{"register, every field at once", register,
			`{"email": "a\u0000@example.com", "first_name": "\u0000", "last_name": "L\u0000", "phone_number": "\u0000",
			"password1": "\u0000` + pw + `", "password2": "\u0000` + pw + `"}`,
			map[string][]string{"email": nul, "first_name": nul, "last_name": nul, "phone_number": nul, "password1": nul, "password2": nul}},
		{"register, with a type error elsewhere (the decoder's own refusal)", register,
			`{"email": 42, "first_name": "A\u0000", "last_name": "Lee", "password1": "` + pw + `", "password2": "` + pw + `"}`,
			map[string][]string{"email": {auth.MsgNotString}, "first_name": nul}},
		{"too long and a NUL: both, as Django's validators run in turn", register,
			reg("last_name", strings.Repeat("x", auth.MaxNameLength)+"\x00"),
			map[string][]string{"last_name": {"Ensure this field has no more than 150 characters.", auth.MsgNullCharacters}}},
		{"profile update", update, `{"first_name": "Bo\u0000", "last_name": "Lee", "email": "\u0000b@example.com", "phone_number": "1\u0000"}`,
			map[string][]string{"first_name": nul, "email": nul, "phone_number": nul}},
		{"profile update, with an unknown member", update, `{"last_name": "\u0000", "nick": "x"}`,
			map[string][]string{"last_name": nul, "nick": {auth.MsgUnknownField}}},
		{"login", login, `{"email": "a\u0000@example.com", "password": "p\u0000w"}`,
			map[string][]string{"email": nul, "password": nul}},
		{"staff creation", create, `{"email": "c@example.com", "first_name": "\u0000", "last_name": "L", "phone_number": "", "password": "` + pw + `\u0000"}`,
			map[string][]string{"first_name": nul, "password": nul}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantFields(t, tc.decode(body(t, tc.body)), tc.want)
		})
	}
}

// TestRegistrationKey: the Idempotency-Key of a registration is checked as
// the customer service and the BFF check theirs, with their message, and
// becomes the user's registration key.
func TestRegistrationKey(t *testing.T) {
	t.Parallel()
	if auth.MsgIdempotencyKey != customer.MsgIdempotency {
		t.Fatalf("auth says %q of a bad Idempotency-Key, the customer service %q", auth.MsgIdempotencyKey, customer.MsgIdempotency)
	}
	r := rules(t)
	good := body(t, goodRegistration+`}`)
	for _, k := range []string{"", " ", "a b", "tab\tkey", "ключ", "nul\x00", "del\x7f", strings.Repeat("k", 256), "a, b"} {
		in, err := auth.DecodeRegisterWithKey(good, &k, r)
		if err != nil {
			t.Fatalf("%q: a decodable body was refused: %v", k, err)
		}
		wantFields(t, in.Check(r), map[string][]string{auth.FieldIdempotencyKey: {auth.MsgIdempotencyKey}})
		if auth.ValidRegistrationKey(k) {
			t.Errorf("%q is valid", k)
		}
	}
	// With the body's other problems, at once.
	bad := "bad key"
	_, err := auth.DecodeRegisterWithKey(body(t, `{"email": 5, "first_name": "Ann", "last_name": "Lee", "password1": "Tr1cky-Wombat-Lantern", "password2": "Tr1cky-Wombat-Lantern"}`), &bad, r)
	wantFields(t, err, map[string][]string{"email": {auth.MsgNotString}, auth.FieldIdempotencyKey: {auth.MsgIdempotencyKey}})

	for _, k := range []string{"k", "saga-7d0c1f9a-3b2e-4f61-9a8e-2c4b5d6e7f80", strings.Repeat("~", 255), "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"} {
		in, err := auth.DecodeRegisterWithKey(good, &k, r)
		if err != nil || in.RegistrationKey == nil || *in.RegistrationKey != k {
			t.Fatalf("%q: decoded %+v, %v", k, in, err)
		}
		f := auth.Fields{}
		u, _ := in.Validate(r, f)
		if len(f) != 0 || u.RegistrationKey != k {
			t.Fatalf("%q: validated %+v, %v", k, u, f)
		}
	}
	// Without a key (and through DecodeRegister, which the BFF calls) the
	// user has none.
	in, err := auth.DecodeRegister(good, r)
	if err != nil || in.RegistrationKey != nil {
		t.Fatalf("decoded %+v, %v", in, err)
	}
	if u, _ := in.Validate(r, auth.Fields{}); u.RegistrationKey != "" {
		t.Fatalf("a registration without a key has key %q", u.RegistrationKey)
	}
}
