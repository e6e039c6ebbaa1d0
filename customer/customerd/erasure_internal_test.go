package customerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"testing"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/contract"
)

// fakeEraser is an eraser with a function field.
type fakeEraser struct {
	fn func(ctx context.Context, a customer.Actor, userID string) (bool, error)
}

var _ eraser = (*fakeEraser)(nil)

func (f *fakeEraser) EraseUser(ctx context.Context, a customer.Actor, userID string) (bool, error) {
	return f.fn(ctx, a, userID)
}

// fakeTokens is a tokenSource with a function field, remembering the
// tokens invalidated.
type fakeTokens struct {
	fn          func(ctx context.Context) (string, error)
	invalidated []string
}

var _ tokenSource = (*fakeTokens)(nil)

func (f *fakeTokens) Token(ctx context.Context) (string, error) { return f.fn(ctx) }
func (f *fakeTokens) ClientID() string                          { return "customer" }
func (f *fakeTokens) Invalidate(tok string)                     { f.invalidated = append(f.invalidated, tok) }

// TestErasureHandle: what the handler returns decides the event's fate:
// nil acks it, ErrReject parks it at once, anything else has it delivered
// again. A user still at the auth service and an invalid id are parked; a
// failure to ask (no token, auth or database down) is retried; erased or
// nothing to erase is done.
func TestErasureHandle(t *testing.T) {
	t.Parallel()
	userID := contract.NewID()
	cases := []struct {
		name       string
		event      changefeed.Event
		token      error
		erase      func() (bool, error)
		wantReject bool
		wantErr    bool
		wantCalled bool
		wantDrop   bool // the service token is dropped
	}{
		{name: "erased", event: changefeed.Event{Topic: changefeed.UserDeleted, UserID: userID},
			erase: func() (bool, error) { return true, nil }, wantCalled: true},
		{name: "nothing left (a second delivery)", event: changefeed.Event{Topic: changefeed.UserDeleted, UserID: userID},
			erase: func() (bool, error) { return false, nil }, wantCalled: true},
		{name: "user still exists", event: changefeed.Event{Topic: changefeed.UserDeleted, UserID: userID},
			erase: func() (bool, error) { return false, customer.ErrUserExists }, wantCalled: true, wantErr: true, wantReject: true},
		{name: "auth unconfirmed", event: changefeed.Event{Topic: changefeed.UserDeleted, UserID: userID},
			erase: func() (bool, error) { return false, fmt.Errorf("%w: 503", customer.ErrUserUnconfirmed) }, wantCalled: true, wantErr: true},
		{name: "service token refused", event: changefeed.Event{Topic: changefeed.UserDeleted, UserID: userID},
			erase: func() (bool, error) {
				return false, fmt.Errorf("%w: %w", customer.ErrUserUnconfirmed,
					&authclient.Error{Kind: authclient.ErrUnauthorized, Status: http.StatusUnauthorized, Code: "token_not_valid"})
			}, wantCalled: true, wantErr: true, wantDrop: true},
		{name: "database down", event: changefeed.Event{Topic: changefeed.UserDeleted, UserID: userID},
			erase: func() (bool, error) { return false, errors.New("server selection timeout") }, wantCalled: true, wantErr: true},
		{name: "no service token", event: changefeed.Event{Topic: changefeed.UserDeleted, UserID: userID},
			token: errors.New("auth unavailable"), wantErr: true},
		{name: "no user id", event: changefeed.Event{Topic: changefeed.UserDeleted, UserID: "x"}, wantErr: true, wantReject: true},
		{name: "another topic", event: changefeed.Event{Topic: changefeed.UserChanged, UserID: userID}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			called := false
			tokens := &fakeTokens{fn: func(context.Context) (string, error) { return "svc-token", tc.token }}
			h := erasure{
				svc: &fakeEraser{fn: func(_ context.Context, a customer.Actor, id string) (bool, error) {
					called = true
					if a.Role != contract.RoleService || a.Token != "svc-token" || id != tc.event.UserID {
						t.Errorf("asked as %+v about %q", a, id)
					}
					return tc.erase()
				}},
				tokens: tokens,
				log:    slog.New(slog.DiscardHandler),
			}
			err := h.handle(context.Background(), tc.event)
			if (err != nil) != tc.wantErr || errors.Is(err, changefeed.ErrReject) != tc.wantReject || called != tc.wantCalled {
				t.Fatalf("err %v (reject %v), called %v; want err %v reject %v called %v",
					err, errors.Is(err, changefeed.ErrReject), called, tc.wantErr, tc.wantReject, tc.wantCalled)
			}
			if dropped := len(tokens.invalidated) == 1 && tokens.invalidated[0] == "svc-token"; dropped != tc.wantDrop || len(tokens.invalidated) > 1 {
				t.Fatalf("invalidated %v, want the token dropped: %v", tokens.invalidated, tc.wantDrop)
			}
		})
	}
}
