package authd_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// userPage is a page of the user listing.
type userPage struct {
	Next    *string          `json:"next"`
	Results []map[string]any `json:"results"`
}

// TestUserListing: GET /api/auth/users/ without email lists the users a
// page at a time in id order, by role, following next to the last page;
// bad parameters are field errors; a page size over 500 is 500; the
// lookup by email answers as before.
func TestUserListing(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{"AUTH_BOOTSTRAP_ADMIN_EMAIL": adminEmail, "AUTH_BOOTSTRAP_ADMIN_PASSWORD": adminPassword})
	svc := s.serviceToken()
	var customers []string
	for _, e := range []string{"a", "b", "c", "d", "e"} {
		customers = append(customers, s.register(e+"@example.com", "F", "L").id)
	}
	slices.Sort(customers)

	var got []string
	path := "/api/auth/users/?user_role=customer&page_size=2"
	pages := 0
	for path != "" {
		a := s.get(path, svc)
		var p userPage
		if err := json.Unmarshal(a.Body, &p); err != nil || a.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, a.Status, a.Body)
		}
		pages++
		for _, u := range p.Results {
			if u["user_role"] != "customer" {
				t.Fatalf("a %v in the customer listing", u["user_role"])
			}
			if _, ok := u["registration_key"]; !ok {
				t.Fatalf("listed user without registration_key: %v", u)
			}
			got = append(got, u["id"].(string))
		}
		path = ""
		if p.Next != nil {
			n, err := url.Parse(*p.Next)
			if err != nil || n.IsAbs() || n.Query().Get("page_size") != "2" || n.Query().Get("user_role") != "customer" {
				t.Fatalf("next %q", *p.Next)
			}
			path = n.RequestURI()
		}
	}
	if !slices.Equal(got, customers) || pages != 3 {
		t.Fatalf("listed %v in %d pages, want %v in 3", got, pages, customers)
	}
	// Every user (the admin too), one page; a page size over the maximum is the maximum.
	var all userPage
	a := s.get("/api/auth/users/?page_size=100000", svc)
	if err := json.Unmarshal(a.Body, &all); err != nil || len(all.Results) != 6 || all.Next != nil {
		t.Fatalf("all users: %d %s", a.Status, a.Body)
	}
	// After the last customer: an empty last page.
	a = s.get("/api/auth/users/?user_role=customer&after="+strings.ToUpper(customers[4]), svc)
	if a.Status != http.StatusOK || string(a.Body) != `{"next":null,"results":[]}` {
		t.Fatalf("after the last: %d %s", a.Status, a.Body)
	}
	f := s.get("/api/auth/users/?user_role=service&after=12", svc).fields(t)
	if f["user_role"][0] != `"service" is not a valid choice.` || f["after"][0] != "Must be a valid UUID." {
		t.Fatalf("bad parameters: %v", f)
	}
	// With email, the lookup as before, whatever else is sent.
	if a := s.get("/api/auth/users/?email=C%40example.com&page_size=1", svc); a.Status != http.StatusOK || !strings.HasPrefix(string(a.Body), `{"count":1,"results":[`) {
		t.Fatalf("lookup by email: %d %s", a.Status, a.Body)
	}
}

// TestListingLinksIgnoreHost: the listing's next link is never built from
// the request's Host (or X-Forwarded-Host): without PUBLIC_URL it is
// relative (path and query), with it absolute on the configured base URL.
func TestListingLinksIgnoreHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, publicURL, want string
	}{
		{"relative", "", "/api/auth/users/?"},
		{"public URL", "https://auth.example.com/", "https://auth.example.com/api/auth/users/?"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{}
			if tc.publicURL != "" {
				env["PUBLIC_URL"] = tc.publicURL
			}
			s := start(t, env)
			s.register("host1@example.com", "F", "L")
			s.register("host2@example.com", "F", "L")
			req, err := http.NewRequest(http.MethodGet, s.base+"/api/auth/users/?page_size=1", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "evil.example"
			req.Header.Set("X-Forwarded-Host", "evil.example")
			req.Header.Set("X-Forwarded-Proto", "https")
			req.Header.Set("Authorization", "Bearer "+s.serviceToken())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p userPage
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != http.StatusOK || p.Next == nil {
				t.Fatalf("listing: %d %v %+v", resp.StatusCode, err, p)
			}
			if strings.Contains(*p.Next, "evil") || !strings.HasPrefix(*p.Next, tc.want) {
				t.Fatalf("next %q, want it to start with %q", *p.Next, tc.want)
			}
			n, err := url.Parse(*p.Next)
			if err != nil || n.Query().Get("after") == "" || n.Query().Get("page_size") != "1" {
				t.Fatalf("next %q", *p.Next)
			}
		})
	}
}
