package authclient_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/acme/customer-platform/auth/httpapi"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/apitest"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

func TestMain(m *testing.M) { os.Exit(systest.Main(m)) }

// apiDocs holds every call of the client to the auth service's OpenAPI document.
var apiDocs = apitest.Docs{apitest.MustLoad("auth", httpapi.OpenAPI())}

const (
	adminEmail = "admin@example.com"
	adminPass  = "Correct-Horse-Battery-9"
	userPass   = "Tr1cky-Wombat-Lantern"
)

// startAuth runs the real auth service in process (systest), with a
// bootstrap admin and env over the harness's settings, and returns its URL.
func startAuth(t *testing.T, env map[string]string) string {
	t.Helper()
	e := map[string]string{"AUTH_BOOTSTRAP_ADMIN_EMAIL": adminEmail, "AUTH_BOOTSTRAP_ADMIN_PASSWORD": adminPass}
	maps.Copy(e, env)
	return systest.Start(t, systest.Options{Services: []string{"auth"}, Env: e}).URL("auth")
}

// result carries a call's two results so a test can demand success inline.
type result[T any] struct {
	v   T
	err error
}

func of[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func TestAgainstTheAuthService(t *testing.T) {
	t.Parallel()
	base := startAuth(t, nil)
	cl := authclient.New(authclient.Options{BaseURL: base, Timeout: 5 * time.Second, Transport: apiDocs.Transport(t, nil)})
	ctx := context.Background()
	v := of(authclient.NewVerifier(authclient.VerifierConfig{Key: []byte(systest.SigningKey)})).must(t)

	reg := of(cl.Register(ctx, authclient.RegisterRequest{Email: "Mia@Example.com", FirstName: "Mia", LastName: "Wong", PhoneNumber: "555 0199", Password1: userPass, Password2: userPass})).must(t)
	if reg.User.Email != "mia@example.com" || reg.User.UserRole != "customer" || reg.User.DateJoined.IsZero() || reg.Tokens.Access == "" || reg.Tokens.Refresh == "" {
		t.Fatalf("register: %+v", reg)
	}
	if c := of(v.Verify(reg.Tokens.Access)).must(t); c.UserID != reg.User.ID {
		t.Fatalf("claims %+v", c)
	}
	_, err := cl.Register(ctx, authclient.RegisterRequest{Email: "MIA@example.com", FirstName: "M", LastName: "W", Password1: "123", Password2: "1234"})
	e := asError(t, err, authclient.ErrValidation)
	if e.Fields["email"][0] != "user with this email already exists." || len(e.Fields["password2"]) != 1 || len(e.Fields["password1"]) == 0 {
		t.Fatalf("register errors: %v", e.Fields)
	}

	login := of(cl.Login(ctx, "mia@example.com", userPass)).must(t)
	if login.User.ID != reg.User.ID {
		t.Fatalf("login user %s", login.User.ID)
	}
	asError(t, firstErr(cl.Login(ctx, "mia@example.com", "nope-nope")), authclient.ErrUnauthorized)

	tk := of(cl.Refresh(ctx, login.Tokens.Refresh)).must(t)
	if tk.Access == "" || tk.Refresh == "" {
		t.Fatalf("refresh: %+v", tk)
	}
	asError(t, firstErr(cl.Refresh(ctx, login.Tokens.Refresh)), authclient.ErrUnauthorized)
	if err := cl.Logout(ctx, tk.Access, tk.Refresh); err != nil {
		t.Fatalf("logout: %v", err)
	}
	asError(t, firstErr(cl.Refresh(ctx, tk.Refresh)), authclient.ErrUnauthorized)

	p := of(cl.Profile(ctx, reg.Tokens.Access)).must(t)
	if p.ID != reg.User.ID || p.PhoneNumber != "555 0199" {
		t.Fatalf("profile %+v", p)
	}
	last := "Wong-Li"
	u := of(cl.UpdateProfile(ctx, reg.Tokens.Access, authclient.ProfileUpdate{LastName: &last})).must(t)
	if u.LastName != "Wong-Li" || u.FirstName != "Mia" {
		t.Fatalf("update %+v", u)
	}
	bad := "nope"
	if e := asError(t, firstErr(cl.UpdateProfile(ctx, reg.Tokens.Access, authclient.ProfileUpdate{Email: &bad})), authclient.ErrValidation); e.Fields["email"] == nil {
		t.Fatalf("bad update: %v", e.Fields)
	}

	// Service account: cached token, staff endpoints.
	st := authclient.NewServiceTokens(cl, "bff", systest.BFFClientSecret)
	svc := of(st.Token(ctx)).must(t)
	if again := of(st.Token(ctx)).must(t); again != svc {
		t.Fatal("service token not cached")
	}
	if c := of(v.Verify(svc)).must(t); c.Role != "service" || c.UserID != "bff" {
		t.Fatalf("service claims %+v", c)
	}
	raw := of(cl.ServiceToken(ctx, "bff", systest.BFFClientSecret)).must(t)
	if time.Until(raw.ExpiresAt) < 4*time.Minute || time.Until(raw.ExpiresAt) > 5*time.Minute+time.Second {
		t.Fatalf("service token expiry %v", raw.ExpiresAt)
	}
	asError(t, firstErr(cl.ServiceToken(ctx, "bff", "wrong")), authclient.ErrUnauthorized)
	asError(t, firstErr(cl.Profile(ctx, svc)), authclient.ErrForbidden)

	if g := of(cl.GetUser(ctx, svc, reg.User.ID)).must(t); g.Email != "mia@example.com" {
		t.Fatalf("get user %+v", g)
	}
	if f := of(cl.FindUserByEmail(ctx, svc, "MIA@example.com")).must(t); f.ID != reg.User.ID {
		t.Fatalf("find %+v", f)
	}
	asError(t, firstErr(cl.FindUserByEmail(ctx, svc, "nobody@example.com")), authclient.ErrNotFound)
	asError(t, firstErr(cl.GetUser(ctx, svc, "00000000-0000-4000-8000-000000000000")), authclient.ErrNotFound)
	asError(t, firstErr(cl.GetUser(ctx, reg.Tokens.Access, reg.User.ID)), authclient.ErrForbidden)

	created := of(cl.CreateUser(ctx, svc, authclient.CreateUserRequest{Email: "imported@example.com", FirstName: "Imp", LastName: "Orted"})).must(t)
	if created.UserRole != "customer" || created.ID == "" {
		t.Fatalf("create %+v", created)
	}
	asError(t, firstErr(cl.Login(ctx, "imported@example.com", "")), authclient.ErrValidation)
	asError(t, firstErr(cl.CreateUser(ctx, svc, authclient.CreateUserRequest{Email: "x@example.com", Role: "admin"})), authclient.ErrForbidden)
	admin := of(cl.Login(ctx, adminEmail, adminPass)).must(t)
	emp := of(cl.CreateUser(ctx, admin.Tokens.Access, authclient.CreateUserRequest{Email: "emp@example.com", Role: "employee", Password: userPass})).must(t)
	if emp.UserRole != "employee" {
		t.Fatalf("employee %+v", emp)
	}
	if err := cl.DeleteUser(ctx, svc, created.ID); err != nil {
		t.Fatal(err)
	}
	asError(t, cl.DeleteUser(ctx, svc, created.ID), authclient.ErrNotFound)

	if err := cl.DeleteSelf(ctx, reg.Tokens.Access); err != nil {
		t.Fatal(err)
	}
	asError(t, firstErr(cl.GetUser(ctx, svc, reg.User.ID)), authclient.ErrNotFound)
}

func TestRateLimitedAgainstTheAuthService(t *testing.T) {
	t.Parallel()
	base := startAuth(t, map[string]string{"AUTH_RATE_LIMITS": "login=2/1m"})
	cl := authclient.New(authclient.Options{BaseURL: base, Transport: apiDocs.Transport(t, nil)})
	ctx := context.Background()
	for range 2 {
		_, _ = cl.Login(ctx, "x@example.com", "whatever-pw")
	}
	_, err := cl.Login(ctx, "x@example.com", "whatever-pw")
	e := asError(t, err, authclient.ErrRateLimited)
	if e.RetryAfter < time.Second || e.RetryAfter > time.Minute {
		t.Fatalf("RetryAfter %s", e.RetryAfter)
	}
	if errors.Is(err, authclient.ErrUnavailable) {
		t.Fatal("rate limited reported as unavailable")
	}
}
