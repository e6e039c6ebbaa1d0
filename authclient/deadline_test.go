package authclient_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestRegisterSendsTheDeadlineAsAHeader: Deadline travels as the
// Registration-Deadline header, RFC 3339 in UTC with milliseconds
// (truncated: never later than the caller's deadline); without one no
// header is sent.
func TestRegisterSendsTheDeadlineAsAHeader(t *testing.T) {
	t.Parallel()
	got := make(chan []string, 1)
	cl, _ := django(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Values("Registration-Deadline")
		answer(201, "application/json", `{"id":"u1","email":"a@example.com","user_role":"customer","tokens":{"access":"a","refresh":"r"}}`)(w, r)
	})
	ctx := context.Background()
	deadline := time.Date(2026, 1, 2, 15, 4, 5, 123987654, time.FixedZone("", 2*3600))
	req := authclient.RegisterRequest{Email: "a@example.com", FirstName: "A", LastName: "B", Password1: "pw", Password2: "pw", Deadline: deadline}
	if _, err := cl.Register(ctx, req); err != nil {
		t.Fatal(err)
	}
	if sent := <-got; len(sent) != 1 || sent[0] != "2026-01-02T13:04:05.123Z" {
		t.Fatalf("Registration-Deadline %q, want [2026-01-02T13:04:05.123Z]", sent)
	}
	req.Deadline = time.Time{}
	if _, err := cl.Register(ctx, req); err != nil {
		t.Fatal(err)
	}
	if sent := <-got; sent != nil {
		t.Fatalf("a register without a deadline sent %q", sent)
	}
}

// TestRegisterDeadlineAgainstTheAuthService: a register whose deadline has
// passed when the auth service would insert the user creates nothing and
// fails with a DeadlineExceeded error; one in time registers.
func TestRegisterDeadlineAgainstTheAuthService(t *testing.T) {
	t.Parallel()
	base := startAuth(t, nil)
	cl := authclient.New(authclient.Options{BaseURL: base, Timeout: 5 * time.Second, Transport: apiDocs.Transport(t, nil)})
	ctx := context.Background()
	svc := of(authclient.NewServiceTokens(cl, systest.BFFClientID, systest.BFFClientSecret).Token(ctx)).must(t)

	req := authclient.RegisterRequest{Email: "dee@example.com", FirstName: "Dee", LastName: "Line", Password1: userPass, Password2: userPass,
		RegistrationKey: "saga-late", Deadline: time.Now().Add(-time.Second)}
	err := firstErr(cl.Register(ctx, req))
	e := asError(t, err, authclient.ErrUnavailable)
	if !authclient.DeadlineExceeded(err) || e.Status != http.StatusServiceUnavailable || e.Code != authclient.CodeDeadlineExceeded {
		t.Fatalf("a register past its deadline: %v", err)
	}
	asError(t, firstErr(cl.FindUserByEmail(ctx, svc, "dee@example.com")), authclient.ErrNotFound)

	req.Deadline = time.Now().Add(time.Minute)
	reg := of(cl.Register(ctx, req)).must(t)
	if u := of(cl.FindUserByEmail(ctx, svc, "dee@example.com")).must(t); u.ID != reg.User.ID {
		t.Fatalf("the register in time: %+v", u)
	}
	if authclient.DeadlineExceeded(nil) || authclient.DeadlineExceeded(context.DeadlineExceeded) {
		t.Fatal("DeadlineExceeded of an error that is not the auth service's refusal")
	}
}
