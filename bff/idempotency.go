package bff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

// Idempotency record states.
const (
	KeyInFlight = "in_flight"
	KeyDone     = "done"
)

// KeyTTL is how long an Idempotency-Key is remembered.
const KeyTTL = 24 * time.Hour

// MaxKeyLength is the longest Idempotency-Key accepted (Stripe's bound).
const MaxKeyLength = 255

// IdempotencyRecord is the stored state of one Idempotency-Key.
type IdempotencyRecord struct {
	KeyID          string // SHA-256 of the key
	Check          string // CheckOf(fingerprint)
	State          string // KeyInFlight or KeyDone
	Owner          string // the request holding an in-flight record
	LeaseExpiresAt time.Time
	SagaID         string
	Status         int
	Answer         []byte // sealed with SealAnswer
	CreatedAt      time.Time
	ExpiresAt      time.Time
}

// IdempotencyStore keeps idempotency records.
type IdempotencyStore interface {
	// InsertKey claims the key for r, or returns ErrKeyExists when a
	// record holds it (in flight or done, and not expired at r.CreatedAt);
	// as a *KeyExistsError carrying that record, it spares the caller
	// GetKey's read.
	// A store may set r.Owner to its own handle of the claim, which
	// GetKey then returns and CompleteKey and DeleteKey take.
	InsertKey(ctx context.Context, r *IdempotencyRecord) error
	// GetKey returns the key's record, which may have expired (the caller
	// tells), or ErrKeyNotFound when it has none (never claimed, or
	// released).
	GetKey(ctx context.Context, keyID string, now time.Time) (*IdempotencyRecord, error)
	// CompleteKey stores the answer of owner's in-flight record, once
	// (ErrKeyChanged when owner no longer has a record: it was taken over
	// after its lease expired).
	CompleteKey(ctx context.Context, keyID, owner string, status int, answer []byte, now time.Time) error
	// DeleteKey releases owner's in-flight record, so the key can be
	// claimed again (none, or settled: no error).
	DeleteKey(ctx context.Context, keyID, owner string, now time.Time) error
	// SweepKeys deletes records that expired before now (when is the
	// store's choice: at the earliest, at their expiry) and returns how
	// many.
	SweepKeys(ctx context.Context, now time.Time) (int64, error)
}

// ValidKey reports whether k is an acceptable Idempotency-Key: 1 to 255
// visible ASCII characters.
func ValidKey(k string) bool {
	if k == "" || len(k) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// KeyClaim is a request's hold on an Idempotency-Key.
type KeyClaim struct {
	KeyID  string
	Owner  string
	SagaID string // the saga the request will run under this key
	fp     Fingerprint
	// leaseExpiresAt ends the request's hold on the key: past it a retry
	// may take the key over, so the saga is not started any more.
	leaseExpiresAt time.Time
	// created is the 201 the saga recorded, as sealed for this key (body
	// and sealed answer): CompleteIdempotent stores it as it is instead of
	// sealing the same body a second time.
	created struct{ body, sealed []byte }
}

// Replay is a stored answer to send again.
type Replay struct {
	Status int
	Body   []byte
}

// BeginIdempotent claims key for a request with fingerprint fp. It returns
// a claim to run the request under, or the answer to send (the stored
// final answer of the first request with this key, or the outcome its
// saga reached without one), or an error: 422 (another body), 409 (the
// first request's saga is not settled yet, with a Retry-After saying when
// it may be), 503 (the store is down, or the saga waits for an operator).
func (s *Service) BeginIdempotent(ctx context.Context, key string, fp Fingerprint) (*KeyClaim, *Replay, error) {
	keyID := KeyID(key)
	check := s.secrets.CheckOf(fp)
	for range 3 {
		var now time.Time
		claim := &KeyClaim{KeyID: keyID, Owner: contract.NewID(), SagaID: contract.NewID(), fp: fp}
		err := s.hold(ctx, func(ctx context.Context, at time.Time, raw rawStores) error {
			now = at // the hold runs from when the record can be written
			claim.leaseExpiresAt = now.Add(s.leaseTTL)
			rec := &IdempotencyRecord{
				KeyID: keyID, Check: check, State: KeyInFlight, Owner: claim.Owner,
				LeaseExpiresAt: claim.leaseExpiresAt, SagaID: claim.SagaID,
				CreatedAt: now, ExpiresAt: now.Add(KeyTTL),
			}
			err := raw.keys.InsertKey(ctx, rec)
			claim.Owner = rec.Owner
			return err
		})
		if err == nil {
			return claim, nil, nil
		}
		if !errors.Is(err, ErrKeyExists) {
			return nil, nil, storeDown(err)
		}
		// The record the insert met, else (a store that did not say, or a
		// claim given up under contention) read it.
		var old *IdempotencyRecord
		if kx := (*KeyExistsError)(nil); errors.As(err, &kx) && kx.Record != nil {
			old, err = kx.Record, nil
		} else {
			old, err = s.keys.GetKey(ctx, keyID, now)
		}
		if errors.Is(err, ErrKeyNotFound) {
			continue // released in between: claim again
		}
		if err != nil {
			return nil, nil, storeDown(err)
		}
		if !now.Before(old.ExpiresAt) {
			continue // forgotten: the insert claims it
		}
		if !s.secrets.MatchesCheck(fp, old.Check) {
			return nil, nil, &Error{Code: CodeKeyReused,
				Detail: "This Idempotency-Key was already used with a different request body. Use a new key for a new request."}
		}
		if old.State == KeyDone {
			status, body, err := s.secrets.OpenAnswer(fp, keyID, old.Answer)
			if err != nil {
				return nil, nil, fmt.Errorf("idempotency: stored answer: %w", err)
			}
			return nil, &Replay{Status: status, Body: body}, nil
		}
		replay, rerun, err := s.resolveInFlight(ctx, old, fp, now)
		if err != nil || replay != nil {
			return nil, replay, err
		}
		if rerun {
			if err := s.keys.DeleteKey(ctx, keyID, old.Owner, now); err != nil {
				return nil, nil, storeDown(err)
			}
		}
	}
	return nil, nil, inFlight(time.Second)
}

// resolveInFlight answers a retry whose first request left no final
// answer (it is still running, crashed, or answered something that was
// not final) from the state of its saga:
//   - completed: the 201 (the sealed answer the saga recorded, else the
//     SignInRequired answer), stored as the key's final answer;
//   - nothing was left (never written after its lease, failed,
//     compensated, or verifying: its user is deleted): rerun;
//   - needs_attention: 503, an operator settles it;
//   - otherwise: 409 with a Retry-After until the saga's next attempt.
func (s *Service) resolveInFlight(ctx context.Context, old *IdempotencyRecord, fp Fingerprint, now time.Time) (_ *Replay, rerun bool, _ error) {
	sg, err := s.sagas.GetSaga(ctx, old.SagaID)
	switch {
	case errors.Is(err, ErrSagaNotFound):
		if now.Before(old.LeaseExpiresAt) {
			return nil, false, inFlight(old.LeaseExpiresAt.Sub(now))
		}
		return nil, true, nil
	case err != nil:
		return nil, false, storeDown(err)
	}
	switch sg.State {
	case StateCompleted:
		sealed := sg.AnswerSealed
		status, body, err := s.secrets.OpenAnswer(fp, old.KeyID, sealed)
		if len(sealed) == 0 || err != nil {
			status, body = http201, SignInRequired(sg)
			if sealed, err = s.secrets.SealAnswer(fp, old.KeyID, status, body); err != nil {
				sealed = nil
			}
		}
		if sealed != nil {
			if err := s.keys.CompleteKey(ctx, old.KeyID, old.Owner, status, sealed, now); err != nil && !errors.Is(err, ErrKeyChanged) {
				s.log.WarnContext(ctx, "idempotency: settled answer not stored", "error", err.Error())
			}
		}
		return &Replay{Status: status, Body: body}, false, nil
	case StateFailed, StateCompensated, StateVerifying:
		return nil, true, nil
	case StateNeedsAttention:
		return nil, false, &Error{
			Code: CodeRegistrationPending,
			Detail: "The registration could not be settled automatically and is being looked at by the operators. " +
				"Please contact support or try to sign in later.",
			Extra: map[string]any{"compensated": false, "pending": true},
		}
	}
	// Honest: the saga's next attempt, or the end of the first request's
	// lease (a crashed attempt blocks the saga until then), whichever is
	// later, and a reconciler pass.
	at := sg.NextAttemptAt
	if old.LeaseExpiresAt.After(at) {
		at = old.LeaseExpiresAt
	}
	return nil, false, inFlight(max(at.Sub(now), 0) + s.retryBase)
}

// SignInRequired is the 201 of a registration completed without its first
// request's answer (the reconciler finished it, or the answer was lost):
// the ids, no tokens, and sign_in_required: the frontend signs the user in.
func SignInRequired(sg *Saga) []byte {
	b, _ := json.Marshal(map[string]any{
		"user":             map[string]string{"id": sg.UserID},
		"profile":          map[string]string{"id": sg.CustomerID, "user_id": sg.UserID},
		"tokens":           nil,
		"sign_in_required": true,
	})
	return b
}

// CompleteIdempotent records the answer of a claimed request. A final
// answer (Final: a 201 or a refusal of the data) is stored, sealed, and
// replayed to retries. Any other answer (a 5xx, a 429, a pending
// registration) is not: when its saga left nothing behind the key is
// released (a retry runs again), otherwise the record stays in flight and
// a retry is answered from the saga (BeginIdempotent).
func (s *Service) CompleteIdempotent(ctx context.Context, c *KeyClaim, status int, body []byte, final bool) {
	ctx = detach(ctx)
	if final {
		sealed, err := c.created.sealed, error(nil)
		if status != http201 || sealed == nil || !bytes.Equal(body, c.created.body) {
			sealed, err = s.secrets.SealAnswer(c.fp, c.KeyID, status, body)
		}
		if err == nil {
			err = s.keys.CompleteKey(ctx, c.KeyID, c.Owner, status, sealed, s.now())
		}
		if err != nil {
			s.log.WarnContext(ctx, "idempotency: answer not stored; a retry is answered from the saga", "error", err.Error())
		}
		return
	}
	terminal, err := s.sagaTerminal(ctx, c.SagaID)
	if err != nil || !terminal {
		return
	}
	if err := s.keys.DeleteKey(ctx, c.KeyID, c.Owner, s.now()); err != nil {
		s.log.WarnContext(ctx, "idempotency: key not released", "error", err.Error())
	}
}

// sagaTerminal reports whether the saga left nothing behind: it failed,
// was compensated, or was never written.
func (s *Service) sagaTerminal(ctx context.Context, id string) (bool, error) {
	sg, err := s.sagas.GetSaga(ctx, id)
	if errors.Is(err, ErrSagaNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return sg.State == StateFailed || sg.State == StateCompensated, nil
}

// maxRetryAfter bounds a 409's Retry-After (the longest backoff, and a
// margin).
const maxRetryAfter = maxBackoff + time.Minute

func inFlight(retry time.Duration) *Error {
	return &Error{
		Code:       CodeKeyInFlight,
		Detail:     "A request with this Idempotency-Key is still being processed. Retry later.",
		RetryAfter: min(max(retry, time.Second), maxRetryAfter),
	}
}

func storeDown(err error) *Error {
	return &Error{Code: CodeStoreUnavailable, Detail: "The service is temporarily unavailable. Please try again.",
		RetryAfter: time.Second, Cause: err}
}
