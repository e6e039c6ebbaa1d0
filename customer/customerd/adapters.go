package customerd

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/changefeed"
)

// authUsers is the customer.Users directory on the auth service's client.
// Only the auth service's explicit "this user does not exist" becomes
// customer.ErrUserNotFound; every other failure (a refused token, a 5xx,
// no answer) stays what it is: unknown.
type authUsers struct{ client *authclient.Client }

var _ customer.Users = authUsers{}

func (u authUsers) Me(ctx context.Context, token string) (customer.User, error) {
	au, err := u.client.Profile(ctx, token)
	if err != nil {
		if accountGone(err) {
			return customer.User{}, fmt.Errorf("%w: %w", customer.ErrUserNotFound, err)
		}
		return customer.User{}, err
	}
	return toUser(au), nil
}

func (u authUsers) User(ctx context.Context, token, id string) (customer.User, error) {
	au, err := u.client.GetUser(ctx, token, id)
	if err != nil {
		if errors.Is(err, authclient.ErrNotFound) {
			return customer.User{}, fmt.Errorf("%w: %w", customer.ErrUserNotFound, err)
		}
		return customer.User{}, err
	}
	return toUser(au), nil
}

// accountGone reports the auth service's answer to a valid token whose user
// was deleted: 401 user_not_found (simplejwt's; a Django service may send
// only its detail).
func accountGone(err error) bool {
	e, ok := errors.AsType[*authclient.Error](err)
	return ok && e.Status == http.StatusUnauthorized && (e.Code == "user_not_found" || e.Code == "" && e.Detail == "User not found")
}

func toUser(au *authclient.User) customer.User {
	return customer.User{ID: au.ID, Email: au.Email, FirstName: au.FirstName, LastName: au.LastName, PhoneNumber: au.PhoneNumber}
}

// feed publishes customer changes on the customer.changed channel.
type feed struct{ pub *changefeed.Publisher }

var _ customer.Publisher = feed{}

func (f feed) Publish(ctx context.Context, ch customer.Change) {
	f.pub.Publish(ctx, changefeed.CustomerChanged, changefeed.Message{UserID: ch.UserID, CustomerID: ch.CustomerID, Op: ch.Op})
}
