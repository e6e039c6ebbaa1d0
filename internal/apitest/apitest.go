// Package apitest holds the services' HTTP exchanges in tests to their
// OpenAPI documents: every request a test sends and every answer it gets is
// checked against the document of the service that answered, so a change of
// behaviour that the document does not describe (or a document that no
// longer describes the behaviour) fails the tests.
//
// The rules, for one exchange:
//   - A request for a path and method the document describes is validated
//     (parameters, body, bearer scheme). A request the document calls
//     invalid must be refused with a 4xx the operation declares; the service
//     accepting it is a failure.
//   - The answer must have a status the operation declares (no "default"
//     catch-all counts), its headers and body must match the declared ones,
//     and a response declared without content must have an empty body.
//   - A request for a path or method no document describes may only get the
//     engines' generic 404 or 405 error: anything else is an undocumented
//     route. The Prometheus endpoint (MetricsPath) is the one exception.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Doc is a loaded, validated OpenAPI document of one service.
type Doc struct {
	Name   string
	T      *openapi3.T
	router routers.Router
}

// Load parses raw (JSON or YAML), validates the document, its examples
// included, and prepares it for routing requests.
func Load(name string, raw []byte) (*Doc, error) {
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("apitest: %s: parse: %w", name, err)
	}
	if err := t.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("apitest: %s: invalid document: %w", name, err)
	}
	r, err := gorillamux.NewRouter(t)
	if err != nil {
		return nil, fmt.Errorf("apitest: %s: router: %w", name, err)
	}
	return &Doc{Name: name, T: t, router: r}, nil
}

// MustLoad is Load for documents embedded in the binary: a broken document
// is a programming error.
func MustLoad(name string, raw []byte) *Doc {
	d, err := Load(name, raw)
	if err != nil {
		panic(err)
	}
	return d
}

// Docs are the documents of the services a test talks to; an exchange is
// checked against the first one that describes its path.
type Docs []*Doc

// Exchange is one request and its answer.
type Exchange struct {
	Request     *http.Request
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

func (e Exchange) String() string {
	return fmt.Sprintf("%s %s -> %d", e.Request.Method, e.Request.URL.RequestURI(), e.Status)
}

// formats are the string formats the documents use and how they are checked
// (kin-openapi checks only date-time and a few others by itself).
var formatOptions = []openapi3.SchemaValidationOption{
	openapi3.EnableFormatValidation(),
	openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
	openapi3.WithStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail)),
	openapi3.WithStringFormatValidator("uri", uriFormat{}),
}

type uriFormat struct{}

var uriRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s]+$`)

func (uriFormat) Validate(v string) error {
	if !uriRe.MatchString(v) {
		return fmt.Errorf("%q is not an absolute URI", v)
	}
	return nil
}

// options are the validation options of every exchange.
func options() *openapi3filter.Options {
	o := &openapi3filter.Options{
		IncludeResponseStatus:   true,
		MultiError:              true,
		AuthenticationFunc:      bearerPresent,
		SchemaValidationOptions: formatOptions,
	}
	o.WithCustomSchemaErrorFunc(schemaError)
	return o
}

// schemaError says where a value breaks its schema and why, without the
// schema itself (kin-openapi's default prints all of it).
func schemaError(e *openapi3.SchemaError) string {
	where := "/" + strings.Join(e.JSONPointer(), "/")
	return fmt.Sprintf("%s: %s", where, e.Reason)
}

// bearerPresent is the security check: a bearer scheme requires an
// Authorization header with a Bearer token. Whether the token is good is
// the service's to say (a 401 the document declares).
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return fmt.Errorf("apitest: unsupported security scheme %q", in.SecuritySchemeName)
	}
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return errors.New("no bearer token")
	}
	return nil
}

// MetricsPath is the Prometheus endpoint: plain text for a scraper, not part
// of any JSON API and never in a document, so its exchanges are not checked.
const MetricsPath = "/metrics"

// Check returns nil when the exchange is what the documents describe.
func (ds Docs) Check(ex Exchange) error {
	if ex.Request.URL.Path == MetricsPath {
		return nil
	}
	var methodMissing bool
	for _, d := range ds {
		route, params, err := d.router.FindRoute(ex.Request)
		switch {
		case err == nil:
			return d.check(ex, route, params)
		case errors.Is(err, routers.ErrMethodNotAllowed):
			methodMissing = true
		}
	}
	return undocumented(ex, methodMissing)
}

// undocumented checks the answer to a route no document describes: only the
// engines' generic 404/405 error is acceptable.
func undocumented(ex Exchange, methodMissing bool) error {
	what := "path"
	if methodMissing {
		what = "method"
	}
	if ex.Status != http.StatusNotFound && ex.Status != http.StatusMethodNotAllowed {
		return fmt.Errorf("%s: undocumented %s answered %d (only the generic 404/405 error may answer an undocumented route)", ex, what, ex.Status)
	}
	var body struct {
		Detail *string `json:"detail"`
		Code   *string `json:"code"`
	}
	if err := json.Unmarshal(ex.Body, &body); err != nil || body.Detail == nil || body.Code == nil {
		return fmt.Errorf("%s: the answer to an undocumented %s is not the {\"detail\", \"code\"} error: %q", ex, what, ex.Body)
	}
	return nil
}

func (d *Doc) check(ex Exchange, route *routers.Route, params map[string]string) error {
	req := ex.Request.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(ex.RequestBody))
	if len(ex.RequestBody) == 0 {
		req.Body = http.NoBody
	}
	opts := options()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)

	op := fmt.Sprintf("%s %s (%s)", route.Method, route.Path, d.Name)
	if reqErr != nil && (ex.Status < 400 || ex.Status >= 500) {
		return fmt.Errorf("%s: the request does not follow the document (%s) but the service answered %d: %s",
			ex, op, ex.Status, oneLine(reqErr))
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: ex.Status, Header: ex.Header, Options: opts,
	}
	out.SetBodyBytes(ex.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("%s: the answer does not follow the document (%s): %s; body %s", ex, op, oneLine(err), clip(ex.Body))
	}
	if resp := route.Operation.Responses.Status(ex.Status); resp != nil && resp.Value != nil &&
		len(resp.Value.Content) == 0 && len(bytes.TrimSpace(ex.Body)) > 0 {
		return fmt.Errorf("%s: %s declares no content for %d, but the answer has a body: %s", ex, op, ex.Status, clip(ex.Body))
	}
	return nil
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func clip(b []byte) string {
	const max = 600
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// Transport returns a RoundTripper that sends through base (nil: the
// default transport) and reports every exchange that breaks the documents
// as an error of t. It is safe for concurrent use.
func (ds Docs) Transport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{t: t, docs: ds, base: base}
}

// Client returns a copy of c (nil: a client with no timeout) whose
// exchanges are checked as Transport does.
func (ds Docs) Client(t testing.TB, c *http.Client) *http.Client {
	out := &http.Client{}
	if c != nil {
		*out = *c
	}
	out.Transport = ds.Transport(t, out.Transport)
	return out
}

type transport struct {
	t    testing.TB
	docs Docs
	base http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	resp, err := tr.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := tr.docs.Check(Exchange{Request: req, RequestBody: reqBody, Status: resp.StatusCode, Header: resp.Header, Body: body}); err != nil {
		tr.t.Errorf("apitest: %v", err)
	}
	return resp, nil
}

// Handler returns h wrapped so that every exchange it serves is checked as
// Transport does (for tests that call an engine's ServeHTTP directly).
func (ds Docs) Handler(t testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var reqBody []byte
		if r.Body != nil {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("apitest: read the request body: %v", err)
			}
			reqBody = b
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		rec := &recorder{ResponseWriter: w, header: w.Header()}
		h.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		r.Body = io.NopCloser(bytes.NewReader(reqBody))
		if err := ds.Check(Exchange{Request: r, RequestBody: reqBody, Status: status, Header: w.Header().Clone(), Body: rec.body.Bytes()}); err != nil {
			t.Errorf("apitest: %v", err)
		}
	})
}

// recorder passes an answer through and keeps a copy of its status and body.
type recorder struct {
	http.ResponseWriter
	header http.Header
	mu     sync.Mutex
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	r.mu.Lock()
	if r.status == 0 {
		r.status = code
	}
	r.mu.Unlock()
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(b)
	r.mu.Unlock()
	return r.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush through the recorder.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Operation is one method and path of a document ("GET /api/x/{id}/").
type Operation struct {
	Method, Path string
}

func (o Operation) String() string { return o.Method + " " + o.Path }

// Operations lists the document's operations, sorted.
func (d *Doc) Operations() []Operation {
	var out []Operation
	for path, item := range d.T.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, Operation{Method: strings.ToUpper(method), Path: path})
		}
	}
	slices.SortFunc(out, func(a, b Operation) int { return strings.Compare(a.String(), b.String()) })
	return out
}
