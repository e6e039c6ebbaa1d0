package authclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/authclient"
)

// django answers like a Django + DRF service would, per path.
func django(t *testing.T, h http.HandlerFunc) (*authclient.Client, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return authclient.New(authclient.Options{BaseURL: srv.URL, Timeout: 2 * time.Second}), &calls
}

func answer(status int, contentType, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func asError(t *testing.T, err error, kind error) *authclient.Error {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want kind %v", err, kind)
	}
	e, ok := errors.AsType[*authclient.Error](err)
	if !ok {
		t.Fatalf("err %T is not *authclient.Error", err)
	}
	return e
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	cl, _ := django(t, answer(404, "text/html", "<!DOCTYPE html><html><body><h1>Not Found</h1></body></html>"))
	asError(t, firstErr(cl.GetUser(ctx, "tok", uid)), authclient.ErrNotFound)

	cl, _ = django(t, answer(401, "application/json", `{"detail":"Given token not valid for any token type","code":"token_not_valid","messages":[{"token_class":"AccessToken"}]}`))
	e := asError(t, firstErr(cl.Profile(ctx, "tok")), authclient.ErrUnauthorized)
	if e.Code != "token_not_valid" || e.Detail != "Given token not valid for any token type" || e.Status != 401 {
		t.Fatalf("401: %+v", e)
	}

	cl, _ = django(t, answer(403, "application/json", `{"detail":"You do not have permission to perform this action."}`))
	asError(t, firstErr(cl.GetUser(ctx, "tok", uid)), authclient.ErrForbidden)

	fields := `{"email":["user with this email already exists."],"password1":["This password is too short. It must contain at least 8 characters.","This password is too common."]}`
	cl, _ = django(t, answer(400, "application/json", fields))
	e = asError(t, firstErr(cl.Register(ctx, authclient.RegisterRequest{Email: "a@example.com"})), authclient.ErrValidation)
	if len(e.Fields) != 2 || e.Fields["email"][0] != "user with this email already exists." || len(e.Fields["password1"]) != 2 {
		t.Fatalf("fields not kept verbatim: %v", e.Fields)
	}

	cl, _ = django(t, answer(400, "application/json", `{"detail":"JSON parse error - Expecting value"}`))
	e = asError(t, firstErr(cl.Login(ctx, "a@example.com", "pw")), authclient.ErrValidation)
	if e.Fields["non_field_errors"][0] != "JSON parse error - Expecting value" {
		t.Fatalf("detail-only 400: %v", e.Fields)
	}

	cl, _ = django(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		answer(429, "application/json", `{"detail":"Request was throttled. Expected available in 7 seconds."}`)(w, nil)
	})
	e = asError(t, firstErr(cl.Login(ctx, "a@example.com", "pw")), authclient.ErrRateLimited)
	if e.RetryAfter != 7*time.Second {
		t.Fatalf("RetryAfter %s", e.RetryAfter)
	}

	cl, _ = django(t, answer(409, "application/json", `{"detail":"conflict","code":"conflict"}`))
	asError(t, firstErr(cl.CreateUser(ctx, "tok", authclient.CreateUserRequest{Email: "a@example.com"})), authclient.ErrConflict)

	cl, _ = django(t, answer(500, "", ""))
	asError(t, firstErr(cl.Login(ctx, "a@example.com", "pw")), authclient.ErrUnavailable)

	cl, _ = django(t, answer(502, "text/html", "<html>Bad Gateway</html>"))
	asError(t, firstErr(cl.Register(ctx, authclient.RegisterRequest{})), authclient.ErrUnavailable)

	// A 2xx that is not the expected JSON is an error, not a zero value.
	cl, _ = django(t, answer(200, "text/html", "<html>maintenance</html>"))
	asError(t, firstErr(cl.Login(ctx, "a@example.com", "pw")), authclient.ErrUnavailable)
	cl, _ = django(t, answer(200, "application/json", ""))
	asError(t, firstErr(cl.Profile(ctx, "tok")), authclient.ErrUnavailable)
}

func firstErr[T any](_ T, err error) error { return err }

func TestHugeAnswerIsAnError(t *testing.T) {
	t.Parallel()
	huge := `{"id":"` + strings.Repeat("x", 3<<20) + `"}`
	cl, calls := django(t, answer(200, "application/json", huge))
	e := asError(t, firstErr(cl.Profile(context.Background(), "tok")), authclient.ErrUnavailable)
	if !strings.Contains(e.Error(), "too large") {
		t.Fatalf("huge answer: %v", e)
	}
	if calls.Load() != 3 {
		t.Fatalf("GET attempts %d, want 3 (unavailable answers are retried)", calls.Load())
	}
	cl, _ = django(t, answer(400, "application/json", huge))
	asError(t, firstErr(cl.Login(context.Background(), "a@example.com", "pw")), authclient.ErrUnavailable)
}

func TestSlowAnswerTimesOut(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	cl, _ := django(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	e := asError(t, firstErr(cl.Login(ctx, "a@example.com", "pw")), authclient.ErrUnavailable)
	if !errors.Is(e, context.DeadlineExceeded) {
		t.Fatalf("slow answer: %v, want a deadline error underneath", e)
	}
}

func TestClosedConnection(t *testing.T) {
	t.Parallel()
	cl, calls := django(t, func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	asError(t, firstErr(cl.Register(context.Background(), authclient.RegisterRequest{})), authclient.ErrUnavailable)
	if n := calls.Load(); n != 1 {
		t.Fatalf("register attempted %d times, want exactly 1 (never retried)", n)
	}
	calls.Store(0)
	asError(t, firstErr(cl.GetUser(context.Background(), "tok", uid)), authclient.ErrUnavailable)
	if n := calls.Load(); n != 3 {
		t.Fatalf("GET attempted %d times, want 3", n)
	}
}

func TestRetriesOnlyIdempotentCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	unavailable := answer(503, "application/json", `{"detail":"busy","code":"service_unavailable"}`)
	for name, c := range map[string]struct {
		call func(*authclient.Client) error
		want int32
	}{
		"register": {func(cl *authclient.Client) error { return firstErr(cl.Register(ctx, authclient.RegisterRequest{})) }, 1},
		"login":    {func(cl *authclient.Client) error { return firstErr(cl.Login(ctx, "a", "b")) }, 1},
		"refresh":  {func(cl *authclient.Client) error { return firstErr(cl.Refresh(ctx, "r")) }, 1},
		"create user": {func(cl *authclient.Client) error {
			return firstErr(cl.CreateUser(ctx, "t", authclient.CreateUserRequest{}))
		}, 1},
		"update": {func(cl *authclient.Client) error {
			return firstErr(cl.UpdateProfile(ctx, "t", authclient.ProfileUpdate{}))
		}, 1},
		"logout":       {func(cl *authclient.Client) error { return cl.Logout(ctx, "t", "r") }, 1},
		"service":      {func(cl *authclient.Client) error { return firstErr(cl.ServiceToken(ctx, "bff", "s")) }, 1},
		"profile":      {func(cl *authclient.Client) error { return firstErr(cl.Profile(ctx, "t")) }, 3},
		"get user":     {func(cl *authclient.Client) error { return firstErr(cl.GetUser(ctx, "t", uid)) }, 3},
		"find by mail": {func(cl *authclient.Client) error { return firstErr(cl.FindUserByEmail(ctx, "t", "a@example.com")) }, 3},
		"delete user":  {func(cl *authclient.Client) error { return cl.DeleteUser(ctx, "t", uid) }, 3},
		"delete self":  {func(cl *authclient.Client) error { return cl.DeleteSelf(ctx, "t") }, 3},
	} {
		cl, calls := django(t, unavailable)
		if err := c.call(cl); !errors.Is(err, authclient.ErrUnavailable) {
			t.Errorf("%s: %v", name, err)
		}
		if calls.Load() != c.want {
			t.Errorf("%s: %d attempts, want %d", name, calls.Load(), c.want)
		}
	}
	// 4xx answers are final even for GET.
	cl, calls := django(t, answer(404, "application/json", `{"detail":"Not found."}`))
	_, _ = cl.GetUser(ctx, "t", uid)
	if calls.Load() != 1 {
		t.Fatalf("a 404 was retried (%d attempts)", calls.Load())
	}
}

func TestDeleteRetryFindingItGoneSucceeds(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	cl, _ := django(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			answer(503, "", "")(w, r) // the first attempt did the work but the answer was lost
			return
		}
		answer(404, "application/json", `{"detail":"Not found.","code":"not_found"}`)(w, r)
	})
	if err := cl.DeleteUser(context.Background(), "t", uid); err != nil {
		t.Fatalf("delete whose retry found it gone: %v", err)
	}
	// A first-attempt 404 is a real not-found.
	cl, _ = django(t, answer(404, "application/json", `{"detail":"Not found."}`))
	asError(t, cl.DeleteUser(context.Background(), "t", uid), authclient.ErrNotFound)
}

func TestAnswerShapes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl, _ := django(t, answer(200, "application/json", `{"access":"a1"}`))
	tk, err := cl.Refresh(ctx, "r")
	if err != nil || tk.Access != "a1" || tk.Refresh != "" {
		t.Fatalf("access-only refresh: %+v %v", tk, err)
	}
	cl, _ = django(t, answer(200, "application/json", `{"access":"a2","refresh":"r2"}`))
	if tk, err := cl.Refresh(ctx, "r"); err != nil || tk.Access != "a2" || tk.Refresh != "r2" {
		t.Fatalf("rotating refresh: %+v %v", tk, err)
	}
	cl, _ = django(t, answer(200, "application/json", `{"id":42,"email":"old@example.com","user_role":"customer","tokens":{"access":"a","refresh":"r"}}`))
	s, err := cl.Login(ctx, "old@example.com", "pw")
	if err != nil || s.User.ID != "42" || s.User.Email != "old@example.com" || s.Tokens.Access != "a" || s.Tokens.Refresh != "r" {
		t.Fatalf("numeric id session: %+v %v", s, err)
	}
	cl, calls := django(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("email") != "a+b@example.com" || r.Header.Get("Authorization") != "Bearer st" {
			t.Errorf("find request: %s %v", r.URL, r.Header)
		}
		answer(200, "application/json", `{"count":0,"results":[]}`)(w, r)
	})
	asError(t, firstErr(cl.FindUserByEmail(ctx, "st", "a+b@example.com")), authclient.ErrNotFound)
	if calls.Load() != 1 {
		t.Fatalf("an empty result was retried")
	}
}

// TestListUsers: ListUsers follows the pages by the after of each next
// link (not the link's host), with the role and size asked; a service
// whose users/ wants an email, or pages without after, has no listing.
func TestListUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ids := []string{"00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002", "00000000-0000-4000-8000-000000000003"}
	var queries []string
	cl, _ := django(t, func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("after") {
		case "":
			_, _ = w.Write([]byte(`{"next":"http://internal.example:8001/api/auth/users/?after=` + ids[1] + `&page_size=2&user_role=customer","results":[{"id":"` + ids[0] + `"},{"id":"` + ids[1] + `"}]}`))
		case ids[1]:
			_, _ = w.Write([]byte(`{"next":null,"results":[{"id":"` + ids[2] + `"}]}`))
		default:
			t.Errorf("unexpected query %s", r.URL.RawQuery)
		}
	})
	var got []string
	r := authclient.ListUsersRequest{Role: "customer", PageSize: 2}
	first, err := cl.ListUsers(ctx, "tok", r)
	if err != nil {
		t.Fatalf("first page: %v", err)
	}
	if first.Next != ids[1] {
		t.Fatalf("first page's next %q, want %q", first.Next, ids[1])
	}
	r.After = first.Next
	last, err := cl.ListUsers(ctx, "tok", r)
	if err != nil {
		t.Fatalf("last page: %v", err)
	}
	if last.Next != "" {
		t.Fatalf("last page's next %q, want none", last.Next)
	}
	for _, u := range append(first.Users, last.Users...) {
		got = append(got, u.ID)
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("listed %v, want %v", got, ids)
	}
	if len(queries) != 2 || queries[0] != "page_size=2&user_role=customer" || queries[1] != "after="+ids[1]+"&page_size=2&user_role=customer" {
		t.Fatalf("queries %v", queries)
	}

	for name, h := range map[string]http.HandlerFunc{
		"email required": answer(400, "application/json", `{"email":["This field is required."]}`),
		"no route":       answer(404, "text/html", "<h1>Not Found</h1>"),
		"page numbers":   answer(200, "application/json", `{"count":3,"next":"http://a/api/auth/users/?page=2","previous":null,"results":[{"id":"`+ids[0]+`"}]}`),
		"a bare list":    answer(200, "application/json", `{"count":1,"results":[]}`),
	} {
		cl, _ := django(t, h)
		if _, err := cl.ListUsers(ctx, "tok", authclient.ListUsersRequest{}); !errors.Is(err, authclient.ErrListingUnsupported) {
			t.Errorf("%s: %v, want ErrListingUnsupported", name, err)
		}
	}
}
