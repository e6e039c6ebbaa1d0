package mongodb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/mongodb"
)

// An Idempotency-Key's records are insert-only documents found by _id
// alone, the one lookup the embedded FerretDB answers without decoding
// every record (and the cheapest on MongoDB):
//
//   - a claim, "<key id>/<bucket>/<generation>" in idempotency_claims, is
//     a request's hold on the key. The bucket is the day of the claim
//     (Unix time ÷ KeyTTL); the generations of a bucket are numbered from
//     0, and the insert of the next one is the claim: of the requests that
//     read a key free, exactly one inserts it. Its _id is its owner's
//     handle (the record's Owner).
//   - an end, under the claim's _id in idempotency_ends, settles a claim
//     once: done (with its sealed answer) or released (a retry may run the
//     request again). Completing and releasing one claim race as two
//     inserts of one _id, so exactly one of them wins, on FerretDB (whose
//     updates of one document are not atomic) as on MongoDB.
//
// A key's record is its newest claim not released: a bucket is read from
// generation 0 up to its first missing one, newest bucket first. A record
// lives KeyTTL, so at a time t only the buckets of [t-KeyTTL-MaxClockSkew,
// t+MaxClockSkew] can hold one: two, or three around midnight UTC. Nothing is
// ever deleted inside those buckets, so a read is never cut short by a
// delete; the sweep deletes whole buckets that no replica's window reaches
// any more.
//
// Two requests on either side of a bucket boundary (or on two replicas
// whose clocks straddle it) claim in two buckets, so the insert alone
// cannot pick one: each claimer reads the other buckets after its insert,
// and one that finds another live record there releases its own claim.
// Of two claimers, at least one reads after the other's insert, so at most
// one keeps its claim (both may let go: their retries then claim again).

// Collection names of the idempotency records; LegacyKeysCollection is the
// previous release's (one document per key, found by key_id), upgraded at
// start.
const (
	ClaimsCollection     = "idempotency_claims"
	EndsCollection       = "idempotency_ends"
	LegacyKeysCollection = "idempotency_keys"
)

// MaxClockSkew is how far the replicas' clocks may disagree (NTP keeps them
// within milliseconds).
const MaxClockSkew = time.Minute

// keyReleased is the end of a claim given up: its request left nothing
// behind, was taken over after its lease, or lost a race at a bucket
// boundary.
const keyReleased = "released"

// claimDoc is a request's claim of a key. A claim written already done
// (a record of the previous release, or seeded) carries its answer itself,
// in one insert, so no reader ever sees it in flight; an end inserted
// under it later changes nothing.
type claimDoc struct {
	ID             string    `bson:"_id"`
	KeyID          string    `bson:"key_id"`
	Bucket         int64     `bson:"bucket"`
	Check          string    `bson:"check"`
	SagaID         string    `bson:"saga_id"`
	LeaseExpiresAt time.Time `bson:"lease_expires_at"`
	CreatedAt      time.Time `bson:"created_at"`
	ExpiresAt      time.Time `bson:"expires_at"`
	State          string    `bson:"state,omitempty"` // bff.KeyDone: done at its insert
	Status         int32     `bson:"status,omitempty"`
	Answer         []byte    `bson:"answer,omitempty"`
}

// endDoc settles the claim with the same _id.
type endDoc struct {
	ID     string    `bson:"_id"`
	Bucket int64     `bson:"bucket"`
	State  string    `bson:"state"` // bff.KeyDone or keyReleased
	Status int32     `bson:"status,omitempty"`
	Answer []byte    `bson:"answer,omitempty"`
	At     time.Time `bson:"at"`
}

// link is one claim with its end (nil: in flight).
type link struct {
	claim claimDoc
	end   *endDoc
}

// doneAtInsert reports whether the claim was written done.
func (l *link) doneAtInsert() bool { return l.claim.State == bff.KeyDone }

func (l *link) released() bool {
	return !l.doneAtInsert() && l.end != nil && l.end.State == keyReleased
}

// inFlight reports whether the claim is neither settled nor written done.
func (l *link) inFlight() bool { return !l.doneAtInsert() && l.end == nil }

// live reports whether the claim holds its key at now: not released and
// not expired.
func (l *link) live(now time.Time) bool { return !l.released() && now.Before(l.claim.ExpiresAt) }

func (l *link) record() *bff.IdempotencyRecord {
	r := &bff.IdempotencyRecord{
		KeyID: l.claim.KeyID, Check: l.claim.Check, State: bff.KeyInFlight, Owner: l.claim.ID,
		LeaseExpiresAt: l.claim.LeaseExpiresAt, SagaID: l.claim.SagaID,
		CreatedAt: l.claim.CreatedAt, ExpiresAt: l.claim.ExpiresAt,
	}
	switch {
	case l.doneAtInsert():
		r.State, r.Status, r.Answer = bff.KeyDone, int(l.claim.Status), l.claim.Answer
	case l.end != nil && l.end.State == bff.KeyDone:
		r.State, r.Status, r.Answer = bff.KeyDone, int(l.end.Status), l.end.Answer
	}
	return r
}

func bucketOf(t time.Time) int64 { return t.Unix() / int64(bff.KeyTTL/time.Second) }

func claimID(keyID string, bucket int64, gen int) string {
	return fmt.Sprintf("%s/%d/%d", keyID, bucket, gen)
}

// claimOf parses a claim's _id, an owner's handle, for keyID (ok false:
// not one of its claims).
func claimOf(keyID, owner string) (bucket int64, ok bool) {
	rest, found := strings.CutPrefix(owner, keyID+"/")
	if !found {
		return 0, false
	}
	b, g, found := strings.Cut(rest, "/")
	bucket, err := strconv.ParseInt(b, 10, 64)
	if !found || err != nil {
		return 0, false
	}
	if _, err := strconv.Atoi(g); err != nil {
		return 0, false
	}
	return bucket, true
}

// window lists the buckets that can hold a record live at now, newest
// first.
func window(now time.Time) []int64 {
	hi, lo := bucketOf(now.Add(MaxClockSkew)), bucketOf(now.Add(-bff.KeyTTL-MaxClockSkew))
	out := make([]int64, 0, hi-lo+1)
	for b := hi; b >= lo; b-- {
		out = append(out, b)
	}
	return out
}

// claimAt reads generation gen of keyID's claims in bucket b (nil: none).
func (s *Store) claimAt(ctx context.Context, keyID string, b int64, gen int) (*claimDoc, error) {
	return mongodb.FindByID[claimDoc](ctx, s.claims, claimID(keyID, b, gen))
}

// lastClaim finds the last claim of keyID in bucket b (nil: none) and the
// number of claims there. The generations of a bucket exist from 0 up
// without a gap (nothing inside a window is deleted), so a galloping
// search finds the last in about 2·log₂(n) reads by _id: one when the
// bucket holds none, two when it holds one.
func (s *Store) lastClaim(ctx context.Context, keyID string, b int64) (*claimDoc, int, error) {
	first, err := s.claimAt(ctx, keyID, b, 0)
	if err != nil || first == nil {
		return nil, 0, err
	}
	n, last, err := mongodb.LastPresent(0, -1, first, func(gen int64) (*claimDoc, error) { return s.claimAt(ctx, keyID, b, int(gen)) })
	if err != nil {
		return nil, 0, err
	}
	return last, int(n) + 1, nil
}

// endOf reads the end of the claim id (nil: none).
func (s *Store) endOf(ctx context.Context, id string) (*endDoc, error) {
	return mongodb.FindByID[endDoc](ctx, s.ends, id)
}

// last reads the last claim of keyID in bucket b with its end (nil: the
// bucket holds none), and the bucket's next free generation. Only the last
// claim of a bucket can hold the key: the next one is inserted only once
// it was settled or had expired.
func (s *Store) last(ctx context.Context, keyID string, b int64) (*link, int, error) {
	c, n, err := s.lastClaim(ctx, keyID, b)
	if err != nil || c == nil {
		return nil, 0, err
	}
	l := &link{claim: *c}
	if !l.doneAtInsert() {
		if l.end, err = s.endOf(ctx, l.claim.ID); err != nil {
			return nil, 0, err
		}
	}
	return l, n, nil
}

// current reads the key's record at now: the newest last claim of a bucket
// of the window that was not released (expired or not; nil when none), and
// the next free generation of bucket mine. An in-flight claim does not
// hide a live record of an older bucket: a kept claim never has one beside
// it (keepClaim), so such a claim is letting go, or was left behind by a
// claimer that could not let go, and the older record is the key's.
func (s *Store) current(ctx context.Context, keyID string, now time.Time, mine int64) (*link, int, error) {
	var (
		cur  *link
		next int
	)
	for _, b := range window(now) {
		if cur != nil && b < mine && !cur.inFlight() {
			break
		}
		l, n, err := s.last(ctx, keyID, b)
		if err != nil {
			return nil, 0, err
		}
		if b == mine {
			next = n
		}
		switch {
		case l == nil || l.released():
		case cur == nil:
			cur = l
		case cur.inFlight() && l.live(now):
			cur = l
		}
	}
	return cur, next, nil
}

// InsertKey claims the key for r: the next generation of the bucket of
// r.CreatedAt, unless a live record holds the key (ErrKeyExists, as a
// *KeyExistsError with that record), and sets
// r.Owner to the claim's _id. A record written done (seeding) is done in
// its one insert.
func (s *Store) InsertKey(ctx context.Context, r *bff.IdempotencyRecord) error {
	now, mine := r.CreatedAt, bucketOf(r.CreatedAt)
	gen := 0 // a new key's first claim is sent unread
	for range 4 {
		id := claimID(r.KeyID, mine, gen)
		c := claimDoc{
			ID: id, KeyID: r.KeyID, Bucket: mine, Check: r.Check, SagaID: r.SagaID,
			LeaseExpiresAt: r.LeaseExpiresAt.UTC(), CreatedAt: r.CreatedAt.UTC(), ExpiresAt: r.ExpiresAt.UTC(),
		}
		if r.State == bff.KeyDone {
			c.State, c.Status, c.Answer = bff.KeyDone, int32(r.Status), r.Answer
		}
		_, err := s.claims.InsertOne(ctx, c)
		if err == nil {
			if err := s.keepClaim(ctx, r.KeyID, id, mine, now); err != nil {
				return err
			}
			r.Owner = id
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("bff store: insert key: %w", err)
		}
		cur, next, err := s.current(ctx, r.KeyID, now, mine)
		if err != nil {
			return fmt.Errorf("bff store: insert key: %w", err)
		}
		if cur != nil && cur.live(now) {
			return &bff.KeyExistsError{Record: cur.record()}
		}
		gen = next
	}
	return bff.ErrKeyExists // claimed and given up under contention: the caller reads again
}

// keepClaim checks, after the insert of the claim id, that no other
// bucket of the window holds a live record (a claimer across a bucket
// boundary); if one does, the claim is released and ErrKeyExists returned.
func (s *Store) keepClaim(ctx context.Context, keyID, id string, mine int64, now time.Time) error {
	for _, b := range window(now) {
		if b == mine {
			continue
		}
		l, _, err := s.last(ctx, keyID, b)
		if err == nil && (l == nil || !l.live(now)) {
			continue
		}
		// A live record elsewhere, or it could not be read: let go, also
		// when the read failed because the call's deadline passed (a claim
		// left in flight would answer 409 to its key's retries until its
		// lease ends).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		_, rerr := s.end(rctx, keyID, id, endDoc{State: keyReleased}, now)
		cancel()
		err = errors.Join(err, rerr)
		if err != nil {
			return fmt.Errorf("bff store: insert key: %w", err)
		}
		return bff.ErrKeyExists
	}
	return nil
}

// releaseTimeout bounds keepClaim's release of its claim, sent past the
// caller's deadline.
const releaseTimeout = 2 * time.Second

// GetKey reads the key's record at now: its newest claim not released,
// which may have expired (the caller tells).
func (s *Store) GetKey(ctx context.Context, keyID string, now time.Time) (*bff.IdempotencyRecord, error) {
	cur, _, err := s.current(ctx, keyID, now, bucketOf(now))
	if err != nil {
		return nil, fmt.Errorf("bff store: get key: %w", err)
	}
	if cur == nil {
		return nil, bff.ErrKeyNotFound
	}
	return cur.record(), nil
}

// end settles owner's claim of keyID with e (its _id, bucket and time
// filled in): the insert of its end, false when owner names no claim of
// keyID or the claim was settled already. No read: the owner is the
// claim's _id.
func (s *Store) end(ctx context.Context, keyID, owner string, e endDoc, now time.Time) (bool, error) {
	b, ok := claimOf(keyID, owner)
	if !ok {
		return false, nil
	}
	e.ID, e.Bucket, e.At = owner, b, now.UTC()
	_, err := s.ends.InsertOne(ctx, e)
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	return err == nil, err
}

// CompleteKey stores the answer of owner's in-flight claim: the insert of
// its end, so of a completion and a release of one claim (a retry taking
// it over after its lease) exactly one wins.
func (s *Store) CompleteKey(ctx context.Context, keyID, owner string, status int, answer []byte, now time.Time) error {
	ok, err := s.end(ctx, keyID, owner, endDoc{State: bff.KeyDone, Status: int32(status), Answer: answer}, now)
	if err != nil {
		return fmt.Errorf("bff store: complete key: %w", err)
	}
	if !ok {
		return bff.ErrKeyChanged
	}
	return nil
}

// DeleteKey releases owner's in-flight claim (a settled one stays as it
// is), so the key can be claimed again.
func (s *Store) DeleteKey(ctx context.Context, keyID, owner string, now time.Time) error {
	if _, err := s.end(ctx, keyID, owner, endDoc{State: keyReleased}, now); err != nil {
		return fmt.Errorf("bff store: delete key: %w", err)
	}
	return nil
}

// SweepKeys deletes the claims and ends of the buckets no window reaches
// any more (three days back: a window reaches two, with the clocks'
// skew), and returns the number of claims deleted. A bucket no window reaches gets no
// new record, so each store deletes up to a bucket once: its filtered
// deletes, which read every record on the embedded server, run once a day,
// not on every sweep.
func (s *Store) SweepKeys(ctx context.Context, now time.Time) (int64, error) {
	through := bucketOf(now) - 3
	if through <= s.keysSwept.Load() {
		return 0, nil
	}
	old := bson.D{{Key: "bucket", Value: bson.D{{Key: "$lte", Value: through}}}}
	res, err := s.claims.DeleteMany(ctx, old)
	if err != nil {
		return 0, fmt.Errorf("bff store: sweep keys: %w", err)
	}
	if _, err := s.ends.DeleteMany(ctx, old); err != nil {
		return 0, fmt.Errorf("bff store: sweep keys: %w", err)
	}
	s.keysSwept.Store(through)
	return res.DeletedCount, nil
}

// legacyKeyDoc is the previous release's record: one per key, found by the
// unique key_id.
type legacyKeyDoc struct {
	ID             string    `bson:"_id"`
	KeyID          string    `bson:"key_id"`
	Check          string    `bson:"check"`
	State          string    `bson:"state"`
	LeaseExpiresAt time.Time `bson:"lease_expires_at"`
	SagaID         string    `bson:"saga_id"`
	Status         int32     `bson:"status"`
	Answer         []byte    `bson:"answer"`
	CreatedAt      time.Time `bson:"created_at"`
	ExpiresAt      time.Time `bson:"expires_at"`
}

// upgradeKeys moves the previous release's records into claims, at
// start: each live one becomes generation 0 of its day's bucket, in one
// insert (a done one with its answer), unless that generation is taken
// already (the key was claimed by this release, whose claim stands); then
// the old record is deleted by its _id. Starting replicas may run it at
// once: the inserts and deletes are idempotent. It reads the old
// collection through a cursor: empty once upgraded. The previous release
// reads and writes only that collection, so its replicas must be stopped
// before this one starts (docs/operations.md, "Upgrading").
func (s *Store) upgradeKeys(ctx context.Context, now time.Time) error {
	cur, err := s.legacy.Find(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("bff store: upgrade keys: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d legacyKeyDoc
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("bff store: upgrade key: %w", err)
		}
		if err := s.upgradeKey(ctx, d, now); err != nil {
			return fmt.Errorf("bff store: upgrade key: %w", err)
		}
		if _, err := s.legacy.DeleteOne(ctx, bson.D{{Key: "_id", Value: d.ID}}); err != nil {
			return fmt.Errorf("bff store: upgrade key: %w", err)
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("bff store: upgrade keys: %w", err)
	}
	return nil
}

func (s *Store) upgradeKey(ctx context.Context, d legacyKeyDoc, now time.Time) error {
	if !now.Before(d.ExpiresAt) || d.KeyID == "" {
		return nil
	}
	b := bucketOf(d.CreatedAt)
	c := claimDoc{ID: claimID(d.KeyID, b, 0), KeyID: d.KeyID, Bucket: b, Check: d.Check,
		SagaID: d.SagaID, LeaseExpiresAt: d.LeaseExpiresAt, CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt}
	if d.State == bff.KeyDone {
		c.State, c.Status, c.Answer = bff.KeyDone, d.Status, d.Answer
	}
	_, err := s.claims.InsertOne(ctx, c)
	return ignoreDuplicate(err)
}

func ignoreDuplicate(err error) error {
	if mongo.IsDuplicateKeyError(err) {
		return nil
	}
	return err
}
