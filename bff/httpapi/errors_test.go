package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/web"
)

// TestResponder holds the BFF's one error path to the contract: every kind
// of error the bff package returns, its status, body and headers, and which
// causes are logged (those of 5xx answers), never sent.
func TestResponder(t *testing.T) {
	t.Parallel()
	down := &bff.UpstreamError{Service: bff.ServiceCustomer, Kind: bff.ErrUpstreamUnavailable, Err: errors.New("dial tcp 10.0.0.7:8002: refused")}
	for _, tc := range []struct {
		name    string
		err     error
		status  int
		body    string
		header  map[string]string
		logged  string // a substring of the log line; "" when nothing is logged
		private string // text that must not reach the client
	}{
		{name: "validation", err: bff.Invalid(map[string][]string{"email": {"Enter a valid email address."}}),
			status: 400, body: `{"email":["Enter a valid email address."]}`},
		{name: "key reused", err: &bff.Error{Code: bff.CodeKeyReused, Detail: "Another body."},
			status: 422, body: `{"code":"idempotency_key_reused","detail":"Another body."}`},
		{name: "key in flight", err: &bff.Error{Code: bff.CodeKeyInFlight, Detail: "Still running.", RetryAfter: 1500 * time.Millisecond},
			status: 409, body: `{"code":"idempotency_key_in_use","detail":"Still running."}`, header: map[string]string{"Retry-After": "2"}},
		{name: "store down", err: &bff.Error{Code: bff.CodeStoreUnavailable, Detail: "Try again.", Cause: errors.New("mongo: socket closed")},
			status: 503, body: `{"code":"service_unavailable","detail":"Try again."}`, logged: "mongo: socket closed", private: "socket"},
		{name: "store busy", err: &bff.Error{Code: bff.CodeStoreUnavailable, Detail: "Try again.", RetryAfter: time.Second, Cause: bff.ErrStoreBusy},
			status: 503, body: `{"code":"service_unavailable","detail":"Try again."}`, header: map[string]string{"Retry-After": "1"},
			logged: "busy", private: "slot"},
		{name: "registration failed, service refused", err: &bff.Error{Code: bff.CodeRegistrationFailed, Detail: "No.", Extra: map[string]any{"compensated": true},
			Cause: &bff.UpstreamError{Service: bff.ServiceCustomer, Kind: bff.ErrUpstreamConflict}},
			status: 409, body: `{"code":"registration_failed","compensated":true,"detail":"No."}`},
		{name: "registration failed, service down", err: &bff.Error{Code: bff.CodeRegistrationFailed, Detail: "Down.", Cause: down},
			status: 503, body: `{"code":"registration_failed","detail":"Down."}`, logged: "10.0.0.7", private: "10.0.0.7"},
		{name: "partial update", err: &bff.Error{Code: bff.CodePartialUpdate, Detail: "Half.",
			Cause: &bff.UpstreamError{Service: bff.ServiceAuth, Kind: bff.ErrUpstreamThrottled}},
			status: 429, body: `{"code":"partial_update","detail":"Half."}`},
		{name: "unknown code", err: &bff.Error{Code: "mystery", Detail: "internal words"},
			status: 500, body: `{"code":"error","detail":"A server error occurred."}`, logged: "mystery", private: "internal words"},
		{name: "upstream field errors", err: fmt.Errorf("register: %w", &bff.UpstreamError{Service: bff.ServiceAuth, Kind: bff.ErrUpstreamInvalid, Fields: map[string][]string{"email": {"taken"}}}),
			status: 400, body: `{"email":["taken"]}`},
		{name: "upstream refusal with its code", err: &bff.UpstreamError{Service: bff.ServiceAuth, Kind: bff.ErrUpstreamUnauthorized, Code: "no_active_account", Detail: "No account."},
			status: 401, body: `{"code":"no_active_account","detail":"No account."}`, header: map[string]string{"WWW-Authenticate": web.BearerChallenge}},
		{name: "upstream refusal without detail", err: &bff.UpstreamError{Service: bff.ServiceCustomer, Kind: bff.ErrUpstreamNotFound},
			status: 404, body: `{"code":"not_found","detail":"Not Found."}`},
		{name: "upstream throttled", err: &bff.UpstreamError{Service: bff.ServiceAuth, Kind: bff.ErrUpstreamThrottled, Detail: "Slow down.", RetryAfter: 2 * time.Second},
			status: 429, body: `{"code":"throttled","detail":"Slow down."}`, header: map[string]string{"Retry-After": "2"}},
		{name: "upstream down", err: fmt.Errorf("load user: %w", down),
			status: 503, body: `{"code":"upstream_unavailable","detail":"The customer service is unavailable. Please try again."}`, logged: "10.0.0.7", private: "10.0.0.7"},
		{name: "view mismatch", err: fmt.Errorf("load user: %w", bff.ErrViewMismatch),
			status: 502, body: `{"code":"upstream_unavailable","detail":"An upstream service answered with an unexpected document."}`, logged: "another user", private: "another user"},
		{name: "unknown error", err: errors.New("nil map in handler"),
			status: 500, body: `{"code":"error","detail":"A server error occurred."}`, logged: "nil map", private: "nil map"},
		{name: "deadline", err: fmt.Errorf("view: %w", context.DeadlineExceeded),
			status: 503, body: `{"code":"service_unavailable","detail":"The request took too long."}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs testenv.LogBuffer
			e := web.NewEngine(web.EngineOptions{Service: "bff-test", Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			e.GET("/x", newResponder().Handle(func(*gin.Context) error { return tc.err }))
			w := httptest.NewRecorder()
			e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
			if w.Code != tc.status {
				t.Errorf("status %d, want %d (%s)", w.Code, tc.status, w.Body)
			}
			if got, want := compact(t, w.Body.String()), compact(t, tc.body); got != want {
				t.Errorf("body %s, want %s", got, want)
			}
			for k, v := range tc.header {
				if w.Header().Get(k) != v {
					t.Errorf("%s: %q, want %q", k, w.Header().Get(k), v)
				}
			}
			if tc.header["Retry-After"] == "" && w.Header().Get("Retry-After") != "" {
				t.Errorf("unexpected Retry-After %q", w.Header().Get("Retry-After"))
			}
			if tc.private != "" && strings.Contains(w.Body.String(), tc.private) {
				t.Errorf("the answer leaks %q: %s", tc.private, w.Body)
			}
			// The access log line always names the request; only a cause
			// logged by the responder (or web.Respond) carries "error".
			if causes := errorLines(logs.String()); tc.logged == "" && len(causes) != 0 {
				t.Errorf("logged a cause: %v", causes)
			} else if tc.logged != "" && (len(causes) != 1 || !strings.Contains(causes[0], tc.logged)) {
				t.Errorf("want one log line with %q, got %v", tc.logged, causes)
			}
		})
	}
}

// errorLines are the log lines that carry an "error" attribute.
func errorLines(logs string) []string {
	var out []string
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["error"] != nil {
			out = append(out, line)
		}
	}
	return out
}

// compact is the JSON document s with its members sorted.
func compact(t *testing.T, s string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("body %q: %v", s, err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
