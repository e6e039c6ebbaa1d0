package bff

import (
	"context"
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
	// InsertKey returns ErrKeyExists when the key has a record.
	InsertKey(ctx context.Context, r *IdempotencyRecord) error
	// GetKey returns ErrKeyNotFound when the key has no record.
	GetKey(ctx context.Context, keyID string) (*IdempotencyRecord, error)
	// CompleteKey stores the answer of owner's in-flight record, once
	// (ErrKeyChanged when owner no longer has a record: it was taken over
	// after its lease expired).
	CompleteKey(ctx context.Context, keyID, owner string, status int, answer []byte) error
	// DeleteKey deletes owner's in-flight record (none: no error).
	DeleteKey(ctx context.Context, keyID, owner string) error
	// DeleteExpiredKey deletes the record if it expired before now.
	DeleteExpiredKey(ctx context.Context, keyID string, now time.Time) error
	// SweepKeys deletes every record that expired before now.
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
}

// Replay is a stored answer to send again.
type Replay struct {
	Status int
	Body   []byte
}

// BeginIdempotent claims key for a request with fingerprint fp. It returns
// a claim to run the request under, or the stored answer of the first
// request with this key, or an error: 422 (another body), 409 (the first
// request is still running), 503 (the store is down).
func (s *Service) BeginIdempotent(ctx context.Context, key string, fp Fingerprint) (*KeyClaim, *Replay, error) {
	keyID := KeyID(key)
	check := s.secrets.CheckOf(fp)
	for range 3 {
		now := s.now()
		claim := &KeyClaim{KeyID: keyID, Owner: contract.NewID(), SagaID: contract.NewID(), fp: fp}
		err := s.keys.InsertKey(ctx, &IdempotencyRecord{
			KeyID: keyID, Check: check, State: KeyInFlight, Owner: claim.Owner,
			LeaseExpiresAt: now.Add(s.leaseTTL), SagaID: claim.SagaID,
			CreatedAt: now, ExpiresAt: now.Add(KeyTTL),
		})
		if err == nil {
			return claim, nil, nil
		}
		if !errors.Is(err, ErrKeyExists) {
			return nil, nil, storeDown(err)
		}
		old, err := s.keys.GetKey(ctx, keyID)
		if errors.Is(err, ErrKeyNotFound) {
			continue // released in between: claim again
		}
		if err != nil {
			return nil, nil, storeDown(err)
		}
		if !now.Before(old.ExpiresAt) {
			if err := s.keys.DeleteExpiredKey(ctx, keyID, now); err != nil {
				return nil, nil, storeDown(err)
			}
			continue
		}
		if old.Check != check {
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
		if now.Before(old.LeaseExpiresAt) {
			return nil, nil, inFlight(old.LeaseExpiresAt.Sub(now))
		}
		// The first request's lease expired (it crashed, or its saga is
		// pending): run again only once nothing of it can still change.
		terminal, err := s.sagaTerminal(ctx, old.SagaID)
		if err != nil {
			return nil, nil, storeDown(err)
		}
		if !terminal {
			return nil, nil, inFlight(s.retryBase)
		}
		if err := s.keys.DeleteKey(ctx, keyID, old.Owner); err != nil {
			return nil, nil, storeDown(err)
		}
	}
	return nil, nil, inFlight(time.Second)
}

// CompleteIdempotent records the answer of a claimed request: a status
// below 500 is stored (sealed) and replayed to retries; a 5xx answer is
// forgotten when its saga is terminal (a retry runs again), and left in
// flight while its saga is pending (a retry gets 409 until it is resolved).
func (s *Service) CompleteIdempotent(ctx context.Context, c *KeyClaim, status int, body []byte) {
	ctx, cancel := context.WithTimeout(detach(ctx), 5*time.Second)
	defer cancel()
	if status < 500 {
		sealed, err := s.secrets.SealAnswer(c.fp, c.KeyID, status, body)
		if err == nil {
			err = s.keys.CompleteKey(ctx, c.KeyID, c.Owner, status, sealed)
		}
		if err != nil {
			s.log.WarnContext(ctx, "idempotency: answer not stored; a retry will get 409 until the lease expires", "error", err.Error())
		}
		return
	}
	terminal, err := s.sagaTerminal(ctx, c.SagaID)
	if err != nil || !terminal {
		return
	}
	if err := s.keys.DeleteKey(ctx, c.KeyID, c.Owner); err != nil {
		s.log.WarnContext(ctx, "idempotency: key not released", "error", err.Error())
	}
}

// sagaTerminal reports whether the saga is finished or was never written.
func (s *Service) sagaTerminal(ctx context.Context, id string) (bool, error) {
	sg, err := s.sagas.GetSaga(ctx, id)
	if errors.Is(err, ErrSagaNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return Terminal(sg.State), nil
}

func inFlight(retry time.Duration) *Error {
	return &Error{
		Code:       CodeKeyInFlight,
		Detail:     "A request with this Idempotency-Key is still being processed. Retry later.",
		RetryAfter: min(max(retry, time.Second), 30*time.Second),
	}
}

func storeDown(err error) *Error {
	return &Error{Code: CodeStoreUnavailable, Detail: "The service is temporarily unavailable. Please try again.",
		RetryAfter: time.Second, Cause: err}
}
