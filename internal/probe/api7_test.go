package probe

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// canary is a listener that records every request it receives: an address
// an attacker would make the services fetch.
type canary struct {
	*httptest.Server
	mu   sync.Mutex
	hits []string
}

func newCanary(t *testing.T) *canary {
	c := &canary{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.hits = append(c.hits, r.Method+" "+r.URL.String())
		c.mu.Unlock()
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *canary) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.hits...)
}

// urlish names a request member or parameter that could carry a URL.
var urlish = regexp.MustCompile(`(?i)(url|uri|webhook|callback|redirect|href|link|endpoint|host|avatar|image)`)

// probeAPI7SSRF: no endpoint takes a URL — no member or parameter of any
// service's documented requests is one, URL-named members are refused as
// unknown — and the canary's addresses, put in every free-text field and
// in the headers a proxy might follow, are never fetched, while the
// services store and read them back.
func probeAPI7SSRF(t *testing.T, s *suite) {
	for _, svc := range []string{s.auth, s.customer, s.bff} {
		a := s.call(t, http.MethodGet, svc+"/openapi.json", nil, nil)
		if a.Status != http.StatusOK {
			t.Fatalf("%s/openapi.json: %s", svc, a)
		}
		var doc map[string]any
		a.JSON(t, &doc)
		inputs := requestInputs(doc)
		if len(inputs) == 0 {
			t.Fatalf("%s/openapi.json documents no request input", svc)
		}
		for name, format := range inputs {
			if urlish.MatchString(name) || strings.Contains(format, "ur") {
				t.Errorf("%s takes %q (format %q): a member that may carry a URL", svc, name, format)
			}
		}
	}

	can := newCanary(t)
	target := can.URL + "/ssrf"
	c := s.customerAccount(t, "ssrf")
	for _, field := range []string{"callback_url", "webhook", "avatar_url", "url"} {
		for _, x := range []struct{ method, url string }{
			{http.MethodPatch, s.auth + "/api/auth/profile/update/"},
			{http.MethodPatch, s.customer + "/api/v1/customers/profile/update/"},
			{http.MethodPatch, s.bff + "/api/bff/me/"},
		} {
			a := s.call(t, x.method, x.url, map[string]any{field: target}, c.as())
			wantFieldError(t, x.method+" "+x.url+" with "+field, a, field, "")
		}
	}

	// The headers a proxy or a link builder might follow.
	pointing := func(h map[string]string) map[string]string {
		return with(h, "Referer", target, "X-Forwarded-Host", strings.TrimPrefix(can.URL, "http://"),
			"X-Original-URL", target, "X-Rewrite-URL", target, "Origin", can.URL)
	}
	headers := pointing(c.as())
	body := registration(s.newEmail("ssrf-register"), "Probe-Quartz-Ssrf-3381")
	for _, f := range []string{"first_name", "last_name", "street_address", "city", "state", "company_name", "tax_id",
		"emergency_contact_name", "emergency_contact_relationship"} {
		body[f] = target
	}
	a := s.call(t, http.MethodPost, s.bff+"/api/bff/register/", body, pointing(from(s.newAddr())))
	if a.Status != http.StatusCreated {
		t.Fatalf("a registration carrying URLs: %s", a)
	}
	patch := map[string]any{"street_address": target, "company_name": target, "emergency_contact_name": target}
	if a := s.call(t, http.MethodPatch, s.customer+"/api/v1/customers/profile/update/", patch, headers); a.Status != http.StatusOK {
		t.Fatalf("a profile update carrying URLs: %s", a)
	}
	if a := s.call(t, http.MethodPatch, s.bff+"/api/bff/me/", map[string]any{"first_name": target, "city": target}, headers); a.Status != http.StatusOK {
		t.Fatalf("a BFF update carrying URLs: %s", a)
	}
	if a := s.call(t, http.MethodPost, s.customer+"/api/v1/customers/"+c.profileID+"/increment_service/",
		map[string]any{"service_type": target, "notes": target}, pointing(s.employee.as())); a.Status != http.StatusOK {
		t.Fatalf("a service record carrying URLs: %s", a)
	}
	// Read everything back through each service (a fetch on read would
	// happen now).
	for _, u := range []string{s.bff + "/api/bff/me/", s.customer + "/api/v1/customers/profile/", s.auth + "/api/auth/profile/",
		s.customer + "/api/v1/customers/" + c.profileID + "/services/"} {
		a := s.call(t, http.MethodGet, u, nil, headers)
		if a.Status != http.StatusOK || !strings.Contains(string(a.Body), target) {
			t.Errorf("%s does not read the stored URL back as text: %s", u, a)
		}
	}
	if hits := can.requests(); len(hits) > 0 {
		t.Errorf("the services fetched the addresses they were given: %v", hits)
	}
}

// requestInputs returns the members of every request body and the
// parameters of every operation of an OpenAPI document, with their
// formats, following $refs.
func requestInputs(doc map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(v any, depth int)
	walk = func(v any, depth int) {
		if depth > 32 {
			return
		}
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				walk(resolve(doc, ref), depth+1)
				return
			}
			if props, ok := x["properties"].(map[string]any); ok {
				for name, p := range props {
					f, _ := resolveMap(doc, p)["format"].(string)
					out[name] = f
				}
			}
			for _, e := range x {
				walk(e, depth+1)
			}
		case []any:
			for _, e := range x {
				walk(e, depth+1)
			}
		}
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, ops := range paths {
		ops, _ := ops.(map[string]any)
		for _, op := range ops {
			op, ok := op.(map[string]any)
			if !ok {
				continue
			}
			walk(op["requestBody"], 0)
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm := resolveMap(doc, p)
				if name, ok := pm["name"].(string); ok {
					f, _ := resolveMap(doc, pm["schema"])["format"].(string)
					out[name] = f
				}
			}
		}
	}
	return out
}

func resolve(doc map[string]any, ref string) any {
	var v any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}

func resolveMap(doc map[string]any, v any) map[string]any {
	for range 8 {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		v = resolve(doc, ref)
	}
	return nil
}
