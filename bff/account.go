package bff

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

// Login signs the user in at the auth service; the caller adds the merged
// view to the answer.
func (s *Service) Login(ctx context.Context, c Credentials) (AuthUser, TokenPair, error) {
	return s.auth.Login(ctx, c.Email, c.Password)
}

// Parts of the merged view, as named in partial-update answers.
const (
	PartUser    = "user"
	PartProfile = "profile"
)

// UpdateMe sends each field of the patch to the service that owns it, both
// at once, and evicts the user's cached view when anything changed. When
// one side fails after the other succeeded the error (partial_update) says
// which part was applied.
func (s *Service) UpdateMe(ctx context.Context, userID, token string, p Patch) error {
	if p.Empty() {
		return nil
	}
	ctx, end := s.tel.Start(ctx, "bff.update_me", "", slog.Bool("user", len(p.User) > 0), slog.Bool("profile", len(p.Profile) > 0))
	var (
		wg                sync.WaitGroup
		userErr, profErr  error
		userSent, profSet = len(p.User) > 0, len(p.Profile) > 0
	)
	if userSent {
		wg.Go(func() { _, userErr = s.auth.UpdateProfile(ctx, token, p.User) })
	}
	if profSet {
		wg.Go(func() { _, profErr = s.customers.UpdateProfile(ctx, token, p.Profile) })
	}
	wg.Wait()
	var applied, failed []string
	var failures []error
	for _, side := range []struct {
		name string
		sent bool
		err  error
	}{{PartUser, userSent, userErr}, {PartProfile, profSet, profErr}} {
		switch {
		case !side.sent:
		case side.err == nil:
			applied = append(applied, side.name)
		default:
			failed = append(failed, side.name)
			failures = append(failures, side.err)
		}
	}
	if len(applied) > 0 {
		s.invalidate(detach(ctx), userID)
	}
	err := mergeFailures(applied, failed, failures)
	end(err)
	return err
}

// mergeFailures builds UpdateMe's error.
func mergeFailures(applied, failed []string, failures []error) error {
	if len(failures) == 0 {
		return nil
	}
	if len(applied) == 0 {
		// Nothing changed: both sides' field errors at once, or the first failure.
		fields := map[string][]string{}
		for _, err := range failures {
			ue, ok := errors.AsType[*UpstreamError](err)
			if !ok || !errors.Is(ue, ErrUpstreamInvalid) {
				return err
			}
			maps.Copy(fields, ue.Fields)
		}
		return Invalid(fields)
	}
	e := &Error{
		Code: CodePartialUpdate,
		Detail: "Only part of the change was saved: the " + strings.Join(applied, " and ") +
			" fields were updated, the " + strings.Join(failed, " and ") + " fields were not.",
		Extra: map[string]any{"applied": applied, "failed": failed},
		Cause: failures[0],
	}
	if ue, ok := errors.AsType[*UpstreamError](failures[0]); ok && errors.Is(ue, ErrUpstreamInvalid) {
		e.Extra["errors"] = ue.Fields
	}
	return e
}

// Deletion is the result of DeleteAccount.
type Deletion struct {
	// Done: the profile and the account are both gone.
	Done bool
	// ProfileDeleted and AccountDeleted say how far it got when not Done;
	// the reconciler finishes the rest.
	ProfileDeleted bool
	AccountDeleted bool
}

// DeleteAccount removes the user's profile and then their account, as a
// saga: once it is recorded it is finished, by the reconciler if not now.
func (s *Service) DeleteAccount(ctx context.Context, userID, token string) (_ Deletion, err error) {
	ctx = detach(ctx)
	id := contract.NewID()
	ctx, end := s.tel.Start(ctx, "bff.delete_account", "", slog.String("saga.id", id))
	defer func() { end(err) }()
	now := s.now()
	sg := &Saga{
		ID: id, Kind: KindDeleteAccount, State: StateStarted, UserID: userID,
		TokenSealed:    s.secrets.Seal(id, sealToken, []byte(token)),
		TokenExpiresAt: tokenExpiry(token, now),
		Traceparent:    s.tel.Traceparent(ctx),
	}
	var out Deletion
	held, err := s.withLease(ctx, id, func(ctx context.Context) error {
		err := s.hold(ctx, func(ctx context.Context, now time.Time, raw rawStores) error {
			// The saga starts when its record can be written (see Register).
			sg.CreatedAt, sg.UpdatedAt, sg.NextAttemptAt = now, now, now.Add(s.authGrace())
			return raw.sagas.CreateSaga(ctx, sg)
		})
		if err != nil {
			return storeDown(err)
		}
		r := &run{s: s, saga: sg, token: token, log: s.log}
		if err := r.deleteAccount(ctx); err != nil {
			return err
		}
		out = Deletion{
			Done:           sg.State == StateCompleted,
			ProfileDeleted: sg.State == StateProfileDeleted || sg.State == StateCompleted,
			AccountDeleted: sg.State == StateCompleted,
		}
		if !out.Done {
			s.tel.Outcome(ctx, KindDeleteAccount, OutcomePending)
		}
		return nil
	})
	switch {
	case err != nil && !held:
		return Deletion{}, storeDown(err)
	case err != nil:
		return Deletion{}, err
	case !held:
		return Deletion{}, inFlight(time.Second)
	}
	return out, nil
}

// deleteAccount advances a delete_account saga as far as it can now.
func (r *run) deleteAccount(ctx context.Context) error {
	defer r.s.invalidate(ctx, r.saga.UserID)
	if r.ownToken() == "" && (r.s.authAdmin == nil || r.s.customersAdmin == nil) {
		return r.attention(ctx, "account cannot be deleted: token expired and no service client")
	}
	if r.saga.State == StateStarted {
		if !r.deleteProfile(ctx) {
			r.retryLater(ctx, "profile not deleted")
			return nil
		}
		if err := r.transition(ctx, StateProfileDeleted, SagaChange{}); err != nil {
			return err
		}
		if err := r.after(ctx, "profile_deleted"); err != nil {
			return err
		}
	}
	if r.saga.State == StateProfileDeleted {
		if !r.deleteUser(ctx) {
			r.retryLater(ctx, "account not deleted")
			return nil
		}
		if err := r.transition(ctx, StateCompleted, SagaChange{}); err != nil {
			return err
		}
		r.s.tel.Outcome(ctx, KindDeleteAccount, OutcomeCompleted)
	}
	return nil
}

// deleteProfile deletes the saga user's profile: with the user's token, else
// by id with the service account. No profile counts as deleted.
func (r *run) deleteProfile(ctx context.Context) bool {
	ctx, end := r.s.tel.Start(ctx, "bff.saga.delete_profile", "")
	var err error
	defer func() { end(err) }()
	if tok := r.ownToken(); tok != "" {
		err = r.s.customers.DeleteProfile(ctx, tok)
		if err == nil || errors.Is(err, ErrUpstreamNotFound) {
			return true
		}
	}
	if r.s.customersAdmin != nil && r.saga.UserID != "" {
		var (
			exists bool
			id     string
		)
		exists, id, err = r.s.customersAdmin.ProfileExistsFor(ctx, r.saga.UserID)
		if err == nil && !exists {
			return true
		}
		if err == nil {
			err = r.s.customersAdmin.DeleteCustomer(ctx, id)
			if err == nil || errors.Is(err, ErrUpstreamNotFound) {
				return true
			}
		}
	}
	if err == nil {
		err = errors.New("no way to delete: token expired and no service client")
	}
	return false
}
