package mongodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/indexcheck"
)

func keyRecord(keyID, owner string, created time.Time) *bff.IdempotencyRecord {
	return &bff.IdempotencyRecord{KeyID: keyID, Check: "c", State: bff.KeyInFlight, Owner: owner,
		LeaseExpiresAt: created.Add(time.Minute), SagaID: "saga-" + owner, CreatedAt: created, ExpiresAt: created.Add(bff.KeyTTL)}
}

// claimRace has one claimer per time in at claim key at once and returns
// the owners of the claims kept; any error but ErrKeyExists fails t.
func claimRace(t *testing.T, s *Store, key string, at ...time.Time) []string {
	t.Helper()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		kept []string
	)
	for i, when := range at {
		wg.Go(func() {
			rec := keyRecord(key, fmt.Sprintf("claimer-%d", i), when)
			err := s.InsertKey(context.Background(), rec)
			switch {
			case err == nil:
				mu.Lock()
				kept = append(kept, rec.Owner)
				mu.Unlock()
			case !errors.Is(err, bff.ErrKeyExists):
				t.Errorf("claim: %v", err)
			}
		})
	}
	wg.Wait()
	return kept
}

// bucketStart is when the bucket of t begins.
func bucketStart(t time.Time) time.Time {
	return time.Unix(bucketOf(t)*int64(bff.KeyTTL/time.Second), 0)
}

func TestIdempotencyRecords(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	// Concurrent inserts of one key: one wins, the others see ErrKeyExists.
	kept := claimRace(t, s, "k1", slices.Repeat([]time.Time{now}, 10)...)
	if len(kept) != 1 {
		t.Fatalf("%d claims kept", len(kept))
	}
	owner := kept[0]
	got, err := s.GetKey(ctx, "k1", now)
	if err != nil || got.State != bff.KeyInFlight || got.Owner != owner || !strings.HasPrefix(got.SagaID, "saga-claimer-") {
		t.Fatalf("in flight: %+v %v", got, err)
	}
	if err := s.CompleteKey(ctx, "k1", "someone-else", 201, []byte("x"), now); !errors.Is(err, bff.ErrKeyChanged) {
		t.Fatalf("complete by another owner: %v", err)
	}
	testenv.Must(t, s.CompleteKey(ctx, "k1", owner, 201, []byte("sealed"), now), "complete")
	if err := s.CompleteKey(ctx, "k1", owner, 500, []byte("again"), now); !errors.Is(err, bff.ErrKeyChanged) {
		t.Fatalf("second completion: %v", err)
	}
	sagaID := got.SagaID
	got, err = s.GetKey(ctx, "k1", now)
	testenv.Must(t, err, "get")
	if got.State != bff.KeyDone || got.Status != 201 || string(got.Answer) != "sealed" || got.SagaID != sagaID {
		t.Fatalf("record: %+v", got)
	}
	// A done record is not released, nor swept while a window reaches it.
	testenv.Must(t, s.DeleteKey(ctx, "k1", owner, now), "delete")
	if _, err := s.GetKey(ctx, "k1", now); err != nil {
		t.Fatalf("done record released: %v", err)
	}
	if err := s.InsertKey(ctx, keyRecord("k1", "o2", now.Add(time.Second))); !errors.Is(err, bff.ErrKeyExists) {
		t.Fatalf("claim of a done key: %v", err)
	}
	for _, at := range []time.Time{now, now.Add(bff.KeyTTL + time.Hour), now.Add(2 * bff.KeyTTL)} {
		if n, err := s.SweepKeys(ctx, at); n != 0 || err != nil {
			t.Fatalf("swept %d (%v) at %s, want 0", n, err, at)
		}
	}
	if n, err := s.SweepKeys(ctx, now.Add(3*bff.KeyTTL)); n != 1 || err != nil {
		t.Fatalf("swept %d (%v), want 1", n, err)
	}
	if _, err := s.GetKey(ctx, "k1", now); !errors.Is(err, bff.ErrKeyNotFound) {
		t.Fatalf("after sweep: %v", err)
	}
	if n := count(t, s.ends); n != 0 {
		t.Fatalf("%d ends left", n)
	}
}

func count(t *testing.T, c *mongo.Collection) int64 {
	t.Helper()
	n, err := c.CountDocuments(context.Background(), bson.D{})
	testenv.Must(t, err, "count")
	return n
}

// A released key is claimed again, as the next generation; the released
// claim can no longer be completed.
func TestReleasedKeyIsClaimedAgain(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	for i := range 3 {
		rec := keyRecord("k", "o", now)
		testenv.Must(t, s.InsertKey(ctx, rec), "claim %d", i)
		owner := rec.Owner
		got, err := s.GetKey(ctx, "k", now)
		if err != nil || got.Owner != owner {
			t.Fatalf("claim %d: %+v %v", i, got, err)
		}
		testenv.Must(t, s.DeleteKey(ctx, "k", owner, now), "release")
		if _, err := s.GetKey(ctx, "k", now); !errors.Is(err, bff.ErrKeyNotFound) {
			t.Fatalf("released: %v", err)
		}
		if err := s.CompleteKey(ctx, "k", owner, 201, []byte("late"), now); !errors.Is(err, bff.ErrKeyChanged) {
			t.Fatalf("completion of a released claim: %v", err)
		}
	}
	if n := count(t, s.claims); n != 3 {
		t.Fatalf("%d claims, want 3 generations", n)
	}
}

// A completion and a release of one claim (its owner answering while a
// retry takes it over): exactly one of them takes effect, and the record
// says which.
func TestCompletionAndReleaseOfOneClaimHaveOneWinner(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	for i := range 20 {
		key := fmt.Sprintf("k%d", i)
		rec := keyRecord(key, "o", now)
		testenv.Must(t, s.InsertKey(ctx, rec), "claim")
		var wg sync.WaitGroup
		var completed error
		wg.Go(func() { completed = s.CompleteKey(ctx, key, rec.Owner, 201, []byte("answer"), now) })
		wg.Go(func() {
			if err := s.DeleteKey(ctx, key, rec.Owner, now); err != nil {
				t.Errorf("release: %v", err)
			}
		})
		wg.Wait()
		got, err := s.GetKey(ctx, key, now)
		switch {
		case completed == nil && (err != nil || got.State != bff.KeyDone || string(got.Answer) != "answer"):
			t.Fatalf("%s: completed, but the record is %+v %v", key, got, err)
		case errors.Is(completed, bff.ErrKeyChanged) && !errors.Is(err, bff.ErrKeyNotFound):
			t.Fatalf("%s: released, but the record is %+v %v", key, got, err)
		case completed != nil && !errors.Is(completed, bff.ErrKeyChanged):
			t.Fatalf("%s: complete: %v", key, completed)
		}
	}
}

// Many workers claiming a key whose record of today, still in flight
// (its request crashed), has expired: each finds generation 0 taken and
// expired, exactly one claims generation 1.
func TestExpiredKeyTakeoverHasOneWinner(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	old := keyRecord("k", "crashed", bucketStart(now))
	old.ExpiresAt = now.Add(-time.Millisecond)
	testenv.Must(t, s.InsertKey(ctx, old), "insert")
	kept := claimRace(t, s, "k", slices.Repeat([]time.Time{now}, 20)...)
	got, err := s.GetKey(ctx, "k", now)
	if len(kept) != 1 || err != nil || got.Owner != kept[0] || got.SagaID == old.SagaID || got.Owner != claimID("k", bucketOf(now), 1) {
		t.Fatalf("claims kept %v, record %+v %v, want generation 1 of today", kept, got, err)
	}
}

// A record of the previous bucket (yesterday's, still live) holds the key:
// a claim in today's bucket is let go, and the old record answered.
func TestYesterdaysRecordHoldsTheKey(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	y := yesterdaysAnswer(t, s, "k", now)
	for range 2 {
		if err := s.InsertKey(ctx, keyRecord("k", "today", now)); !errors.Is(err, bff.ErrKeyExists) {
			t.Fatalf("today's claim: %v", err)
		}
		got, err := s.GetKey(ctx, "k", now)
		if err != nil || got.Owner != y.Owner || got.SagaID != "saga-yesterday" || string(got.Answer) != "first" {
			t.Fatalf("record: %+v %v", got, err)
		}
	}
}

// Two claims of one free key on either side of a bucket boundary, each an
// insert then the check of the other bucket: in every interleaving of the
// four steps at most one claim is kept, and when neither is, the key can
// be claimed again.
func TestClaimsAcrossABucketBoundaryEveryInterleaving(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	boundary := bucketStart(time.Now())
	type step struct {
		who    int
		insert bool
	}
	// The six orders of A's insert, A's check, B's insert, B's check in
	// which each claimer inserts before it checks.
	orders := [][]step{}
	var gen func(prefix []step, done [2]int)
	gen = func(prefix []step, done [2]int) {
		if len(prefix) == 4 {
			orders = append(orders, prefix)
			return
		}
		for who := range 2 {
			if done[who] < 2 {
				d := done
				d[who]++
				gen(append(append([]step{}, prefix...), step{who, done[who] == 0}), d)
			}
		}
	}
	gen(nil, [2]int{})
	if len(orders) != 6 {
		t.Fatalf("%d orders", len(orders))
	}
	for i, order := range orders {
		key := fmt.Sprintf("k%d", i)
		recs := [2]*bff.IdempotencyRecord{
			keyRecord(key, "before", boundary.Add(-time.Second)),
			keyRecord(key, "after", boundary.Add(time.Second)),
		}
		var kept [2]error
		for _, st := range order {
			r := recs[st.who]
			id := claimID(key, bucketOf(r.CreatedAt), 0)
			if st.insert {
				_, err := s.claims.InsertOne(ctx, claimDoc{ID: id, KeyID: key, Bucket: bucketOf(r.CreatedAt),
					CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, LeaseExpiresAt: r.LeaseExpiresAt})
				testenv.Must(t, err, "insert")
				continue
			}
			kept[st.who] = s.keepClaim(ctx, key, id, bucketOf(r.CreatedAt), r.CreatedAt)
			if kept[st.who] != nil && !errors.Is(kept[st.who], bff.ErrKeyExists) {
				t.Fatalf("order %d: %v", i, kept[st.who])
			}
		}
		if kept[0] == nil && kept[1] == nil {
			t.Fatalf("order %v: both claims kept", order)
		}
		if kept[0] != nil && kept[1] != nil {
			if err := s.InsertKey(ctx, keyRecord(key, "retry", boundary.Add(2*time.Second))); err != nil {
				t.Fatalf("order %v: both let go, and the retry: %v", order, err)
			}
		}
	}
}

// The same race under load: claimers on both sides of a boundary, the key
// released between rounds: never two live claims.
func TestConcurrentClaimsAcrossABucketBoundary(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	boundary := bucketStart(time.Now())
	at := append(slices.Repeat([]time.Time{boundary.Add(-time.Second)}, 4), slices.Repeat([]time.Time{boundary.Add(time.Second)}, 4)...)
	for round := range 10 {
		kept := claimRace(t, s, "k", at...)
		if len(kept) > 1 {
			t.Fatalf("round %d: %d claims kept: %v", round, len(kept), kept)
		}
		for _, o := range kept {
			testenv.Must(t, s.DeleteKey(ctx, "k", o, boundary), "release")
		}
	}
}

// The sweep deletes the buckets no window reaches (three days back) and
// keeps the others.
func TestSweepKeepsWhatAWindowReaches(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	for d := range 5 {
		r := keyRecord(fmt.Sprintf("k%d", d), "o", now.Add(-time.Duration(d)*bff.KeyTTL))
		r.State, r.Status, r.Answer = bff.KeyDone, 201, []byte("a")
		testenv.Must(t, s.InsertKey(ctx, r), "insert")
	}
	if n, err := s.SweepKeys(ctx, now); n != 2 || err != nil {
		t.Fatalf("swept %d (%v), want the buckets 3 and 4 days back", n, err)
	}
	if c := count(t, s.claims); c != 3 {
		t.Fatalf("%d claims left, want 3", c)
	}
	if got, err := s.GetKey(ctx, "k0", now); err != nil || got.State != bff.KeyDone {
		t.Fatalf("today's record: %+v %v", got, err)
	}
	// A swept bucket gets no new record, so the store sweeps up to a
	// bucket once: a record put there behind its back stays until the
	// next day's sweep.
	late := bucketOf(now) - 4
	_, err := s.claims.InsertOne(ctx, claimDoc{ID: claimID("late", late, 0), KeyID: "late", Bucket: late})
	testenv.Must(t, err, "a record in a swept bucket")
	if n, err := s.SweepKeys(ctx, now.Add(time.Minute)); n != 0 || err != nil {
		t.Fatalf("second sweep of the day: %d %v, want nothing", n, err)
	}
	if n, err := s.SweepKeys(ctx, now.Add(bff.KeyTTL)); n != 2 || err != nil {
		t.Fatalf("next day's sweep: %d %v, want the late record and the bucket 3 days back", n, err)
	}
}

// The previous release's records (one per key, by key_id) are moved into
// claims when the store opens: a done one replays, an in-flight one stays
// in flight under a claim of its own (its saga completes it through that
// claim; the previous release's owner, stopped before, can no longer), an
// expired one is dropped.
func TestThePreviousReleasesKeysAreUpgraded(t *testing.T) {
	t.Parallel()
	_, db := testenv.Mongo(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	legacy := db.Collection(LegacyKeysCollection)
	// A key this release claimed already keeps its claim.
	mine := keyRecord("claimed", "new", now.Add(-time.Hour))
	pre, err := New(ctx, db)
	testenv.Must(t, err, "store before the old records")
	testenv.Must(t, pre.InsertKey(ctx, mine), "this release's claim")
	_, err = legacy.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "owner-claimed"}, {Key: "key_id", Value: "claimed"}, {Key: "state", Value: bff.KeyDone},
			{Key: "created_at", Value: now.Add(-time.Hour)}, {Key: "expires_at", Value: now.Add(time.Hour)}},
		bson.D{{Key: "_id", Value: "owner-done"}, {Key: "owner", Value: "owner-done"}, {Key: "key_id", Value: "done"},
			{Key: "check", Value: "c"}, {Key: "state", Value: bff.KeyDone}, {Key: "saga_id", Value: "s1"}, {Key: "status", Value: int32(201)},
			{Key: "answer", Value: []byte("sealed")}, {Key: "created_at", Value: now.Add(-time.Hour)}, {Key: "expires_at", Value: now.Add(time.Hour)}},
		bson.D{{Key: "_id", Value: "random"}, {Key: "owner", Value: "owner-running"}, {Key: "key_id", Value: "running"},
			{Key: "check", Value: "c"}, {Key: "state", Value: bff.KeyInFlight}, {Key: "saga_id", Value: "s2"},
			{Key: "lease_expires_at", Value: now.Add(time.Minute)}, {Key: "created_at", Value: now}, {Key: "expires_at", Value: now.Add(bff.KeyTTL)}},
		bson.D{{Key: "_id", Value: "owner-old"}, {Key: "key_id", Value: "old"}, {Key: "state", Value: bff.KeyDone},
			{Key: "created_at", Value: now.Add(-30 * time.Hour)}, {Key: "expires_at", Value: now.Add(-6 * time.Hour)}},
	})
	testenv.Must(t, err, "legacy records")
	s, err := New(ctx, db)
	testenv.Must(t, err, "store")
	if n := count(t, legacy); n != 0 {
		t.Fatalf("%d legacy records left", n)
	}
	got, err := s.GetKey(ctx, "done", now)
	if err != nil || got.State != bff.KeyDone || got.Status != 201 || string(got.Answer) != "sealed" || got.SagaID != "s1" {
		t.Fatalf("done: %+v %v", got, err)
	}
	got, err = s.GetKey(ctx, "running", now)
	if err != nil || got.State != bff.KeyInFlight || got.SagaID != "s2" || !got.LeaseExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("running: %+v %v", got, err)
	}
	if err := s.CompleteKey(ctx, "running", "owner-running", 201, []byte("x"), now); !errors.Is(err, bff.ErrKeyChanged) {
		t.Fatalf("the previous release's owner completed the upgraded claim: %v", err)
	}
	testenv.Must(t, s.CompleteKey(ctx, "running", got.Owner, 201, []byte("x"), now), "complete the upgraded claim")
	if _, err := s.GetKey(ctx, "old", now); !errors.Is(err, bff.ErrKeyNotFound) {
		t.Fatalf("expired: %v", err)
	}
	if got, err := s.GetKey(ctx, "claimed", now); err != nil || got.Owner != mine.Owner || got.State != bff.KeyInFlight {
		t.Fatalf("a key claimed by this release: %+v %v", got, err)
	}
	// A done record is done in its one insert: no end, so no reader can
	// see it in flight between two writes.
	if n := count(t, s.ends); n != 1 { // the "running" one's completion
		t.Fatalf("%d ends, want only the completion's", n)
	}
}

// A released claim taken over by many retries at once, in the same
// bucket: exactly one claims the next generation, and GetKey names it.
func TestReleasedKeyTakeoverHasOneWinner(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	first := keyRecord("k", "first", now)
	testenv.Must(t, s.InsertKey(ctx, first), "first")
	testenv.Must(t, s.DeleteKey(ctx, "k", first.Owner, now), "release")
	kept := claimRace(t, s, "k", slices.Repeat([]time.Time{now.Add(time.Second)}, 20)...)
	got, err := s.GetKey(ctx, "k", now.Add(time.Second))
	if len(kept) != 1 || err != nil || got.Owner != kept[0] || got.Owner == first.Owner {
		t.Fatalf("claims kept %v, record %+v %v", kept, got, err)
	}
}

// A replica whose clock is 30 s ahead claimed just past midnight; a
// replica still before midnight reads that claim and cannot claim the key.
func TestSkewedClaimIsSeen(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	midnight := bucketStart(time.Now()).Add(bff.KeyTTL)
	ahead := keyRecord("k", "ahead", midnight.Add(20*time.Second))
	testenv.Must(t, s.InsertKey(ctx, ahead), "ahead")
	behind := midnight.Add(-10 * time.Second)
	if got, err := s.GetKey(ctx, "k", behind); err != nil || got.Owner != ahead.Owner {
		t.Fatalf("the replica behind reads %+v %v", got, err)
	}
	if err := s.InsertKey(ctx, keyRecord("k", "behind", behind)); !errors.Is(err, bff.ErrKeyExists) {
		t.Fatalf("the replica behind claims: %v", err)
	}
}

// yesterdaysAnswer stores a done record of the key in the previous bucket,
// live at now.
func yesterdaysAnswer(t *testing.T, s *Store, key string, now time.Time) *bff.IdempotencyRecord {
	t.Helper()
	y := keyRecord(key, "yesterday", bucketStart(now).Add(-time.Second))
	y.ExpiresAt = now.Add(time.Hour)
	y.State, y.Status, y.Answer = bff.KeyDone, 201, []byte("first")
	testenv.Must(t, s.InsertKey(context.Background(), y), "yesterday's answer")
	return y
}

// A claim whose check of the other days failed because its deadline had
// passed is still let go (with a deadline of its own), and a claim left in
// flight beside a live record of an older day does not hide that record.
func TestAClaimThatCannotStayLetsGo(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	yesterdaysAnswer(t, s, "k", now)
	r := keyRecord("k", "today", now)
	mine := bucketOf(now)
	id := claimID("k", mine, 0)
	_, err := s.claims.InsertOne(ctx, claimDoc{ID: id, KeyID: "k", Bucket: mine, SagaID: r.SagaID, Check: "c",
		LeaseExpiresAt: r.LeaseExpiresAt, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt})
	testenv.Must(t, err, "today's claim")
	// While it is in flight (before its check), yesterday's answer is the
	// key's record.
	if got, err := s.GetKey(ctx, "k", now); err != nil || got.State != bff.KeyDone || string(got.Answer) != "first" {
		t.Fatalf("beside an in-flight claim: %+v %v, want yesterday's answer", got, err)
	}
	dead, cancel := context.WithCancel(ctx)
	cancel() // the call's deadline passed after the insert
	if err := s.keepClaim(dead, "k", id, mine, now); err == nil || errors.Is(err, bff.ErrKeyExists) {
		t.Fatalf("check with a dead context: %v, want its error", err)
	}
	if e, err := s.endOf(ctx, id); err != nil || e == nil || e.State != keyReleased {
		t.Fatalf("the claim's end: %+v %v, want released", e, err)
	}
	if got, err := s.GetKey(ctx, "k", now); err != nil || got.State != bff.KeyDone {
		t.Fatalf("after: %+v %v, want yesterday's answer", got, err)
	}
}

// A key released many times in one day: a lookup reads about 2·log₂(n)
// claims of that day, not all of them.
func TestALookupReadsLogarithmicallyManyClaims(t *testing.T) {
	t.Parallel()
	rec, db := indexcheck.Connect(t)
	ctx := context.Background()
	s, err := New(ctx, db)
	testenv.Must(t, err, "store")
	now := time.Now()
	const n = 64
	var last *bff.IdempotencyRecord
	for i := range n {
		last = keyRecord("k", fmt.Sprint(i), now)
		testenv.Must(t, s.InsertKey(ctx, last), "claim %d", i)
		if i < n-1 {
			testenv.Must(t, s.DeleteKey(ctx, "k", last.Owner, now), "release %d", i)
		}
	}
	rec.Reset()
	got, err := s.GetKey(ctx, "k", now)
	if err != nil || got.Owner != last.Owner {
		t.Fatalf("%+v %v", got, err)
	}
	finds := 0
	for _, q := range rec.Queries() {
		if q.Collection == ClaimsCollection {
			finds++
		}
	}
	// Today's bucket: generation 0, 1, 2, 4, ..., 64, then a binary search
	// between 32 and 64; the other buckets of the window: one read each.
	if limit := 2*7 + 3; finds > limit || finds < 7 {
		t.Fatalf("%d reads of claims for %d claims, want at most %d", finds, n, limit)
	}
}

// TestAKeyTakenSaysByWhom: an insert of a key a live record holds answers
// ErrKeyExists carrying that record, so the caller does not read it again.
func TestAKeyTakenSaysByWhom(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	first := keyRecord("taken", "a", now)
	testenv.Must(t, s.InsertKey(ctx, first), "first claim")
	err := s.InsertKey(ctx, keyRecord("taken", "b", now.Add(time.Second)))
	var kx *bff.KeyExistsError
	if !errors.Is(err, bff.ErrKeyExists) || !errors.As(err, &kx) || kx.Record == nil {
		t.Fatalf("a second claim: %v", err)
	}
	if kx.Record.Owner != first.Owner || kx.Record.SagaID != first.SagaID || kx.Record.State != bff.KeyInFlight {
		t.Fatalf("the record it met: %+v, want the first claim %+v", kx.Record, first)
	}
}
