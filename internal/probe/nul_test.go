package probe

import (
	"net/http"
	"testing"
)

// msgNull is Django's ProhibitNullCharactersValidator's message.
const msgNull = "Null characters are not allowed."

// probeNullCharacters: NUL characters in text fields are refused with
// Django's message by auth, customer and the BFF, and nothing is stored.
func probeNullCharacters(t *testing.T, s *suite) {
	c := s.customerAccount(t, "nul")
	const nul = "Ad\x00a"
	pw := "Probe-Quartz-Nul-5512"
	for _, field := range []string{"first_name", "last_name", "password1"} {
		email := s.newEmail("nul-auth")
		body := map[string]any{"email": email, "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+15035550142", "password1": pw, "password2": pw}
		body[field] = nul + pw
		if field == "password1" {
			body["password2"] = nul + pw
		}
		a := s.call(t, http.MethodPost, s.auth+"/api/auth/register/", body, from(s.newAddr()))
		wantFieldError(t, "auth register with a NUL in "+field, a, field, msgNull)
		if id := s.userByEmail(t, email); id != "" {
			t.Errorf("auth register with a NUL in %s created user %s", field, id)
		}
	}
	for _, field := range []string{"first_name", "last_name"} {
		a := s.call(t, http.MethodPatch, s.auth+"/api/auth/profile/update/", map[string]any{field: nul}, c.as())
		wantFieldError(t, "auth profile update with a NUL in "+field, a, field, msgNull)
	}
	for _, field := range []string{"city", "street_address", "company_name", "tax_id"} {
		a := s.call(t, http.MethodPatch, s.customer+"/api/v1/customers/profile/update/", map[string]any{field: nul}, c.as())
		wantFieldError(t, "customer profile update with a NUL in "+field, a, field, msgNull)
	}
	for _, field := range []string{"first_name", "city", "password1"} {
		email := s.newEmail("nul-bff")
		body := registration(email, pw)
		body[field] = nul + pw
		if field == "password1" {
			body["password2"] = nul + pw
		}
		a := s.call(t, http.MethodPost, s.bff+"/api/bff/register/", body, from(s.newAddr()))
		wantFieldError(t, "BFF register with a NUL in "+field, a, field, msgNull)
		if id := s.userByEmail(t, email); id != "" {
			t.Errorf("BFF register with a NUL in %s created user %s", field, id)
		}
	}
	for _, field := range []string{"first_name", "city"} {
		a := s.call(t, http.MethodPatch, s.bff+"/api/bff/me/", map[string]any{field: nul}, c.as())
		wantFieldError(t, "BFF PATCH /me/ with a NUL in "+field, a, field, msgNull)
	}
	a := s.call(t, http.MethodGet, s.bff+"/api/bff/me/", nil, c.as())
	var v struct {
		User struct {
			FirstName string `json:"first_name"`
		} `json:"user"`
		Profile struct{ City string } `json:"profile"`
	}
	a.JSON(t, &v)
	if v.User.FirstName != "Ada" || v.Profile.City != "Portland" {
		t.Errorf("the refused updates changed the account: %s", a)
	}
}
