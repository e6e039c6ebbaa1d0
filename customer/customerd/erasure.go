package customerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/contract"
)

// ErasureGroup is the customer service's consumer group on the change
// stream: every user.deleted event reaches one replica.
const ErasureGroup = "customer"

// eraser is what the cascade needs of the service; *customer.Service is
// one.
type eraser interface {
	EraseUser(ctx context.Context, a customer.Actor, userID string) (bool, error)
}

// tokenSource gives the service account's token; *authclient.ServiceTokens
// is one.
type tokenSource interface {
	Token(ctx context.Context) (string, error)
	ClientID() string
	// Invalidate drops a token the auth service refused (its key was
	// rotated), so the next attempt fetches a new one.
	Invalidate(token string)
}

// erasure is the handler of user.deleted: it erases the user's profile and
// service records once the auth service confirms the user is gone.
type erasure struct {
	svc    eraser
	tokens tokenSource
	log    *slog.Logger
}

// handle returns nil when the user has no profile left (erased now, or
// before: a second delivery), an error wrapping changefeed.ErrReject for
// an event that must never delete anything (no valid user id, or a user
// the auth service still has: a wrong or forged event, parked for an
// operator), and any other error to have the event delivered again later
// (the auth service or the database did not answer).
func (h erasure) handle(ctx context.Context, e changefeed.Event) error {
	if e.Topic != changefeed.UserDeleted {
		return nil
	}
	if !contract.ValidID(e.UserID) {
		return fmt.Errorf("%w: no valid user id", changefeed.ErrReject)
	}
	tok, err := h.tokens.Token(ctx)
	if err != nil {
		return fmt.Errorf("service token: %w", err)
	}
	a := customer.Actor{UserID: h.tokens.ClientID(), Role: contract.RoleService, Token: tok}
	erased, err := h.svc.EraseUser(ctx, a, e.UserID)
	switch {
	case errors.Is(err, customer.ErrUserExists):
		return fmt.Errorf("%w: %w", changefeed.ErrReject, err)
	case err != nil:
		if errors.Is(err, authclient.ErrUnauthorized) { // the token refused
			h.tokens.Invalidate(tok)
		}
		return fmt.Errorf("erase user %s: %w", e.UserID, err)
	}
	h.log.InfoContext(ctx, "user.deleted handled", "user_id", e.UserID, "event_id", e.ID, "profile_erased", erased)
	return nil
}
