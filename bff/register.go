package bff

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

// Registered is a completed registration: the contract's 201 body.
type Registered struct {
	User    AuthUser
	Profile json.RawMessage // nil (null) only if the profile exists but could not be read back
	Tokens  TokenPair
}

// MarshalJSON writes {"user", "profile", "tokens"}.
func (r Registered) MarshalJSON() ([]byte, error) {
	p := r.Profile
	if len(p) == 0 {
		p = json.RawMessage("null")
	}
	return json.Marshal(struct {
		User    AuthUser        `json:"user"`
		Profile json.RawMessage `json:"profile"`
		Tokens  TokenPair       `json:"tokens"`
	}{r.User, p, r.Tokens})
}

// Register runs the registration saga (see the package documentation).
// sagaID is the id chosen by the idempotency claim ("" for a new one) and
// keyID the claimed key's id ("" without a key). The caller's cancellation
// does not stop a saga half way: each step is bounded by its own timeout.
func (s *Service) Register(ctx context.Context, reg Registration, sagaID, keyID string) (_ *Registered, err error) {
	ctx = detach(ctx)
	if sagaID == "" {
		sagaID = contract.NewID()
	}
	ctx, end := s.tel.Start(ctx, "bff.register", "", slog.String("saga.id", sagaID))
	defer func() { end(err) }()
	now := s.now()
	email := contract.NormalizeEmail(reg.Auth.Email)
	sg := &Saga{
		ID: sagaID, Kind: KindRegister, State: StateStarted,
		EmailHash:        s.secrets.EmailHash(email),
		EmailSealed:      s.secrets.Seal(sagaID, sealEmail, []byte(email)),
		IdempotencyKeyID: keyID,
		NextAttemptAt:    now.Add(s.authGrace()),
		Traceparent:      s.tel.Traceparent(ctx),
		CreatedAt:        now, UpdatedAt: now,
	}
	var out *Registered
	held, err := s.withLease(ctx, sagaID, func() error {
		if err := s.sagas.CreateSaga(ctx, sg); err != nil {
			return storeDown(err)
		}
		r := &run{s: s, saga: sg, log: s.log}
		var err error
		out, err = r.register(ctx, reg)
		return err
	})
	switch {
	case err != nil && !held:
		return nil, storeDown(err)
	case err != nil:
		return nil, err
	case !held: // a fresh id is never leased by anyone else
		return nil, inFlight(time.Second)
	}
	return out, nil
}

func (r *run) register(ctx context.Context, reg Registration) (*Registered, error) {
	if err := r.after(ctx, "saga_created"); err != nil {
		return nil, err
	}
	sctx, end := r.s.tel.Start(ctx, "bff.register.auth_register", "")
	user, tokens, err := r.s.auth.Register(sctx, reg.Auth)
	end(err)
	if err != nil {
		return nil, r.authFailed(ctx, err)
	}
	r.token = tokens.Access
	ch := SagaChange{
		UserID:         user.ID,
		TokenSealed:    r.s.secrets.Seal(r.saga.ID, sealToken, []byte(tokens.Access)),
		TokenExpiresAt: tokenExpiry(tokens.Access, r.s.now()),
	}
	if err := r.transition(ctx, StateUserCreated, ch); err != nil {
		// The saga cannot record the user: undo it now, while we hold its
		// token. If that fails too, the reconciler finds the user by email.
		r.log.ErrorContext(ctx, "saga: user created but not recorded; removing it", "saga_id", r.saga.ID, "error", err.Error())
		r.saga.UserID = user.ID
		if r.deleteUser(ctx) {
			r.s.tel.Outcome(ctx, KindRegister, OutcomeCompensated)
			return nil, registrationFailed(storeDown(err), true)
		}
		r.s.tel.Outcome(ctx, KindRegister, OutcomePending)
		return nil, registrationFailed(storeDown(err), false)
	}
	if err := r.after(ctx, "user_created"); err != nil {
		return nil, err
	}
	return r.createProfile(ctx, user, tokens, reg.Profile)
}

// authFailed ends or parks the saga after a failed register call.
func (r *run) authFailed(ctx context.Context, err error) error {
	ue := upstreamOf(ServiceAuth, err)
	if ue.harmless() {
		// Refused, or never sent: nothing was created.
		if terr := r.transition(ctx, StateFailed, SagaChange{LastError: "auth: " + ue.Kind.Error()}); terr != nil {
			r.log.WarnContext(ctx, "saga: could not record failure", "saga_id", r.saga.ID, "error", terr.Error())
		}
		r.s.tel.Outcome(ctx, KindRegister, OutcomeFailed)
		return ue
	}
	// The call may have reached the auth service (a timeout, a 5xx): the
	// user may exist. The reconciler resolves it once the call cannot be
	// running any more.
	ch := SagaChange{NextAttemptAt: r.saga.CreatedAt.Add(r.s.authGrace()), LastError: "auth: no answer"}
	if terr := r.transition(ctx, StateStarted, ch); terr != nil {
		r.log.WarnContext(ctx, "saga: could not schedule resolution", "saga_id", r.saga.ID, "error", terr.Error())
	}
	r.s.tel.Outcome(ctx, KindRegister, OutcomePending)
	return &Error{
		Code: CodeRegistrationFailed,
		Detail: "The registration could not be completed: the auth service did not answer. " +
			"Anything it may have created is removed automatically; please try again in a minute.",
		Extra: map[string]any{"compensated": false, "pending": true},
		Cause: ue,
	}
}

// createProfile is the second step, with one retry when the customer
// service was unavailable without the create being in doubt or timing out.
func (r *run) createProfile(ctx context.Context, user AuthUser, tokens TokenPair, fields map[string]json.RawMessage) (*Registered, error) {
	var (
		last      *UpstreamError
		ambiguous bool // a create may have reached the service
	)
	for attempt := 1; attempt <= 2; attempt++ {
		sctx, end := r.s.tel.Start(ctx, "bff.register.profile_create", "", slog.Int("attempt", attempt))
		prof, err := r.s.customers.CreateProfile(sctx, tokens.Access, fields)
		end(err)
		if err == nil {
			return r.complete(ctx, user, tokens, prof)
		}
		ue := upstreamOf(ServiceCustomer, err)
		if errors.Is(ue, ErrUpstreamConflict) {
			// The user has a profile: an earlier attempt created it.
			return r.finishForward(ctx, user, tokens)
		}
		last = ue
		if !ue.harmless() {
			ambiguous = true
		}
		retryable := ue.NotSent || ue.Status >= 500
		if attempt > 1 || !retryable {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r.compensateLive(ctx, user, tokens, last, ambiguous)
}

// complete records the created profile.
func (r *run) complete(ctx context.Context, user AuthUser, tokens TokenPair, prof CustomerProfile) (*Registered, error) {
	if err := r.after(ctx, "profile_created"); err != nil {
		return nil, err
	}
	if err := r.transition(ctx, StateCompleted, SagaChange{CustomerID: prof.ID}); err != nil {
		// The registration is whole; the reconciler finds the profile and
		// completes the record.
		r.log.WarnContext(ctx, "saga: completion not recorded", "saga_id", r.saga.ID, "error", err.Error())
	}
	r.s.tel.Outcome(ctx, KindRegister, OutcomeCompleted)
	return &Registered{User: user, Profile: prof.Raw, Tokens: tokens}, nil
}

// finishForward completes a registration whose profile turned out to exist.
func (r *run) finishForward(ctx context.Context, user AuthUser, tokens TokenPair) (*Registered, error) {
	prof, err := r.s.customers.Profile(ctx, tokens.Access)
	if err != nil {
		r.log.WarnContext(ctx, "saga: profile exists but could not be read back", "saga_id", r.saga.ID, "error", err.Error())
	}
	if err := r.transition(ctx, StateCompleted, SagaChange{CustomerID: prof.ID}); err != nil {
		r.log.WarnContext(ctx, "saga: completion not recorded", "saga_id", r.saga.ID, "error", err.Error())
	}
	r.s.tel.Outcome(ctx, KindRegister, OutcomeCompleted)
	return &Registered{User: user, Profile: prof.Raw, Tokens: tokens}, nil
}

// compensateLive undoes the user after the profile could not be created:
// check before deleting, then delete (own token, then service token).
func (r *run) compensateLive(ctx context.Context, user AuthUser, tokens TokenPair, cause *UpstreamError, ambiguous bool) (_ *Registered, err error) {
	ctx, end := r.s.tel.Start(ctx, "bff.register.compensate", "", slog.Bool("ambiguous", ambiguous))
	defer func() { end(err) }()
	if terr := r.transition(ctx, StateCompensating, SagaChange{LastError: "customer: " + cause.Kind.Error()}); terr != nil {
		// Go on: undoing the user matters more than the record, and the
		// reconciler repeats whatever is left.
		r.log.WarnContext(ctx, "saga: compensation not recorded", "saga_id", r.saga.ID, "error", terr.Error())
	}
	if ambiguous {
		if exists, _, known := r.checkProfile(ctx); known && exists {
			return r.finishForward(ctx, user, tokens)
		}
	}
	if !r.deleteUser(ctx) {
		r.retryLater(ctx, "compensation: user not deleted")
		r.s.tel.Outcome(ctx, KindRegister, OutcomePending)
		return nil, registrationFailed(cause, false)
	}
	r.finishCompensation(ctx, ambiguous)
	if ambiguous {
		// The saga is verifying, not finished: the reconciler counts it
		// compensated once no late profile can appear.
		r.s.tel.Outcome(ctx, KindRegister, OutcomePending)
	} else {
		r.s.tel.Outcome(ctx, KindRegister, OutcomeCompensated)
	}
	return nil, registrationFailed(cause, true)
}

// finishCompensation records a deleted user: compensated, or verifying
// when a profile create may still land.
func (r *run) finishCompensation(ctx context.Context, verify bool) {
	var err error
	if verify {
		err = r.transition(ctx, StateVerifying, SagaChange{NextAttemptAt: r.s.now().Add(r.s.verifyGrace())})
	} else {
		err = r.transition(ctx, StateCompensated, SagaChange{})
	}
	if err != nil {
		r.log.WarnContext(ctx, "saga: compensation result not recorded", "saga_id", r.saga.ID, "error", err.Error())
	}
}

// registrationFailed is the answer of a registration whose profile could
// not be created.
func registrationFailed(cause error, compensated bool) *Error {
	e := &Error{Code: CodeRegistrationFailed, Cause: cause, Extra: map[string]any{"compensated": compensated}}
	if ue, ok := errors.AsType[*UpstreamError](cause); ok && errors.Is(ue, ErrUpstreamInvalid) && len(ue.Fields) > 0 {
		e.Extra["errors"] = ue.Fields
	}
	if compensated {
		e.Detail = "The customer profile could not be created, so the new account was removed again: nothing was registered. Please try again."
	} else {
		e.Detail = "The customer profile could not be created and the new account could not be removed yet: it will be removed automatically. Please try again in a few minutes."
		e.Extra["pending"] = true
	}
	return e
}

// checkProfile asks the customer service whether the saga's user has a
// profile: with the user's token, else with the service account. known is
// false when neither could answer.
func (r *run) checkProfile(ctx context.Context) (exists bool, customerID string, known bool) {
	ctx, end := r.s.tel.Start(ctx, "bff.saga.check_profile", "")
	var err error
	defer func() { end(err) }()
	if tok := r.ownToken(); tok != "" {
		if exists, customerID, err = r.s.customers.ProfileExists(ctx, tok); err == nil {
			return exists, customerID, true
		}
	}
	if r.s.customersAdmin != nil && r.saga.UserID != "" {
		if exists, customerID, err = r.s.customersAdmin.ProfileExistsFor(ctx, r.saga.UserID); err == nil {
			return exists, customerID, true
		}
	}
	if err == nil {
		err = errors.New("no way to ask: token expired and no service client")
	}
	return false, "", false
}

// deleteUser deletes the saga's user: with the user's own token first,
// then with the service account. A user already gone counts as deleted.
func (r *run) deleteUser(ctx context.Context) bool {
	ctx, end := r.s.tel.Start(ctx, "bff.saga.delete_user", "")
	var err error
	defer func() { end(err) }()
	if tok := r.ownToken(); tok != "" {
		err = r.s.auth.DeleteSelf(ctx, tok)
		// 401 with a token that has not expired: its user no longer exists.
		if err == nil || errors.Is(err, ErrUpstreamNotFound) || errors.Is(err, ErrUpstreamUnauthorized) {
			return true
		}
	}
	if r.s.authAdmin != nil && r.saga.UserID != "" {
		err = r.s.authAdmin.DeleteUser(ctx, r.saga.UserID)
		if err == nil || errors.Is(err, ErrUpstreamNotFound) {
			return true
		}
	}
	if err == nil {
		err = errors.New("no way to delete: token expired and no service client")
	}
	return false
}

// tokenLifeFallback is assumed when an access token's exp cannot be read:
// less than the auth service's default five minutes.
const tokenLifeFallback = 4 * time.Minute

// tokenExpiry reads the exp claim of a JWT without verifying it (the token
// came from the auth service over our own connection), less a margin.
func tokenExpiry(token string, now time.Time) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct {
				Exp float64 `json:"exp"`
			}
			if json.Unmarshal(payload, &c) == nil && c.Exp > 0 {
				return time.Unix(int64(c.Exp), 0).Add(-15 * time.Second)
			}
		}
	}
	return now.Add(tokenLifeFallback)
}
