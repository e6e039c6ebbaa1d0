package customerd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

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

// outboxStore records a customer.changed event in the outbox before each
// write of a profile or its service records. The event names the profile's
// user (the BFF's views are per user), taken from the profile the service
// read before the write: the wrapper reads nothing itself.
type outboxStore struct {
	customer.Store
	out *changefeed.Outbox
}

var _ customer.Store = outboxStore{}

// refused reports a write the store certainly did not make.
func refused(err error) bool {
	return errors.Is(err, customer.ErrNotFound) || errors.Is(err, customer.ErrProfileExists) || errors.Is(err, customer.ErrBusy)
}

func (s outboxStore) event(userID, customerID, op string) changefeed.Event {
	return changefeed.Event{Topic: changefeed.CustomerChanged, UserID: userID, CustomerID: customerID, Op: op}
}

func (s outboxStore) Create(ctx context.Context, c customer.Customer) error {
	return s.out.Record(ctx, s.event(c.UserID, c.ID, customer.OpCreate), func() (bool, error) {
		err := s.Store.Create(ctx, c)
		return err == nil, err
	}, refused)
}

func (s outboxStore) Update(ctx context.Context, c customer.Customer, ch customer.Changes, now time.Time) (customer.Customer, error) {
	op := customer.OpUpdate // informational: consumers re-read the profile
	if ch.IsVerified != nil {
		op = customer.OpVerify
	}
	var updated customer.Customer
	err := s.out.Record(ctx, s.event(c.UserID, c.ID, op), func() (bool, error) {
		var err error
		updated, err = s.Store.Update(ctx, c, ch, now)
		return err == nil, err
	}, refused)
	return updated, err
}

func (s outboxStore) Delete(ctx context.Context, c customer.Customer) error {
	return s.out.Record(ctx, s.event(c.UserID, c.ID, customer.OpDelete), func() (bool, error) {
		err := s.Store.Delete(ctx, c)
		return err == nil, err
	}, refused)
}

func (s outboxStore) AddService(ctx context.Context, c customer.Customer, r customer.ServiceRecord, key string) (customer.ServiceRecord, bool, error) {
	var (
		stored  customer.ServiceRecord
		created bool
	)
	err := s.out.Record(ctx, s.event(c.UserID, c.ID, customer.OpService), func() (bool, error) {
		var err error
		stored, created, err = s.Store.AddService(ctx, c, r, key)
		return created, err // a replayed key adds nothing: no event
	}, refused)
	return stored, created, err
}
