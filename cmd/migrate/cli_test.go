package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer/legacy"
	"github.com/acme/customer-platform/internal/config"
)

func cliRun(args []string, vars map[string]string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, env{lookup: config.FromMap(vars), stdout: &out, stderr: &errOut})
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	t.Parallel()
	secret := map[string]string{"MIGRATE_CLIENT_SECRET": "s"}
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		code int
		want string // in stdout+stderr
	}{
		{"no command", nil, nil, exitUsage, "usage: migrate"},
		{"help", []string{"help"}, nil, exitOK, "Exit codes"},
		{"flag help", []string{"plan", "-h"}, nil, exitOK, "-accept-partial-address"},
		{"unknown command", []string{"migrate-everything"}, nil, exitUsage, `unknown command "migrate-everything"`},
		{"plan without input", []string{"plan", "--report", "r.json"}, secret, exitUsage, "--input is required"},
		{"apply without report", []string{"apply", "--input", "x.json"}, secret, exitUsage, "--report is required"},
		{"backup without out", []string{"backup"}, nil, exitUsage, "--out is required"},
		{"unknown flag", []string{"verify", "--input", "x", "--create-missing-users"}, secret, exitUsage, "flag provided but not defined"},
		{"stray argument", []string{"plan", "--input", "x", "--report", "y", "extra"}, secret, exitUsage, "unexpected arguments"},
		{"restore unconfirmed", []string{"restore", "--in", "b.json"}, nil, exitUsage, "add --yes"},
		{"no secret", []string{"plan", "--input", "x", "--report", "y"}, nil, exitUsage, "MIGRATE_CLIENT_SECRET is required"},
		{"bad config", []string{"plan", "--input", "x", "--report", "y"}, map[string]string{"MIGRATE_CLIENT_SECRET": "s", "MIGRATE_LOOKUPS": "0", "AUTH_URL": "nope"}, exitUsage, "MIGRATE_LOOKUPS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := cliRun(tc.args, tc.vars)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d (want %d)\nstdout: %s\nstderr: %s\nwant %q", code, tc.code, out, errOut, tc.want)
			}
		})
	}
}

func TestConfigDefaultsAndSecrets(t *testing.T) {
	t.Parallel()
	c, err := LoadConfig(config.FromMap(map[string]string{"MIGRATE_CLIENT_SECRET": "hunter2", "MONGODB_URI": "mongodb://u:pw@db/"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.CustomerDB != "customers" || c.AuthURL != "http://127.0.0.1:8001" || c.ClientID != "migrate" || c.BatchSize != 500 || c.Lookups != 8 {
		t.Errorf("defaults: %+v", c)
	}
	b, _ := json.Marshal(c)
	if strings.Contains(string(b), "hunter2") || strings.Contains(string(b), "pw@") {
		t.Errorf("secrets in the logged config: %s", b)
	}
}

func TestAuthServiceUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there any more
	code, _, errOut := cliRun([]string{"plan", "--input", "x.json", "--report", t.TempDir() + "/r.json"},
		map[string]string{"MIGRATE_CLIENT_SECRET": "s", "AUTH_URL": srv.URL, "AUTH_TIMEOUT": "300ms"})
	if code != exitFailure || !strings.Contains(errOut, "sign in to the auth service") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// fakeAuth is an auth service speaking the contract for the adapter tests.
type fakeAuth struct {
	tokens   atomic.Int32
	rejectOf string // the token the service refuses once
	handler  func(w http.ResponseWriter, r *http.Request)
}

func (f *fakeAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/api/auth/token/service/" {
		n := f.tokens.Add(1)
		exp := time.Now().Add(time.Hour).Unix()
		payload := b64(`{"exp":` + itoa(exp) + `}`)
		_ = json.NewEncoder(w).Encode(map[string]any{"access": "h." + payload + ".sig" + itoa(int64(n))})
		return
	}
	if f.rejectOf != "" && r.Header.Get("Authorization") == "Bearer "+f.rejectOf {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"detail": "Given token not valid for any token type", "code": "token_not_valid"}`))
		return
	}
	f.handler(w, r)
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func newDirectory(t *testing.T, f *fakeAuth) authDirectory {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cl := authclient.New(authclient.Options{BaseURL: srv.URL, Timeout: 2 * time.Second})
	return authDirectory{client: cl, tokens: authclient.NewServiceTokens(cl, "migrate", "s")}
}

func TestDirectoryLookups(t *testing.T) {
	t.Parallel()
	users := map[string]string{"ada@example.com": "8b7f3c1e-55a0-4c44-9d1e-2f0b7c7c0a01"}
	f := &fakeAuth{handler: func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/auth/users/":
			email := r.URL.Query().Get("email")
			var results []map[string]any
			if id, ok := users[strings.ToLower(email)]; ok {
				results = append(results, map[string]any{"id": id, "email": strings.ToLower(email)})
			}
			if email == "loose@example.com" { // a directory that matches loosely
				results = append(results, map[string]any{"id": "x", "email": "someone.else@example.com"})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"count": len(results), "results": results})
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/auth/users/"):
			if strings.Contains(r.URL.Path, users["ada@example.com"]) {
				_ = json.NewEncoder(w).Encode(map[string]any{"id": users["ada@example.com"], "email": "ada@example.com"})
				return
			}
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"detail": "Not found.", "code": "not_found"}`))
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}}
	d := newDirectory(t, f)
	ctx := context.Background()
	// The first token is refused once (expired): the adapter fetches a new one.
	first, err := d.tokens.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.rejectOf = first
	u, found, err := d.FindUserByEmail(ctx, "ada@example.com")
	if err != nil || !found || u.ID != users["ada@example.com"] || f.tokens.Load() != 2 {
		t.Fatalf("find: %+v %v %v (tokens fetched %d)", u, found, err, f.tokens.Load())
	}
	if _, found, err := d.FindUserByEmail(ctx, "nobody@example.com"); found || err != nil {
		t.Errorf("unknown email: %v %v", found, err)
	}
	if _, found, err := d.FindUserByEmail(ctx, "loose@example.com"); found || err != nil {
		t.Errorf("a loose match was taken: %v %v", found, err)
	}
	if u, ok, err := d.UserByID(ctx, users["ada@example.com"]); !ok || err != nil || u.Email != "ada@example.com" {
		t.Errorf("by id: %+v %v %v", u, ok, err)
	}
	if _, ok, err := d.UserByID(ctx, "0b7f3c1e-55a0-4c44-9d1e-2f0b7c7c0a01"); ok || err != nil {
		t.Errorf("missing user: %v %v", ok, err)
	}
}

func TestDirectoryCreateUser(t *testing.T) {
	t.Parallel()
	var bodies []map[string]any
	f := &fakeAuth{handler: func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		bodies = append(bodies, body)
		switch body["email"] {
		case "taken@example.com":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"email": ["user with this email already exists."]}`))
		case "badphone@example.com":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"phone_number": ["Enter a valid phone number."], "first_name": ["This field may not be blank."]}`))
		case "down@example.com":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{"id": "8b7f3c1e-55a0-4c44-9d1e-2f0b7c7c0a02", "email": body["email"]})
		}
	}}
	d := newDirectory(t, f)
	ctx := context.Background()
	u, err := d.CreateUser(ctx, legacy.NewUser{Email: "new@example.com", FirstName: "N", LastName: "U", PhoneNumber: "555-0100"})
	if err != nil || u.ID == "" {
		t.Fatalf("create: %+v %v", u, err)
	}
	if _, has := bodies[0]["password"]; has || bodies[0]["phone_number"] != "555-0100" {
		t.Errorf("the created user must have no password: %v", bodies[0])
	}
	if _, err := d.CreateUser(ctx, legacy.NewUser{Email: "taken@example.com"}); !errors.Is(err, legacy.ErrUserExists) {
		t.Errorf("taken: %v", err)
	}
	_, err = d.CreateUser(ctx, legacy.NewUser{Email: "badphone@example.com"})
	if !errors.Is(err, legacy.ErrUserRejected) || !strings.Contains(err.Error(), "first_name: This field may not be blank.; phone_number: Enter a valid phone number.") {
		t.Errorf("rejected: %v", err)
	}
	if _, err := d.CreateUser(ctx, legacy.NewUser{Email: "down@example.com"}); err == nil || errors.Is(err, legacy.ErrUserRejected) {
		t.Errorf("an unavailable service must stop the run, got %v", err)
	}
}

// TestDirectoryListsCustomerPages: the adapter walks the listing by the
// after of each next link, asks for customers at the page size given
// (capped at the listing's 500), keeps ids and join dates only, renews a
// refused token, and an auth service without the listing (400 wanting an
// email, as a Django one answers) is authclient.ErrListingUnsupported.
func TestDirectoryListsCustomerPages(t *testing.T) {
	t.Parallel()
	ids := []string{"0a", "1b", "2c", "3d", "4e"}
	joined := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	var queries []string
	f := &fakeAuth{handler: func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		queries = append(queries, q.Encode())
		if q.Get("user_role") != "customer" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"email": ["This field is required."]}`))
			return
		}
		size, _ := strconv.Atoi(q.Get("page_size"))
		size = min(size, 2) // the service's own cap, below the one asked
		var page []map[string]any
		for _, id := range ids {
			if id > q.Get("after") && len(page) < size {
				page = append(page, map[string]any{"id": id, "email": id + "@example.com", "user_role": "customer", "date_joined": joined})
			}
		}
		if q.Get("after") == "" { // a listing that ignores user_role for staff
			page = append(page[:1], map[string]any{"id": "0b", "user_role": "employee", "date_joined": joined}, page[1])
		}
		var next any
		if last := page[len(page)-1]["id"].(string); last != ids[len(ids)-1] {
			next = "http://auth.example/api/auth/users/?after=" + last + "&page_size=2&user_role=customer"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"next": next, "results": page})
	}}
	d := newDirectory(t, f)
	ctx := context.Background()
	first, err := d.tokens.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.rejectOf = first
	var got []authUser
	err = d.EachCustomerPage(ctx, 900, func(us []authUser) error {
		got = append(got, us...)
		return nil
	})
	var gotIDs []string
	for _, u := range got {
		gotIDs = append(gotIDs, u.ID)
		if !u.DateJoined.Equal(joined) {
			t.Errorf("user %s joined %v", u.ID, u.DateJoined)
		}
	}
	if err != nil || !slices.Equal(gotIDs, ids) || f.tokens.Load() != 2 {
		t.Fatalf("listed %v, %v (tokens fetched %d)", gotIDs, err, f.tokens.Load())
	}
	want := []string{"page_size=500&user_role=customer", "after=1b&page_size=500&user_role=customer", "after=3d&page_size=500&user_role=customer"}
	if !slices.Equal(queries, want) {
		t.Errorf("queries %q, want %q", queries, want)
	}

	django := newDirectory(t, &fakeAuth{handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"email": ["This field is required."]}`))
	}})
	err = django.EachCustomerPage(ctx, 10, func([]authUser) error { return nil })
	if !errors.Is(err, authclient.ErrListingUnsupported) {
		t.Errorf("without the listing: %v, want ErrListingUnsupported", err)
	}
}
