package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/contract"
)

var (
	errMissing = errors.New("domain: missing")
	errTaken   = errors.New("domain: taken")
)

// fieldsError is a typed domain error the table cannot match by identity.
type fieldsError struct{ fields map[string][]string }

func (e *fieldsError) Error() string { return fmt.Sprint(e.fields) }

func TestResponderMapsEveryKindOfError(t *testing.T) {
	t.Parallel()
	r := Responder{
		Table: []Mapping{
			{errMissing, Error{Code: CodeNotFound, Detail: "Not found."}},
			{errTaken, Error{Code: CodeConflict, Detail: "Taken."}},
		},
		Translate: func(_ *gin.Context, err error) *Error {
			if fe, ok := errors.AsType[*fieldsError](err); ok {
				return Invalid(fe.fields)
			}
			return nil
		},
	}
	e := NewEngine(EngineOptions{Service: "test"})
	handlers := map[string]Handler{
		"/ok":      func(c *gin.Context) error { c.JSON(http.StatusOK, gin.H{"ok": true}); return nil },
		"/missing": func(*gin.Context) error { return fmt.Errorf("load profile: %w", errMissing) },
		"/taken":   func(*gin.Context) error { return errTaken },
		"/fields": func(*gin.Context) error {
			return &fieldsError{map[string][]string{"city": {"This field is required."}}}
		},
		"/contract": func(*gin.Context) error {
			return fmt.Errorf("create: %w", contract.FieldError("email", "Enter a valid email address."))
		},
		"/web": func(*gin.Context) error {
			return &Error{Code: CodeThrottled, Detail: "slow", RetryAfter: 1100 * time.Millisecond}
		},
		"/deadline": func(*gin.Context) error { return fmt.Errorf("find: %w", context.DeadlineExceeded) },
		"/internal": func(*gin.Context) error { return errors.New("mongo: secret internal text") },
		"/unauth":   func(*gin.Context) error { return Errorf(CodeTokenNotValid, MsgTokenNotValid) },
	}
	for p, h := range handlers {
		e.GET(p, r.Handle(h))
	}
	cases := []struct {
		path, retryAfter, challenge string
		status                      int
		body                        map[string]any
	}{
		{path: "/ok", status: 200, body: map[string]any{"ok": true}},
		{path: "/missing", status: 404, body: map[string]any{"code": "not_found", "detail": "Not found."}},
		{path: "/taken", status: 409, body: map[string]any{"code": "conflict", "detail": "Taken."}},
		{path: "/fields", status: 400, body: map[string]any{"city": []any{"This field is required."}}},
		{path: "/contract", status: 400, body: map[string]any{"email": []any{"Enter a valid email address."}}},
		{path: "/web", status: 429, retryAfter: "2", body: map[string]any{"code": "throttled", "detail": "slow"}},
		{path: "/deadline", status: 503, body: map[string]any{"code": "service_unavailable", "detail": "The request took too long."}},
		{path: "/internal", status: 500, body: map[string]any{"code": "error", "detail": "A server error occurred."}},
		{path: "/unauth", status: 401, challenge: BearerChallenge, body: map[string]any{"code": "token_not_valid", "detail": MsgTokenNotValid}},
	}
	for _, tc := range cases {
		w := do(t, e, "GET", tc.path, "", nil)
		if w.Code != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.path, w.Code, tc.status, w.Body)
			continue
		}
		var got map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("%s: body %q: %v", tc.path, w.Body, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.body) {
			t.Errorf("%s: body %v, want %v", tc.path, got, tc.body)
		}
		if h := w.Header().Get("Retry-After"); h != tc.retryAfter {
			t.Errorf("%s: Retry-After %q, want %q", tc.path, h, tc.retryAfter)
		}
		if h := w.Header().Get("WWW-Authenticate"); h != tc.challenge {
			t.Errorf("%s: WWW-Authenticate %q, want %q", tc.path, h, tc.challenge)
		}
	}
}

func TestSecondsRoundsUp(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]int{0: 0, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 59 * time.Second: 59} {
		if got := Seconds(d); got != want {
			t.Errorf("Seconds(%v) = %d, want %d", d, got, want)
		}
	}
}

// verifierFunc is a TokenVerifier in a function.
type verifierFunc func(string) (*authclient.Claims, error)

func (f verifierFunc) Verify(tok string) (*authclient.Claims, error) { return f(tok) }

func TestBearer(t *testing.T) {
	t.Parallel()
	v := verifierFunc(func(tok string) (*authclient.Claims, error) {
		switch tok {
		case "good":
			return &authclient.Claims{UserID: "u1", Role: "customer"}, nil
		case "machine":
			return &authclient.Claims{UserID: "bff", Role: "service"}, nil
		}
		return nil, authclient.ErrInvalidToken
	})
	admit := func(c *authclient.Claims) *Error {
		if c.Role == "service" {
			return Errorf(CodePermissionDenied, "A service account has no merged view.")
		}
		return nil
	}
	e := NewEngine(EngineOptions{Service: "test"})
	e.GET("/me", Bearer(v, admit), func(c *gin.Context) {
		who, ok := CallerFrom(c.Request.Context())
		if !ok {
			t.Error("no caller in the context of an authenticated route")
		}
		c.JSON(200, gin.H{"user": who.Claims.UserID, "token": who.Token})
	})
	cases := []struct {
		header, code string
		status       int
	}{
		{"", "not_authenticated", 401},
		{"Basic dXNlcjpwYXNz", "not_authenticated", 401},
		{"Bearer ", "not_authenticated", 401},
		{"Bearer forged", "token_not_valid", 401},
		{"Bearer machine", "permission_denied", 403},
		{"Bearer good", "", 200},
		{"bearer good", "", 200},
	}
	for _, tc := range cases {
		hdr := map[string]string{}
		if tc.header != "" {
			hdr["Authorization"] = tc.header
		}
		w := do(t, e, "GET", "/me", "", hdr)
		if w.Code != tc.status {
			t.Errorf("%q: status %d, want %d (%s)", tc.header, w.Code, tc.status, w.Body)
			continue
		}
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if tc.status == 200 {
			if body["user"] != "u1" || body["token"] != "good" {
				t.Errorf("%q: caller %v", tc.header, body)
			}
			continue
		}
		if body["code"] != tc.code {
			t.Errorf("%q: code %v, want %s", tc.header, body["code"], tc.code)
		}
		wantChallenge := ""
		if tc.status == 401 {
			wantChallenge = BearerChallenge
		}
		if h := w.Header().Get("WWW-Authenticate"); h != wantChallenge {
			t.Errorf("%q: WWW-Authenticate %q, want %q", tc.header, h, wantChallenge)
		}
	}
}

func TestDocumentServesTheBytes(t *testing.T) {
	t.Parallel()
	e := NewEngine(EngineOptions{Service: "test"})
	e.GET("/openapi.json", Document([]byte(`{"openapi":"3.0.3"}`)))
	w := do(t, e, "GET", "/openapi.json", "", nil)
	if w.Code != 200 || w.Body.String() != `{"openapi":"3.0.3"}` || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
}
