package httpapi

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"golang.org/x/net/html"

	"github.com/acme/customer-platform/internal/web"
)

func siteEngine(t *testing.T, origins ...string) *gin.Engine {
	t.Helper()
	e := web.NewEngine(web.EngineOptions{Service: "bff-test", Logger: quiet, ContentSecurityPolicy: ContentSecurityPolicy})
	Routes(e, Deps{AllowedOrigins: origins, PublishDocs: true})
	return e
}

// TestDocsAreASetting: with BFF_PUBLISH_DOCS off (the default outside
// development) /docs and the internal auth and customer documents are the
// contract's 404, the page's other assets and the BFF's own document stay;
// on, they are served.
func TestDocsAreASetting(t *testing.T) {
	t.Parallel()
	docs := []string{"/docs", "/assets/openapi/auth.json", "/assets/openapi/customer.json", "/assets/docs.js"}
	for _, publish := range []bool{false, true} {
		e := web.NewEngine(web.EngineOptions{Service: "bff-test", Logger: quiet, ContentSecurityPolicy: ContentSecurityPolicy})
		Routes(e, Deps{PublishDocs: publish})
		for _, p := range docs {
			w := get(e, p)
			switch {
			case publish && w.Code != http.StatusOK:
				t.Errorf("published: %s: %d", p, w.Code)
			case !publish && (w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `"code":"not_found"`)):
				t.Errorf("not published: %s: %d %s, want the contract's 404", p, w.Code, w.Body)
			}
		}
		for _, p := range []string{"/", "/assets/app.js", "/openapi.json"} {
			if w := get(e, p); w.Code != http.StatusOK {
				t.Errorf("publish %v: %s: %d", publish, p, w.Code)
			}
		}
	}
}

func get(e http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	return w
}

// TestSecurityHeaders: every answer of the BFF, page, docs, assets and API
// alike, forbids inline script, framing and sniffing.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := siteEngine(t)
	for _, p := range []string{"/", "/docs", "/assets/app.js", "/assets/swagger-ui/swagger-ui.css", "/openapi.json", "/api/bff/me/", "/nowhere"} {
		w := get(e, p)
		h := w.Header()
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "default-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows inline code: %q", p, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") == "" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", p, h)
		}
	}
}

// TestPages: the page and the docs are HTML; assets have their types; an
// unknown asset is the API's 404.
func TestPages(t *testing.T) {
	t.Parallel()
	e := siteEngine(t)
	for path, ctype := range map[string]string{
		"/": "text/html", "/docs": "text/html", "/assets/app.js": "text/javascript", "/assets/app.css": "text/css",
		"/assets/docs.js": "text/javascript", "/assets/openapi/auth.json": "application/json",
	} {
		w := get(e, path)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) || w.Body.Len() == 0 {
			t.Errorf("%s: %d %q, %d bytes", path, w.Code, w.Header().Get("Content-Type"), w.Body.Len())
		}
	}
	w := get(e, "/assets/nothing.js")
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `"code":"not_found"`) {
		t.Errorf("unknown asset: %d %s", w.Code, w.Body)
	}
	w = get(e, "/")
	if w2 := get(e, "/", "If-None-Match", w.Header().Get("ETag")); w2.Code != http.StatusNotModified || w2.Body.Len() != 0 {
		t.Errorf("revalidation with the ETag: %d, %d bytes", w2.Code, w2.Body.Len())
	}
}

// TestVendoredSwaggerUI: the vendored files are those vendor.sh recorded,
// served gzipped to clients that accept it and inflated for the others.
func TestVendoredSwaggerUI(t *testing.T) {
	t.Parallel()
	sums, err := os.ReadFile("web/assets/swagger-ui/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	e := siteEngine(t)
	sc := bufio.NewScanner(bytes.NewReader(sums))
	n := 0
	for sc.Scan() {
		want, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		n++
		plain := get(e, "/assets/swagger-ui/"+name)
		if plain.Header().Get("Content-Encoding") != "" || hexSum(plain.Body.Bytes()) != want {
			t.Errorf("%s without gzip: encoding %q, sha256 %s, want %s", name, plain.Header().Get("Content-Encoding"), hexSum(plain.Body.Bytes()), want)
		}
		gz := get(e, "/assets/swagger-ui/"+name, "Accept-Encoding", "br, gzip")
		if gz.Header().Get("Content-Encoding") != "gzip" || !slices.Contains(gz.Header().Values("Vary"), "Accept-Encoding") {
			t.Fatalf("%s with gzip: headers %v", name, gz.Header())
		}
		zr, err := gzip.NewReader(gz.Body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(zr)
		if hexSum(b) != want || gz.Body.Len() >= len(b) {
			t.Errorf("%s gzipped: sha256 of the inflated body %s, want %s", name, hexSum(b), want)
		}
		if get(e, "/assets/swagger-ui/"+name, "Accept-Encoding", "gzip;q=0").Header().Get("Content-Encoding") != "" {
			t.Errorf("%s: gzip sent to a client that refuses it", name)
		}
	}
	if n != 2 {
		t.Errorf("SHA256SUMS lists %d files, want the bundle and the stylesheet", n)
	}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestDocsCopiesAreCurrent: /docs shows copies of the auth and customer
// services' documents; go generate refreshes them.
func TestDocsCopiesAreCurrent(t *testing.T) {
	t.Parallel()
	for copyPath, original := range map[string]string{
		"web/assets/openapi/auth.json":     "../../auth/httpapi/openapi.json",
		"web/assets/openapi/customer.json": "../../customer/httpapi/openapi.json",
	} {
		a, err1 := os.ReadFile(copyPath)
		b, err2 := os.ReadFile(original)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: run go generate ./bff/httpapi/", copyPath, original)
		}
	}
}

// TestRegistrationForm: the page's inputs are named as the API's fields,
// every field the API requires has one, and each has a label and an error
// slot tied to it with aria-describedby.
func TestRegistrationForm(t *testing.T) {
	t.Parallel()
	var spec struct {
		Components struct {
			Schemas map[string]struct {
				Required   []string                   `json:"required"`
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &spec); err != nil {
		t.Fatal(err)
	}
	reg := spec.Components.Schemas["RegisterRequest"]

	doc, err := html.Parse(bytes.NewReader(get(siteEngine(t), "/").Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]*html.Node{}
	labels := map[string]bool{}
	var inputs []*html.Node
	var scripts []*html.Node
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		if id := attr(n, "id"); id != "" {
			ids[id] = n
		}
		switch n.Data {
		case "input":
			inputs = append(inputs, n)
		case "label":
			labels[attr(n, "for")] = true
		case "script":
			scripts = append(scripts, n)
		}
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") {
				t.Errorf("<%s %s>: inline event handler", n.Data, a.Key)
			}
		}
	}
	for _, s := range scripts {
		if attr(s, "src") == "" || s.FirstChild != nil {
			t.Errorf("inline script: %v", s)
		}
	}
	named := map[string]bool{}
	for _, in := range inputs {
		name, id := attr(in, "name"), attr(in, "id")
		named[name] = true
		if _, ok := reg.Properties[name]; !ok {
			t.Errorf("input %q is not a field of the API's registration", name)
		}
		if id == "" || !labels[id] {
			t.Errorf("input %q has no label", name)
		}
		described := strings.Fields(attr(in, "aria-describedby"))
		if !slices.Contains(described, name+"-error") || ids[name+"-error"] == nil {
			t.Errorf("input %q: aria-describedby %q does not name its error element %s-error", name, described, name)
		}
		for _, d := range described {
			if ids[d] == nil {
				t.Errorf("input %q: aria-describedby names %q, which is not on the page", name, d)
			}
		}
	}
	for _, r := range reg.Required {
		if !named[r] {
			t.Errorf("the API requires %q but the form has no input for it", r)
		}
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func TestParseOrigin(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://app.example.com":       "https://app.example.com",
		"https://App.Example.com:8443/": "https://app.example.com:8443",
		"http://localhost:3000":         "http://localhost:3000",
	} {
		if got, err := ParseOrigin(in); err != nil || got != want {
			t.Errorf("ParseOrigin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"*", "app.example.com", "ftp://x.example", "https://x.example/path", "https://u:p@x.example", "https://x.example?q=1", "https://"} {
		if got, err := ParseOrigin(bad); err == nil {
			t.Errorf("ParseOrigin(%q) = %q, want an error", bad, got)
		}
	}
}

// TestCORS: only the configured origins get Access-Control headers; their
// preflights are answered, others' refused.
func TestCORS(t *testing.T) {
	t.Parallel()
	const app = "https://app.example.com"
	e := siteEngine(t, app)
	preflight := func(origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodOptions, "/api/bff/register/", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type, idempotency-key")
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		return w
	}

	w := preflight(app)
	h := w.Header()
	if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != app || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("allowed preflight: %d %v", w.Code, h)
	}
	for _, want := range []string{"Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"} {
		if !strings.Contains(h.Get("Access-Control-Allow-Headers"), want) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
		}
	}
	if !strings.Contains(h.Get("Access-Control-Allow-Methods"), "PATCH") || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Errorf("allowed preflight: %v", h)
	}

	w = preflight("https://evil.example")
	if w.Code != http.StatusForbidden || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight of another origin: %d %v", w.Code, w.Header())
	}

	w = get(e, "/api/bff/me/", "Origin", app)
	h = w.Header()
	if h.Get("Access-Control-Allow-Origin") != app || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "X-Cache") ||
		!strings.Contains(h.Get("Access-Control-Expose-Headers"), "X-Request-ID") || !slices.Contains(h.Values("Vary"), "Origin") {
		t.Errorf("request of an allowed origin: %v", h)
	}
	if w := get(e, "/api/bff/me/", "Origin", "https://evil.example"); w.Header().Get("Access-Control-Allow-Origin") != "" || w.Code != http.StatusUnauthorized {
		t.Errorf("request of another origin: %d %v", w.Code, w.Header())
	}

	none := siteEngine(t)
	if w := get(none, "/api/bff/me/", "Origin", app); w.Header().Get("Access-Control-Allow-Origin") != "" || len(w.Header().Values("Vary")) != 0 {
		t.Errorf("no origins configured: %v", w.Header())
	}
	req := httptest.NewRequest(http.MethodOptions, "/api/bff/register/", nil)
	req.Header.Set("Origin", app)
	req.Header.Set("Access-Control-Request-Method", "POST")
	w = httptest.NewRecorder()
	none.ServeHTTP(w, req)
	if w.Code != http.StatusForbidden || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight with no origins configured: %d %v", w.Code, w.Header())
	}
}
