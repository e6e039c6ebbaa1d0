package httpapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/httpapi"
	"github.com/acme/customer-platform/customer"
	customerhttp "github.com/acme/customer-platform/customer/httpapi"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/web"
)

// answer400 sends body to an engine and returns the fields of its 400.
func answer400(t *testing.T, e http.Handler, method, path, tok, body string) map[string][]string {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("%s %s: status %d %s, want 400", method, path, w.Code, w.Body)
	}
	var fields map[string][]string
	if err := json.Unmarshal(w.Body.Bytes(), &fields); err != nil {
		t.Fatalf("%s %s: body %s: %v", method, path, w.Body, err)
	}
	return fields
}

// TestValidationAsTheServicesAnswer holds the BFF's 400s to the services':
// the same body refused by the BFF (registration, PATCH /me) and by the
// customer service (profile creation, update) names the same fields with
// the same messages: every bad preference with its own message, and an
// unknown member's long name cut as the services cut it. The services'
// decoders answer before touching their stores, so their engines run here
// without one.
func TestValidationAsTheServicesAnswer(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.DiscardHandler)
	verifier, err := authclient.NewVerifier(authclient.VerifierConfig{Key: []byte(floorKey)})
	if err != nil {
		t.Fatal(err)
	}
	validator, err := bff.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	bffEngine := web.NewEngine(web.EngineOptions{Service: "bff", Logger: quiet})
	httpapi.Routes(bffEngine, httpapi.Deps{Validator: validator, Views: floorViews{}, Verifier: verifier})
	custEngine := web.NewEngine(web.EngineOptions{Service: "customer", Logger: quiet})
	customerhttp.Routes(custEngine, customerhttp.Deps{
		Service:  customer.NewService(nil, nil, nil, customer.Options{Logger: quiet}),
		Verifier: verifier,
	})
	tok := floorToken(t, contract.RoleCustomer)

	longName := "x" + strings.Repeat("long_member_name_", 20)
	for _, tc := range []struct {
		name    string
		members string // the customer members of the body
		field   string // the field whose messages are compared
	}{
		{"bad preferences", `"notification_preferences":{"$where":true,"sms":"yes","a.b":false,"email":null}`, customer.FieldNotificationPreferences},
		{"preferences not an object", `"notification_preferences":[true]`, customer.FieldNotificationPreferences},
		{"preferences null", `"notification_preferences":null`, customer.FieldNotificationPreferences},
		{"long unknown member", `"` + longName + `":1`, longName[:64] + "..."},
		{"read-only member", `"total_services":3`, customer.FieldTotalServices},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			register := `{"email":"ada@example.com","first_name":"Ada","last_name":"Lovelace",` +
				`"password1":"Tr1cky-Wombat-Lantern","password2":"Tr1cky-Wombat-Lantern",` +
				`"street_address":"1 Main St","city":"Portland","postal_code":"97201",` + tc.members + `}`
			bffReg := answer400(t, bffEngine, http.MethodPost, "/api/bff/register/", "", register)
			custCreate := answer400(t, custEngine, http.MethodPost, customerhttp.Prefix+"/profile/create/", tok,
				`{"street_address":"1 Main St","city":"Portland","postal_code":"97201",`+tc.members+`}`)
			bffPatch := answer400(t, bffEngine, http.MethodPatch, "/api/bff/me/", tok, `{"first_name":"Ada",`+tc.members+`}`)
			custUpdate := answer400(t, custEngine, http.MethodPatch, customerhttp.Prefix+"/profile/update/", tok, `{`+tc.members+`}`)

			want := custCreate[tc.field]
			if len(want) == 0 || len(custCreate) != 1 {
				t.Fatalf("the customer service's 400: %v, want one about %s", custCreate, tc.field)
			}
			for name, got := range map[string]map[string][]string{
				"BFF registration": bffReg, "BFF patch": bffPatch, "customer update": custUpdate,
			} {
				if len(got) != 1 || !sameMessages(got[tc.field], want) {
					t.Errorf("%s: %v, want exactly {%q: %q} as the customer service answers", name, got, tc.field, want)
				}
			}
		})
	}

	// A member neither service has, in a user field's place: the auth
	// service's profile update names it as the customer service does.
	user := map[string]json.RawMessage{longName: json.RawMessage(`"x"`)}
	_, err = auth.DecodeProfileUpdate(user, nil)
	ve, ok := err.(*contract.ValidationError)
	if !ok {
		t.Fatalf("auth profile update of an unknown member: %v", err)
	}
	bffPatch := answer400(t, bffEngine, http.MethodPatch, "/api/bff/me/", tok, `{"`+longName+`":"x"}`)
	if !sameFields(ve.Fields, bffPatch) {
		t.Errorf("BFF patch %v, auth service %v", bffPatch, ve.Fields)
	}
}

// sameMessages reports whether a and b hold the same messages, in any order
// (the services collect a body's members in map order).
func sameMessages(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[string]int{}
	for _, m := range a {
		count[m]++
	}
	for _, m := range b {
		count[m]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

func sameFields(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !sameMessages(v, b[k]) {
			return false
		}
	}
	return true
}
