package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	customermongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/contract"
)

// TestBadInput sends malformed and forbidden bodies and checks the status,
// that every bad field is named at once, and that nothing was written.
func TestBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	owner := newPerson(t, contract.RoleCustomer)
	fresh := newPerson(t, contract.RoleCustomer) // has no profile yet
	employee := newPerson(t, contract.RoleEmployee)
	id := h.createProfile(owner, nil)
	long := strings.Repeat("x", 201)
	for _, c := range []struct {
		name        string
		as          person
		method      string
		path        string
		body        any
		contentType string
		status      int
		fields      []string // named in the 400 body
	}{
		{"malformed JSON", fresh, "POST", "profile/create/", `{"city": "x",`, "", 400, nil},
		{"not an object", fresh, "POST", "profile/create/", `["city"]`, "", 400, nil},
		{"trailing data", fresh, "POST", "profile/create/", `{"city":"x"} {}`, "", 400, nil},
		{"wrong media type", fresh, "POST", "profile/create/", `{"city":"x"}`, "text/plain", 415, nil},
		{"missing required", fresh, "POST", "profile/create/", map[string]any{"state": "IL"}, "", 400, []string{"street_address", "city", "postal_code"}},
		{"wrong types", fresh, "POST", "profile/create/", map[string]any{"street_address": 1, "city": true, "postal_code": []int{1}, "notification_preferences": "yes"}, "", 400, []string{"street_address", "city", "postal_code", "notification_preferences"}},
		{"nulls", fresh, "POST", "profile/create/", map[string]any{"street_address": nil, "city": "x", "postal_code": "62701"}, "", 400, []string{"street_address"}},
		{"unknown field", fresh, "POST", "profile/create/", withFields(validProfile(), "favourite_colour", "blue"), "", 400, []string{"favourite_colour"}},
		{"operator key", fresh, "POST", "profile/create/", withFields(validProfile(), "$where", "1"), "", 400, []string{"$where"}},
		{"operator object value", fresh, "POST", "profile/create/", withFields(validProfile(), "city", map[string]any{"$ne": ""}), "", 400, []string{"city"}},
		{"operator in preferences", fresh, "POST", "profile/create/", withFields(validProfile(), "notification_preferences", map[string]any{"$set": true}), "", 400, []string{"notification_preferences"}},
		{"dotted key in preferences", fresh, "POST", "profile/create/", withFields(validProfile(), "notification_preferences", map[string]any{"a.b": true}), "", 400, []string{"notification_preferences"}},
		{"operator value in preferences", fresh, "POST", "profile/create/", withFields(validProfile(), "notification_preferences", map[string]any{"email": map[string]any{"$ne": false}}), "", 400, []string{"notification_preferences"}},
		{"read-only fields", fresh, "POST", "profile/create/", withFields(validProfile(), "is_verified", true, "user_id", contract.NewID(), "total_services", 9, "id", contract.NewID(), "created_at", "2020-01-01T00:00:00Z", "email", "x@example.com"), "", 400, []string{"is_verified", "user_id", "total_services", "id", "created_at", "email"}},
		{"too long and bad choices", fresh, "POST", "profile/create/", withFields(validProfile(), "company_name", long, "business_type", "empire", "preferred_contact_method", "pigeon", "tax_id", strings.Repeat("9", 51)), "", 400, []string{"company_name", "business_type", "preferred_contact_method", "tax_id"}},
		{"US postal code", fresh, "POST", "profile/create/", withFields(validProfile(), "postal_code", "ABCDE"), "", 400, []string{"postal_code"}},
		{"null character", fresh, "POST", "profile/create/", withFields(validProfile(), "city", "Spring\u0000field"), "", 400, []string{"city"}},
		{"blank required", fresh, "POST", "profile/create/", withFields(validProfile(), "city", "   "), "", 400, []string{"city"}},
		{"body over 1 MiB", fresh, "POST", "profile/create/", `{"company_name":"` + strings.Repeat("a", 1<<20) + `"}`, "", 413, nil},
		{"customer sets is_verified", owner, "PATCH", "profile/update/", map[string]any{"is_verified": true}, "", 400, []string{"is_verified"}},
		{"customer sets is_verified by id", owner, "PATCH", id + "/", map[string]any{"is_verified": true, "city": "X"}, "", 400, []string{"is_verified"}},
		{"update changes postal code to non-US", owner, "PATCH", "profile/update/", map[string]any{"postal_code": "SW1A 1AA"}, "", 400, []string{"postal_code"}},
		{"PUT without required", owner, "PUT", "profile/update/", map[string]any{"company_name": "X"}, "", 400, []string{"street_address", "city", "postal_code"}},
		{"update user_id", owner, "PATCH", "profile/update/", map[string]any{"user_id": contract.NewID()}, "", 400, []string{"user_id"}},
		{"staff create without user_id", employee, "POST", "", validProfile(), "", 400, []string{"user_id"}},
		{"staff create bad user_id", employee, "POST", "", withFields(validProfile(), "user_id", "42"), "", 400, []string{"user_id"}},
		{"staff is_verified not a bool", employee, "PATCH", id + "/", map[string]any{"is_verified": "yes"}, "", 400, []string{"is_verified"}},
		{"service body unknown field", employee, "POST", id + "/increment_service/", map[string]any{"count": 5}, "", 400, []string{"count"}},
		{"service body bad date", employee, "POST", id + "/increment_service/", map[string]any{"performed_at": "yesterday"}, "", 400, []string{"performed_at"}},
		{"service date in the future", employee, "POST", id + "/increment_service/", map[string]any{"performed_at": "2999-01-01T00:00:00Z"}, "", 400, []string{"performed_at"}},
		{"service notes too long", employee, "POST", id + "/increment_service/", map[string]any{"notes": strings.Repeat("n", 2001)}, "", 400, []string{"notes"}},
		{"idempotency key with spaces", employee, "POST", id + "/increment_service/", nil, "", 400, []string{"Idempotency-Key"}},
		{"verify with a body", employee, "POST", id + "/verify/", map[string]any{"is_verified": false}, "", 400, []string{"is_verified"}},
		{"check with other fields", owner, "POST", "check_profile_exists/", map[string]any{"email": "x"}, "", 400, []string{"email"}},
		{"check with bad user_id", employee, "POST", "check_profile_exists/", map[string]any{"user_id": "nope"}, "", 400, []string{"user_id"}},
		{"list bad is_verified", employee, "GET", "?is_verified=maybe", nil, "", 400, []string{"is_verified"}},
		{"list bad business_type", employee, "GET", "?business_type=empire", nil, "", 400, []string{"business_type"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := h.snapshot()
			headers := []string{}
			if c.contentType != "" {
				headers = append(headers, "Content-Type", c.contentType)
			}
			if c.name == "idempotency key with spaces" {
				headers = append(headers, "Idempotency-Key", "has spaces")
			}
			r := h.do(c.method, apiPath("%s", c.path), c.as.Token, c.body, headers...)
			if r.Code != c.status {
				t.Fatalf("status %d, want %d: %.300s", r.Code, c.status, r.Body)
			}
			if len(c.fields) > 0 {
				var fields map[string][]string
				if err := json.Unmarshal(r.Body, &fields); err != nil {
					t.Fatalf("400 body is not field -> messages: %s", r.Body)
				}
				for _, f := range c.fields {
					if len(fields[f]) == 0 {
						t.Errorf("field %q not named: %s", f, r.Body)
					}
				}
			}
			if h.snapshot() != before {
				t.Fatal("a refused request changed the database")
			}
		})
	}
	if n := h.count(customermongo.CustomersCollection, nil); n != 1 {
		t.Fatalf("%d profiles, want only the owner's", n)
	}
}

func withFields(m map[string]any, kv ...any) map[string]any {
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

// TestCreateDefaultsAndUpdate checks the defaults of a new profile, the
// normalisation of strings and a partial update.
func TestCreateDefaultsAndUpdate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	owner := newPerson(t, contract.RoleCustomer)
	r := h.do("POST", apiPath("profile/create/"), owner.Token, map[string]any{"street_address": "  9 Elm St ", "city": "Austin", "postal_code": "73301-0001"})
	h.expect(r, 201, "create")
	got := r.json(t)
	if got["country"] != "USA" || got["preferred_contact_method"] != "email" || got["is_verified"] != false || got["total_services"] != float64(0) || got["last_service_date"] != nil || got["street_address"] != "9 Elm St" || got["user_id"] != owner.ID {
		t.Fatalf("defaults: %s", r.Body)
	}
	prefs := got["notification_preferences"].(map[string]any)
	if prefs["email"] != true || prefs["sms"] != false || prefs["marketing"] != false || len(prefs) != 3 {
		t.Fatalf("default preferences: %v", prefs)
	}
	for _, k := range []string{"id", "customer_since", "created_at", "updated_at", "email", "first_name", "last_name", "phone_number"} {
		if _, ok := got[k]; !ok {
			t.Errorf("response lacks %q", k)
		}
	}
	r = h.do("PATCH", apiPath("profile/update/"), owner.Token, map[string]any{"country": "Canada", "postal_code": "M5H 2N2", "notification_preferences": map[string]any{"email": false, "sms": true}})
	h.expect(r, 200, "patch")
	got = r.json(t)
	if got["country"] != "Canada" || got["postal_code"] != "M5H 2N2" || got["street_address"] != "9 Elm St" || got["city"] != "Austin" {
		t.Fatalf("after patch: %s", r.Body)
	}
	if p := got["notification_preferences"].(map[string]any); p["sms"] != true || p["email"] != false {
		t.Fatalf("preferences: %v", p)
	}
	r = h.do("GET", apiPath("profile/"), owner.Token, nil)
	if r.json(t)["country"] != "Canada" {
		t.Fatalf("not stored: %s", r.Body)
	}
	// A staff member may set is_verified through the update.
	employee := newPerson(t, contract.RoleEmployee)
	r = h.do("PATCH", apiPath("%s/", got["id"]), employee.Token, map[string]any{"is_verified": true})
	h.expect(r, 200, "staff patch")
	if r.json(t)["is_verified"] != true {
		t.Fatalf("is_verified not set: %s", r.Body)
	}
	// A profile that is gone.
	h.expect(h.do("DELETE", apiPath("profile/delete/"), owner.Token, nil), 204, "delete")
	r = h.do("GET", apiPath("profile/"), owner.Token, nil)
	h.expect(r, 404, "get deleted")
	if r.json(t)["detail"] != "Customer profile not found." {
		t.Fatalf("404 body %s", r.Body)
	}
	h.expect(h.do("GET", apiPath("not-a-uuid/"), employee.Token, nil), 404, "bad id")
}

// TestConcurrentIncrements: 50 parallel calls all count, once each. Each
// carries its own Idempotency-Key and is sent again after a 503 (on a
// loaded machine the embedded server, one writer at a time, may keep the
// last of 50 writes past its deadline: "the request took too long", the
// outcome unknown), as a client does: the count is exact whichever of
// those writes landed. A retried call with the same key counts once and
// answers the same; the same key with another body is refused.
func TestConcurrentIncrements(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	owner, employee := newPerson(t, contract.RoleCustomer), newPerson(t, contract.RoleEmployee)
	id := h.createProfile(owner, nil)
	var wg sync.WaitGroup
	answers := make([]string, 50)
	for i := range answers {
		wg.Go(func() {
			for range 20 {
				r := h.do("POST", apiPath("%s/increment_service/", id), employee.Token, nil, "Idempotency-Key", fmt.Sprintf("inc-%d", i))
				if r.Code == 200 {
					answers[i] = ""
					return
				}
				answers[i] = fmt.Sprintf("%d %s", r.Code, r.Body)
				if r.Code != 503 && r.Code != 409 {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	for i, a := range answers {
		if a != "" {
			t.Fatalf("call %d: %s", i, a)
		}
	}
	r := h.do("GET", apiPath("%s/", id), employee.Token, nil)
	if got := r.json(t)["total_services"]; got != float64(50) {
		t.Fatalf("total_services = %v, want 50", got)
	}
	if n := h.count(customermongo.ServicesCollection, bson.D{{Key: "customer_id", Value: id}}); n != 50 {
		t.Fatalf("%d service records, want 50", n)
	}

	body := map[string]any{"service_type": "repair", "notes": "boiler", "performed_at": "2025-01-02T03:04:05Z"}
	first := h.do("POST", apiPath("%s/increment_service/", id), employee.Token, body, "Idempotency-Key", "retry-1")
	h.expect(first, 200, "keyed")
	retry := h.do("POST", apiPath("%s/increment_service/", id), employee.Token, body, "Idempotency-Key", "retry-1")
	h.expect(retry, 200, "retry")
	if first.json(t)["total_services"] != float64(51) || retry.json(t)["total_services"] != float64(51) {
		t.Fatalf("first %s, retry %s", first.Body, retry.Body)
	}
	if string(first.Body) != string(retry.Body) {
		t.Fatalf("the retry answered differently:\n%s\n%s", first.Body, retry.Body)
	}
	other := h.do("POST", apiPath("%s/increment_service/", id), employee.Token, map[string]any{"service_type": "other"}, "Idempotency-Key", "retry-1")
	h.expect(other, 422, "same key, other body")
	if n := h.count(customermongo.ServicesCollection, bson.D{{Key: "customer_id", Value: id}}); n != 51 {
		t.Fatalf("%d service records, want 51", n)
	}
	if h.do("GET", apiPath("%s/", id), employee.Token, nil).json(t)["last_service_date"] == nil {
		t.Fatal("last_service_date not set")
	}

	// The owner reads the records, newest first.
	r = h.do("GET", apiPath("%s/services/?page_size=100", id), owner.Token, nil)
	h.expect(r, 200, "services")
	var page struct {
		Count   int                          `json:"count"`
		Results []map[string]json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(r.Body, &page); err != nil || page.Count != 51 || len(page.Results) != 51 {
		t.Fatalf("services page: %v %.200s", err, r.Body)
	}
	var dates []string
	for _, rec := range page.Results {
		var d string
		_ = json.Unmarshal(rec["performed_at"], &d)
		dates = append(dates, d)
	}
	if !slices.IsSortedFunc(dates, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Fatalf("not newest first: %v", dates[:3])
	}
	if string(page.Results[50]["service_type"]) != `"repair"` {
		t.Fatalf("the oldest (2025) record should be last: %s", page.Results[50]["service_type"])
	}
}

// TestConcurrentCreates: 20 parallel creates of one user's profile give one
// 201, nineteen 409 and one document.
func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	owner := newPerson(t, contract.RoleCustomer)
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Go(func() {
			codes[i] = h.do("POST", apiPath("profile/create/"), owner.Token, validProfile()).Code
		})
	}
	wg.Wait()
	created, conflict := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
			conflict++
		}
	}
	if created != 1 || conflict != 19 {
		t.Fatalf("created %d, conflicts %d: %v", created, conflict, codes)
	}
	if n := h.count(customermongo.CustomersCollection, bson.D{{Key: "user_id", Value: owner.ID}}); n != 1 {
		t.Fatalf("%d documents", n)
	}
}
