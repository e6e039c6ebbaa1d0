package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/customer/customertest"
	customermongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/web"
)

type listPage struct {
	Count    int              `json:"count"`
	Next     *string          `json:"next"`
	Previous *string          `json:"previous"`
	Results  []map[string]any `json:"results"`
}

func (h *harness) list(p person, query string) listPage {
	h.t.Helper()
	r := h.do("GET", apiPath("%s", query), p.Token, nil, "Host", "api.example.test")
	h.expect(r, 200, "list "+query)
	var lp listPage
	if err := json.Unmarshal(r.Body, &lp); err != nil {
		h.t.Fatalf("page: %v", err)
	}
	return lp
}

// seedProfiles creates n profiles through the staff API: the i-th is in
// city C(i%3), verified when i is even, business type llc when i%4 == 0,
// company "Widget i" and, for i == 7, "Odd (Parens) Co".
func (h *harness) seedProfiles(staff person, n int) {
	h.t.Helper()
	for i := range n {
		b := validProfile()
		b["user_id"] = contract.NewID()
		b["city"] = fmt.Sprintf("C%d", i%3)
		b["is_verified"] = i%2 == 0
		b["business_type"] = map[bool]string{true: "llc", false: "individual"}[i%4 == 0]
		b["company_name"] = fmt.Sprintf("Widget %d", i)
		if i == 7 {
			b["company_name"] = "Odd (Parens) Co"
		}
		if i == 9 {
			b["country"] = "Canada"
			b["postal_code"] = "K1A 0B1"
			b["state"] = "ON"
		}
		h.expect(h.do("POST", apiPath(""), staff.Token, b), 201, "seed")
	}
}

func TestPaginationAndFilters(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin := newPerson(t, contract.RoleAdmin)
	h.seedProfiles(admin, 25)

	p := h.list(admin, "")
	if p.Count != 25 || len(p.Results) != 20 || p.Previous != nil || p.Next == nil || *p.Next != "/api/v1/customers/?page=2" {
		t.Fatalf("first page: count %d, %d results, next %v, previous %v", p.Count, len(p.Results), deref(p.Next), deref(p.Previous))
	}
	p = h.list(admin, "?page=2&city=C0&page_size=4")
	// C0 holds i = 0, 3, ..., 24: 9 profiles.
	if p.Count != 9 || len(p.Results) != 4 || deref(p.Previous) != "/api/v1/customers/?city=C0&page_size=4" || deref(p.Next) != "/api/v1/customers/?city=C0&page=3&page_size=4" {
		t.Fatalf("page 2 of C0: %+v next=%s prev=%s", p.Count, deref(p.Next), deref(p.Previous))
	}
	p = h.list(admin, "?page=last&page_size=10")
	if len(p.Results) != 5 || p.Next != nil || deref(p.Previous) != "/api/v1/customers/?page=2&page_size=10" {
		t.Fatalf("last page: %d results, next %s, previous %s", len(p.Results), deref(p.Next), deref(p.Previous))
	}
	if p := h.list(admin, "?page_size=1000"); len(p.Results) != 25 {
		t.Fatalf("page_size over the maximum: %d results", len(p.Results))
	}
	if p := h.list(admin, "?page_size=abc"); len(p.Results) != 20 {
		t.Fatalf("bad page_size falls back to the default: %d", len(p.Results))
	}
	if p := h.list(admin, "?page_size=0"); len(p.Results) != 20 {
		t.Fatalf("zero page_size falls back to the default: %d", len(p.Results))
	}
	for _, q := range []string{"?page=3", "?page=0", "?page=-1", "?page=abc", "?page=99&page_size=100"} {
		r := h.do("GET", apiPath("%s", q), admin.Token, nil)
		if r.Code != 404 || r.json(t)["detail"] != "Invalid page." {
			t.Errorf("%s: %d %s", q, r.Code, r.Body)
		}
	}
	// An empty result still has a first page.
	if p := h.list(admin, "?city=Nowhere"); p.Count != 0 || len(p.Results) != 0 || p.Next != nil {
		t.Fatalf("empty: %+v", p)
	}
	// Newest first, with no item on two pages.
	seen := map[string]bool{}
	for page := 1; page <= 3; page++ {
		for _, c := range h.list(admin, fmt.Sprintf("?page=%d&page_size=10", page)).Results {
			id := c["id"].(string)
			if seen[id] {
				t.Fatalf("%s is on two pages", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != 25 {
		t.Fatalf("%d distinct profiles over the pages", len(seen))
	}
	first := h.list(admin, "?page_size=25").Results
	if first[0]["company_name"] != "Widget 24" || first[24]["company_name"] != "Widget 0" {
		t.Fatalf("order: %v ... %v", first[0]["company_name"], first[24]["company_name"])
	}

	for _, c := range []struct {
		query string
		count int
	}{
		{"?city=C1", 8},
		{"?is_verified=true", 13},
		{"?is_verified=false", 12},
		{"?is_verified=1&city=C0", 5}, // 0, 6, 12, 18, 24
		{"?business_type=llc", 7},     // 0, 4, ..., 24
		{"?business_type=individual", 18},
		{"?country=Canada", 1},
		{"?country=USA", 24},
		{"?state=ON", 1},
		{"?search=widget", 24},
		{"?search=WIDGET%201", 11}, // 1, 10..19
		{"?search=(parens)", 1},
		{"?search=.%2A", 0},
		{"?search=62701", 24},
		{"?search=main%20st", 25},
		{"?search=c2", 8}, // city C2
	} {
		if p := h.list(admin, c.query); p.Count != c.count {
			t.Errorf("%s: count %d, want %d", c.query, p.Count, c.count)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestStats(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	admin, service := newPerson(t, contract.RoleAdmin), newPerson(t, contract.RoleService)
	h.seedProfiles(admin, 10)
	owner := newPerson(t, contract.RoleCustomer)
	id := h.createProfile(owner, withFields(validProfile(), "business_type", ""))
	for range 3 {
		h.expect(h.do("POST", apiPath("%s/increment_service/", id), service.Token, nil), 200, "increment")
	}
	r := h.do("GET", apiPath("stats/"), admin.Token, nil)
	h.expect(r, 200, "stats")
	var all struct {
		Scope              string         `json:"scope"`
		TotalCustomers     int            `json:"total_customers"`
		VerifiedCustomers  int            `json:"verified_customers"`
		BusinessCustomers  int            `json:"business_customers"`
		CustomersByCountry map[string]int `json:"customers_by_country"`
		TotalServices      int            `json:"total_services"`
		NewLast30Days      int            `json:"new_last_30_days"`
	}
	testenv.Must(t, json.Unmarshal(r.Body, &all), "decode")
	// 10 seeded (5 verified, llc at 0, 4, 8) plus the owner's.
	if all.Scope != "all" || all.TotalCustomers != 11 || all.VerifiedCustomers != 5 || all.BusinessCustomers != 3 ||
		all.TotalServices != 3 || all.NewLast30Days != 11 || all.CustomersByCountry["USA"] != 10 || all.CustomersByCountry["Canada"] != 1 {
		t.Fatalf("stats: %s", r.Body)
	}
	r = h.do("GET", apiPath("stats/"), owner.Token, nil)
	h.expect(r, 200, "self stats")
	self := r.json(t)
	if self["scope"] != "self" || self["total_services"] != float64(3) || self["is_verified"] != false || self["last_service_date"] == nil || self["customer_since"] == nil || len(self) != 5 {
		t.Fatalf("self stats: %s", r.Body)
	}
	noProfile := newPerson(t, contract.RoleCustomer)
	h.expect(h.do("GET", apiPath("stats/"), noProfile.Token, nil), 404, "self stats without a profile")
}

// TestPublishesEveryWrite checks the change notification of each kind of
// write, and that reads and refused writes publish nothing.
func TestPublishesEveryWrite(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	owner, employee, admin := newPerson(t, contract.RoleCustomer), newPerson(t, contract.RoleEmployee), newPerson(t, contract.RoleAdmin)
	id := h.createProfile(owner, nil)
	h.expect(h.do("PATCH", apiPath("profile/update/"), owner.Token, map[string]any{"city": "X"}), 200, "update")
	h.expect(h.do("POST", apiPath("%s/increment_service/", id), employee.Token, nil), 200, "service")
	h.expect(h.do("POST", apiPath("%s/verify/", id), employee.Token, nil), 200, "verify")
	h.expect(h.do("GET", apiPath("%s/", id), employee.Token, nil), 200, "read")
	h.expect(h.do("PATCH", apiPath("profile/update/"), owner.Token, map[string]any{"city": 5}), 400, "bad update")
	h.expect(h.do("DELETE", apiPath("%s/", id), admin.Token, nil), 204, "delete")
	want := []customer.Change{
		{UserID: owner.ID, CustomerID: id, Op: "create"},
		{UserID: owner.ID, CustomerID: id, Op: "update"},
		{UserID: owner.ID, CustomerID: id, Op: "service"},
		{UserID: owner.ID, CustomerID: id, Op: "verify"},
		{UserID: owner.ID, CustomerID: id, Op: "delete"},
	}
	if got := h.pub.Changes(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("published %v\nwant %v", got, want)
	}
}

// TestUserDataMerging checks the owner's and the staff's views and the
// null fields when the user directory fails.
func TestUserDataMerging(t *testing.T) {
	t.Parallel()
	_, db := testenv.Mongo(t)
	store, err := customermongo.New(context.Background(), db)
	testenv.Must(t, err, "store")
	var (
		down        atomic.Bool
		mu          sync.Mutex
		calls       = map[string]int{}
		inFlight    atomic.Int32
		maxInFlight atomic.Int32
	)
	users := &customertest.Users{
		MeFn: func(_ context.Context, token string) (customer.User, error) {
			if down.Load() {
				return customer.User{}, errors.New("auth service unreachable")
			}
			return customer.User{PhoneNumber: "+1 555 0100", Email: "stale@example.com"}, nil
		},
		UserFn: func(_ context.Context, token, id string) (customer.User, error) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := maxInFlight.Load()
				if n <= m || maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			calls[id]++
			mu.Unlock()
			if down.Load() {
				return customer.User{}, &authclient.Error{Kind: authclient.ErrUnavailable}
			}
			return customer.User{ID: id, Email: "u@example.com", FirstName: "Ursula", LastName: "User", PhoneNumber: "+1 555 0199"}, nil
		},
	}
	svc := customer.NewService(store, users, nil, customer.Options{UserLookups: 3, Logger: quiet})
	v, _ := authclient.NewVerifier(authclient.VerifierConfig{Key: testKey})
	e := web.NewEngine(web.EngineOptions{Service: "customer-test", Logger: quiet})
	Routes(e, Deps{Service: svc, Verifier: v})
	h := &harness{t: t, engine: e, db: db, pub: &customertest.Publisher{}}

	owner, employee := newPerson(t, contract.RoleCustomer), newPerson(t, contract.RoleEmployee)
	id := h.createProfile(owner, nil)
	r := h.do("GET", apiPath("profile/"), owner.Token, nil)
	got := r.json(t)
	if got["email"] != "customer@example.com" || got["first_name"] != "Tok" || got["last_name"] != "En" || got["phone_number"] != "+1 555 0100" {
		t.Fatalf("owner view: %s", r.Body)
	}
	got = h.do("GET", apiPath("%s/", id), employee.Token, nil).json(t)
	if got["email"] != "u@example.com" || got["first_name"] != "Ursula" || got["phone_number"] != "+1 555 0199" {
		t.Fatalf("staff view: %v", got)
	}

	// A page of 12 profiles of 12 users fetches each user once, at most 3 at a time.
	h.seedProfiles(employee, 11)
	mu.Lock()
	clear(calls)
	mu.Unlock()
	p := h.list(employee, "?page_size=50")
	if p.Count != 12 || len(calls) != 12 || maxInFlight.Load() > 3 {
		t.Fatalf("count %d, %d users fetched, %d at once", p.Count, len(calls), maxInFlight.Load())
	}
	for id, n := range calls {
		if n != 1 {
			t.Fatalf("user %s fetched %d times", id, n)
		}
	}

	down.Store(true)
	r = h.do("GET", apiPath("profile/"), owner.Token, nil)
	h.expect(r, http.StatusOK, "owner view, auth down")
	got = r.json(t)
	if got["phone_number"] != nil || got["email"] != "customer@example.com" {
		t.Fatalf("owner view, auth down: %s", r.Body)
	}
	r = h.do("GET", apiPath("%s/", id), employee.Token, nil)
	h.expect(r, http.StatusOK, "staff view, auth down")
	got = r.json(t)
	for _, k := range []string{"email", "first_name", "last_name", "phone_number"} {
		if v, ok := got[k]; !ok || v != nil {
			t.Fatalf("%s should be null: %s", k, r.Body)
		}
	}
}
