package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	customermongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/contract"
)

// The roles of the access matrix, in column order.
var matrixRoles = []string{"none", "owner", "other", "employee", "admin", "service"}

// TestAccessMatrix calls every endpoint as every kind of caller, on a fresh
// database each, and checks the status — and that a refused request wrote
// nothing.
func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	full := validProfile()
	rows := []struct {
		method, path string // %s is the owner's profile id
		body         any
		want         [6]int // none, owner, other customer, employee, admin, service
	}{
		{"POST", "profile/create/", validProfile(), [6]int{401, 409, 409, 403, 403, 403}},
		{"GET", "profile/", nil, [6]int{401, 200, 200, 404, 404, 403}},
		{"PATCH", "profile/update/", map[string]any{"city": "Shelbyville"}, [6]int{401, 200, 200, 404, 404, 403}},
		{"PUT", "profile/update/", full, [6]int{401, 200, 200, 404, 404, 403}},
		{"DELETE", "profile/delete/", nil, [6]int{401, 204, 204, 404, 404, 403}},
		{"POST", "check_profile_exists/", "owner-user-id", [6]int{401, 200, 403, 200, 200, 200}},
		{"GET", "stats/", nil, [6]int{401, 200, 200, 200, 200, 200}},
		{"GET", "", nil, [6]int{401, 200, 200, 200, 200, 200}},
		{"POST", "", "new-user", [6]int{401, 403, 403, 201, 201, 403}},
		{"GET", "%s/", nil, [6]int{401, 200, 404, 200, 200, 200}},
		{"PATCH", "%s/", map[string]any{"city": "Shelbyville"}, [6]int{401, 200, 404, 200, 200, 200}},
		{"PUT", "%s/", full, [6]int{401, 200, 404, 200, 200, 200}},
		{"DELETE", "%s/", nil, [6]int{401, 204, 404, 403, 204, 204}},
		{"POST", "%s/increment_service/", map[string]any{"service_type": "repair"}, [6]int{401, 403, 403, 200, 200, 200}},
		{"GET", "%s/services/", nil, [6]int{401, 200, 404, 200, 200, 200}},
		{"POST", "%s/verify/", nil, [6]int{401, 403, 403, 200, 200, 403}},
	}
	for _, row := range rows {
		for col, role := range matrixRoles {
			name := row.method + " /" + row.path + " as " + role
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				h := newHarness(t)
				owner := newPerson(t, contract.RoleCustomer)
				other := newPerson(t, contract.RoleCustomer)
				ownerID := h.createProfile(owner, nil)
				h.createProfile(other, nil)
				callers := map[string]person{
					"owner":    owner,
					"other":    other,
					"employee": newPerson(t, contract.RoleEmployee),
					"admin":    newPerson(t, contract.RoleAdmin),
					"service":  newPerson(t, contract.RoleService),
				}
				path := strings.Replace(row.path, "%s", ownerID, 1)
				body := row.body
				switch body {
				case "owner-user-id":
					body = map[string]any{"user_id": owner.ID}
				case "new-user":
					b := validProfile()
					b["user_id"] = contract.NewID()
					body = b
				}
				before := h.snapshot()
				r := h.do(row.method, "/api/v1/customers/"+path, callers[role].Token, body)
				if r.Code != row.want[col] {
					t.Fatalf("status %d, want %d; body %s", r.Code, row.want[col], r.Body)
				}
				if r.Code >= 400 {
					if after := h.snapshot(); after != before {
						t.Fatalf("a refused request changed the database")
					}
					code := r.json(t)["code"]
					wantCode := map[int]string{401: "not_authenticated", 403: "permission_denied", 404: "not_found", 409: "conflict"}[r.Code]
					if code != wantCode {
						t.Fatalf("code %v, want %s", code, wantCode)
					}
					if r.Code == 404 && strings.Contains(string(r.Body), "Springfield") {
						t.Fatalf("a 404 leaked profile data: %s", r.Body)
					}
				}
			})
		}
	}
}

// TestBOLA: a customer can neither read, change nor delete another
// customer's profile by id, nor see it in the listing or its services.
func TestBOLA(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := newPerson(t, contract.RoleCustomer), newPerson(t, contract.RoleCustomer)
	h.createProfile(a, nil)
	bBody := validProfile()
	bBody["company_name"] = "Secret B Corp"
	bID := h.createProfile(b, bBody)
	before := h.snapshot()

	for _, c := range []struct {
		method string
		path   string
		body   any
	}{
		{"GET", apiPath("%s/", bID), nil},
		{"PATCH", apiPath("%s/", bID), map[string]any{"company_name": "Hijacked"}},
		{"PUT", apiPath("%s/", bID), validProfile()},
		{"DELETE", apiPath("%s/", bID), nil},
		{"GET", apiPath("%s/services/", bID), nil},
	} {
		r := h.do(c.method, c.path, a.Token, c.body)
		if r.Code != http.StatusNotFound || strings.Contains(string(r.Body), "Secret B") {
			t.Errorf("%s %s as A: %d %s", c.method, c.path, r.Code, r.Body)
		}
	}
	if h.snapshot() != before {
		t.Fatal("B's profile changed")
	}
	r := h.do("GET", apiPath(""), a.Token, nil)
	h.expect(r, 200, "list")
	body := r.json(t)
	results := body["results"].([]any)
	if body["count"] != float64(1) || len(results) != 1 || results[0].(map[string]any)["user_id"] != a.ID {
		t.Fatalf("A's listing: %s", r.Body)
	}
	if strings.Contains(string(r.Body), "Secret B") {
		t.Fatal("A's listing shows B")
	}
	if r := h.do("GET", apiPath("?search=Secret"), a.Token, nil); r.json(t)["count"] != float64(0) {
		t.Fatalf("search found B: %s", r.Body)
	}
	// B still reads its own profile.
	if r := h.do("GET", apiPath("%s/", bID), b.Token, nil); r.Code != 200 || r.json(t)["company_name"] != "Secret B Corp" {
		t.Fatalf("B reads own: %d %s", r.Code, r.Body)
	}
	if n := h.count(customermongo.CustomersCollection, bson.D{{Key: "_id", Value: bID}}); n != 1 {
		t.Fatal("B's profile is gone")
	}
}
