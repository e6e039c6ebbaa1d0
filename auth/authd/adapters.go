package authd

import (
	"context"
	"errors"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/changefeed"
)

// outboxStore records a change event in the outbox before each write that
// changes what a merged view shows: user.changed before an update,
// user.deleted before a deletion. Every deletion path (self-service, staff,
// service accounts, and any later one) ends in Store.DeleteUser, so none
// goes unannounced. A new user has no view to evict: creation announces
// nothing; a password change shows in no view.
type outboxStore struct {
	auth.Store
	out *changefeed.Outbox
}

var _ auth.Store = outboxStore{}

// refused reports a write the store certainly did not make.
func refused(err error) bool {
	return errors.Is(err, auth.ErrNotFound) || errors.Is(err, auth.ErrEmailTaken)
}

func (s outboxStore) UpdateUser(ctx context.Context, id string, upd auth.ProfileUpdate) (auth.User, error) {
	var u auth.User
	err := s.out.Record(ctx, changefeed.Event{Topic: changefeed.UserChanged, UserID: id, Op: auth.OpUpdate}, func() (bool, error) {
		var err error
		u, err = s.Store.UpdateUser(ctx, id, upd)
		return err == nil, err
	}, refused)
	return u, err
}

func (s outboxStore) DeleteUser(ctx context.Context, id string) error {
	return s.out.Record(ctx, changefeed.Event{Topic: changefeed.UserDeleted, UserID: id, Op: auth.OpDelete}, func() (bool, error) {
		err := s.Store.DeleteUser(ctx, id)
		return err == nil, err
	}, refused)
}
