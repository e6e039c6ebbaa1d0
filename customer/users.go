package customer

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// confirmUser asks the auth service for the user of a new profile, with
// the caller's token: the caller's own account (GET /api/auth/profile/
// answers user_not_found once it is deleted), or for staff creating
// someone else's profile that user by id (404 once deleted). It returns
// ErrUserNotFound when the auth service says the user does not exist and
// ErrUserUnconfirmed when it gave no answer either way.
func (s *Service) confirmUser(ctx context.Context, a Actor, userID string) (User, error) {
	if s.users == nil {
		return User{}, fmt.Errorf("%w: no user directory", ErrUserUnconfirmed)
	}
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	var (
		u   User
		err error
	)
	if userID == a.UserID {
		u, err = s.users.Me(ctx, a.Token)
	} else {
		u, err = s.users.User(ctx, a.Token, userID)
	}
	switch {
	case err == nil:
		return u, nil
	case errors.Is(err, ErrUserNotFound):
		s.log.InfoContext(ctx, "no profile for a user the auth service does not know", "user_id", userID)
		return User{}, err
	default:
		s.log.WarnContext(ctx, "user not confirmed, no profile created", "user_id", userID, "error", err.Error())
		return User{}, fmt.Errorf("%w: %w", ErrUserUnconfirmed, err)
	}
}

// userData is the user data of c that the caller may see, from u, the
// auth service's answer about c's user.
func (s *Service) userData(a Actor, c Customer, u User) UserData {
	if a.owns(c) {
		return ownerData(a, &u)
	}
	return UserData{Email: &u.Email, FirstName: &u.FirstName, LastName: &u.LastName, PhoneNumber: &u.PhoneNumber}
}

// withUser merges the user data the caller may see into c: the owner's
// email and names come from their own token and the phone number from the
// auth service; staff and services get everything from the auth service.
// When the auth service fails, those fields stay null.
func (s *Service) withUser(ctx context.Context, a Actor, c Customer) CustomerWithUserData {
	return s.withUsers(ctx, a, []Customer{c})[0]
}

// read is c as a read with o answers it: merged with its user's data
// (withUser), or without (the user fields null, the auth service not
// called).
func (s *Service) read(ctx context.Context, a Actor, c Customer, o ReadOptions) CustomerWithUserData {
	if o.WithoutUser {
		return CustomerWithUserData{Customer: c}
	}
	return s.withUser(ctx, a, c)
}

// withUsers merges user data into a page of profiles, fetching each user
// once and at most s.lookups at a time.
func (s *Service) withUsers(ctx context.Context, a Actor, cs []Customer) []CustomerWithUserData {
	out := make([]CustomerWithUserData, len(cs))
	var ids []string
	seen := map[string]bool{}
	ownerSeen := false
	for i, c := range cs {
		out[i].Customer = c
		switch {
		case a.owns(c):
			ownerSeen = true
		case a.staffReader() && !seen[c.UserID]:
			seen[c.UserID] = true
			ids = append(ids, c.UserID)
		}
	}
	if s.users == nil {
		for i := range out {
			if a.owns(out[i].Customer) {
				out[i].User = ownerData(a, nil)
			}
		}
		return out
	}
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		users = make(map[string]User, len(ids))
		me    *User
		sem   = make(chan struct{}, s.lookups)
	)
	if ownerSeen {
		wg.Go(func() {
			u, err := s.users.Me(ctx, a.Token)
			if err != nil {
				s.log.WarnContext(ctx, "user data unavailable", "user_id", a.UserID, "error", err.Error())
				return
			}
			mu.Lock()
			me = &u
			mu.Unlock()
		})
	}
	for _, id := range ids {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			u, err := s.users.User(ctx, a.Token, id)
			if err != nil {
				s.log.WarnContext(ctx, "user data unavailable", "user_id", id, "error", err.Error())
				return
			}
			mu.Lock()
			users[id] = u
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := range out {
		c := out[i].Customer
		if a.owns(c) {
			out[i].User = ownerData(a, me)
			continue
		}
		if u, ok := users[c.UserID]; ok {
			out[i].User = s.userData(a, c, u)
		}
	}
	return out
}

// ownerData is the owner's view: names and email from the token, the phone
// number from the auth service when it answered.
func ownerData(a Actor, me *User) UserData {
	email, first, last := a.Email, a.FirstName, a.LastName
	d := UserData{Email: &email, FirstName: &first, LastName: &last}
	if me != nil {
		phone := me.PhoneNumber
		d.PhoneNumber = &phone
	}
	return d
}
