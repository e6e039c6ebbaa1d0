package customerd

import (
	"context"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/changefeed"
)

// authUsers is the customer.Users directory on the auth service's client.
type authUsers struct{ client *authclient.Client }

var _ customer.Users = authUsers{}

func (u authUsers) Me(ctx context.Context, token string) (customer.User, error) {
	au, err := u.client.Profile(ctx, token)
	if err != nil {
		return customer.User{}, err
	}
	return toUser(au), nil
}

func (u authUsers) User(ctx context.Context, token, id string) (customer.User, error) {
	au, err := u.client.GetUser(ctx, token, id)
	if err != nil {
		return customer.User{}, err
	}
	return toUser(au), nil
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
