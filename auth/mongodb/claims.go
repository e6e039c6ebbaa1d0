package mongodb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/contract"
)

// claimDoc is an email's claim: the lookup by email and its uniqueness
// guard, inserted before the user's write.
type claimDoc struct {
	Email     string    `bson:"_id"`
	UserID    string    `bson:"user_id"`
	ClaimedAt time.Time `bson:"claimed_at"`
	// Key and Until are those of the registration that claimed the email
	// (its Idempotency-Key and Registration-Deadline; none for an email
	// change, an import, a repair or a registration without them): see
	// abandoned.
	Key   string    `bson:"registration_key,omitempty"`
	Until time.Time `bson:"until,omitempty"`
}

// registrationClaim is the claim CreateUser inserts for u.
func registrationClaim(u auth.User) claimDoc {
	c := claimDoc{Email: contract.NormalizeEmail(u.Email), UserID: u.ID, Key: u.RegistrationKey}
	if !u.RegistrationDeadline.IsZero() {
		c.Until = u.RegistrationDeadline.UTC().Truncate(time.Millisecond) // as stored, and as clock() reads
	}
	return c
}

// releaseKey names a claim's generation: the same user may claim the same
// email again later, never at the same millisecond.
func (c claimDoc) releaseKey() string {
	return c.UserID + "/" + strconv.FormatInt(c.ClaimedAt.UnixMilli(), 10) + "/" + c.Email
}

func (c claimDoc) same(o claimDoc) bool {
	return c.Email == o.Email && c.UserID == o.UserID && c.ClaimedAt.UnixMilli() == o.ClaimedAt.UnixMilli()
}

// releaseDoc records that someone deletes (or deleted) a claim's generation.
type releaseDoc struct {
	ID        string    `bson:"_id"`
	CreatedAt time.Time `bson:"created_at"`
}

// claimAttempts bounds claim's loop: each turn either inserts, finds the
// email taken, or saw a claim deleted meanwhile.
const claimAttempts = 4

// readClaim reads an email's claim by _id; auth.ErrNotFound when none.
func (s *Store) readClaim(ctx context.Context, email string) (claimDoc, error) {
	var c claimDoc
	err := s.emails.FindOne(ctx, bson.D{{Key: "_id", Value: email}}).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return claimDoc{}, auth.ErrNotFound
	}
	if err != nil {
		return claimDoc{}, fmt.Errorf("auth store: read email claim: %w", err)
	}
	return c, nil
}

// holder reads a claim's user: valid when it exists with the claim's email.
func (s *Store) holder(ctx context.Context, c claimDoc) (auth.User, bool, error) {
	u, err := s.UserByID(ctx, c.UserID)
	if errors.Is(err, auth.ErrNotFound) {
		return auth.User{}, false, nil
	}
	if err != nil {
		return auth.User{}, false, err
	}
	return u, contract.NormalizeEmail(u.Email) == c.Email, nil
}

// claim makes want.UserID the claimant of want.Email: nil when it
// inserted the claim or the claim already was that user's,
// auth.ErrEmailTaken when a valid claim of another user holds it or an
// invalid one that may still be a write under way (abandoned). An
// abandoned claim is released and claimed anew.
func (s *Store) claim(ctx context.Context, want claimDoc) error {
	for range claimAttempts {
		want.ClaimedAt = s.clock()
		_, err := s.emails.InsertOne(ctx, want)
		if err == nil {
			return nil
		}
		if !isDuplicate(err) {
			return fmt.Errorf("auth store: claim email: %w", err)
		}
		c, err := s.readClaim(ctx, want.Email)
		if errors.Is(err, auth.ErrNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return err
		}
		if c.UserID == want.UserID {
			return nil // ours already: a retry after a crash
		}
		_, valid, err := s.holder(ctx, c)
		if err != nil {
			return err
		}
		if valid || !s.abandoned(c, want) {
			return auth.ErrEmailTaken
		}
		deleted, err := s.release(ctx, c)
		if err != nil {
			return err
		}
		if deleted && s.gotIn(ctx, c) {
			return auth.ErrEmailTaken
		}
		// Released by us or by another claimant: insert again (the other
		// claimant's fresh claim then makes the email taken).
	}
	return auth.ErrEmailTaken
}

// gotIn looks again, once the claim c taken for abandoned is deleted, for
// its user: a write still under way that inserted its user between the
// look that found none and the delete. That user has the email, and gets
// its claim back. A user inserted after the delete finds its claim gone
// when it checks it (keepClaim). The claim is given back whatever the
// caller's context (it must not stay lost).
func (s *Store) gotIn(ctx context.Context, c claimDoc) bool {
	ctx = context.WithoutCancel(ctx)
	if _, valid, err := s.holder(ctx, c); err != nil || !valid {
		return false // the unique index on users.email still guards the insert
	}
	_, _ = s.claimFor(ctx, c.Email, c.UserID)
	return true
}

// abandoned reports whether c, a claim without its user, is taken for no
// write under way any more, so that want may replace it: it is older than
// ClaimGrace; or its registration's deadline has passed by DeadlineMargin
// (no user is inserted after its deadline); or it is an earlier attempt of
// want's own registration (the same Idempotency-Key: the call was sent
// again, after the replica that took it died or its connection broke).
// Should the write still be under way, the unique index on users.email
// lets one of the two users in and the other finds the email taken, and
// the one let in has its claim again (gotIn, keepClaim, repairClaim).
func (s *Store) abandoned(c, want claimDoc) bool {
	now := s.clock()
	switch {
	case now.Sub(c.ClaimedAt) >= ClaimGrace:
		return true
	case !c.Until.IsZero() && now.After(c.Until.Add(DeadlineMargin)):
		return true
	}
	// The same registration, while it is itself in time: sent too late, it
	// is refused for its deadline, and that refusal must not hide an
	// earlier attempt that may still insert.
	return c.Key != "" && c.Key == want.Key && (want.Until.IsZero() || now.Before(want.Until))
}

// release deletes the claim c, unless someone else releases this same
// generation (their release document exists) or it is gone already; it
// reports whether it deleted it. The release document is inserted first,
// so every generation is deleted by exactly one actor, who reads it again
// after the insert: nobody else can have replaced it then, so the delete by
// _id deletes c and never a successor.
func (s *Store) release(ctx context.Context, c claimDoc) (bool, error) {
	_, err := s.releases.InsertOne(ctx, releaseDoc{ID: c.releaseKey(), CreatedAt: s.clock()})
	if isDuplicate(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth store: release email claim: %w", err)
	}
	cur, err := s.readClaim(ctx, c.Email)
	if errors.Is(err, auth.ErrNotFound) || (err == nil && !cur.same(c)) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if s.beforeDelete != nil {
		s.beforeDelete()
	}
	if _, err := s.emails.DeleteOne(ctx, bson.D{{Key: "_id", Value: c.Email}}); err != nil {
		return false, fmt.Errorf("auth store: release email claim: %w", err)
	}
	return true, nil
}

// releaseOwn releases email's claim if it is userID's, best effort: a claim
// left behind (by a failure here) points at a user without that email,
// which reads as free and is replaced once abandoned.
func (s *Store) releaseOwn(ctx context.Context, email, userID string) {
	c, err := s.readClaim(ctx, email)
	if err != nil || c.UserID != userID {
		return
	}
	_, _ = s.release(ctx, c)
}

// keepClaim makes sure userID, who has just written email into the users
// collection, holds its claim: a claimant that took the claim for
// abandoned while the write was under way may have released or replaced
// it. One read by _id when nothing happened; best effort (the claims are
// backfilled at every start).
func (s *Store) keepClaim(ctx context.Context, email, userID string) {
	ctx = context.WithoutCancel(ctx)
	if c, err := s.readClaim(ctx, email); err == nil && c.UserID == userID {
		return
	}
	// Only while the user still has the email: two changes of one user's
	// email may end in the other order.
	if u, err := s.UserByID(ctx, userID); err == nil && u.Email == email {
		_, _ = s.claimFor(ctx, email, userID)
	}
}

// repairClaim claims email for the user who has it, best effort: called
// when the unique index on users.email refused a user the claims did not
// know of (written straight into the collection, not yet backfilled). It
// finds that user by email, a scan on the embedded server, on this failure
// path only.
func (s *Store) repairClaim(ctx context.Context, email string) {
	u, err := s.findOne(ctx, bson.D{{Key: "email", Value: email}})
	if err != nil {
		return
	}
	_ = s.claim(ctx, claimDoc{Email: email, UserID: u.ID})
}

// BackfillEmailClaims gives every user without a valid claim of their
// email one: the users of an import written straight into the users
// collection, or of a database from before the claims. It reads both
// collections once (two scans) and writes only what is missing, so running
// it again (the auth service runs it at every start) changes nothing; it
// returns how many claims it wrote. A claim of another user is replaced
// whatever its age: the unique index on users.email says this user has
// the email.
func (s *Store) BackfillEmailClaims(ctx context.Context) (int, error) {
	have := map[string]string{} // email -> user id
	cur, err := s.emails.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "user_id", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("auth store: read email claims: %w", err)
	}
	for cur.Next(ctx) {
		var c claimDoc
		if err := cur.Decode(&c); err != nil {
			_ = cur.Close(ctx)
			return 0, fmt.Errorf("auth store: decode email claim: %w", err)
		}
		have[c.Email] = c.UserID
	}
	if err := errors.Join(cur.Err(), cur.Close(ctx)); err != nil {
		return 0, fmt.Errorf("auth store: read email claims: %w", err)
	}
	type ref struct {
		ID    string `bson:"_id"`
		Email string `bson:"email"`
	}
	ucur, err := s.users.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "email", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("auth store: read users: %w", err)
	}
	var missing []ref
	for ucur.Next(ctx) {
		var r ref
		if err := ucur.Decode(&r); err != nil {
			_ = ucur.Close(ctx)
			return 0, fmt.Errorf("auth store: decode user: %w", err)
		}
		if r.Email = contract.NormalizeEmail(r.Email); r.Email != "" && have[r.Email] != r.ID {
			missing = append(missing, r)
		}
	}
	if err := errors.Join(ucur.Err(), ucur.Close(ctx)); err != nil {
		return 0, fmt.Errorf("auth store: read users: %w", err)
	}
	n := 0
	for _, r := range missing {
		ok, err := s.claimFor(ctx, r.Email, r.ID)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// claimFor makes userID, who has email in the users collection, its
// claimant: any other claim is replaced; it reports whether it wrote one.
func (s *Store) claimFor(ctx context.Context, email, userID string) (bool, error) {
	for range claimAttempts {
		_, err := s.emails.InsertOne(ctx, claimDoc{Email: email, UserID: userID, ClaimedAt: s.clock()})
		if err == nil {
			return true, nil
		}
		if !isDuplicate(err) {
			return false, fmt.Errorf("auth store: claim email: %w", err)
		}
		c, err := s.readClaim(ctx, email)
		if errors.Is(err, auth.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if c.UserID == userID {
			return false, nil
		}
		if _, valid, err := s.holder(ctx, c); err != nil || valid {
			return false, err // the user changed their email meanwhile
		}
		if _, err := s.release(ctx, c); err != nil {
			return false, err
		}
	}
	return false, nil
}

// SweepEmailReleases deletes release documents created before t (by the
// created_at index; not a hot path).
func (s *Store) SweepEmailReleases(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.releases.DeleteMany(ctx, bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: before.UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("auth store: sweep email releases: %w", err)
	}
	return res.DeletedCount, nil
}

// ImportResult is one imported user's outcome: nil, auth.ErrEmailTaken,
// or what failed.
type ImportResult struct{ Err error }

// ImportUsers writes many users at once, for seeding and imports: their
// claims in one unordered bulk insert, then the users whose claim went in
// in another; a user whose claim was taken goes the way of CreateUser, one
// at a time (a stale claim is replaced, a valid one is ErrEmailTaken).
// Results are in the order of us.
func (s *Store) ImportUsers(ctx context.Context, us []auth.User) ([]ImportResult, error) {
	out := make([]ImportResult, len(us))
	if len(us) == 0 {
		return out, nil
	}
	now := s.clock()
	docs := make([]userDoc, len(us))
	claims := make([]any, len(us))
	for i, u := range us {
		docs[i] = userDocOf(u)
		claims[i] = claimDoc{Email: docs[i].Email, UserID: docs[i].ID, ClaimedAt: now}
	}
	claimed := make([]bool, len(us))
	for i := range claimed {
		claimed[i] = true
	}
	_, err := s.emails.InsertMany(ctx, claims, options.InsertMany().SetOrdered(false))
	if err := bulkFailures(err, func(i int, _ error) {
		claimed[i] = false
	}); err != nil {
		return nil, fmt.Errorf("auth store: import claims: %w", err)
	}
	var batch []any
	var idx []int
	for i := range us {
		if claimed[i] {
			batch = append(batch, docs[i])
			idx = append(idx, i)
		}
	}
	if len(batch) > 0 {
		_, err := s.users.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
		if err := bulkFailures(err, func(j int, err error) {
			i := idx[j]
			s.releaseOwn(ctx, docs[i].Email, docs[i].ID)
			if isDuplicate(err) {
				err = auth.ErrEmailTaken
			}
			out[i].Err = err
		}); err != nil {
			return nil, fmt.Errorf("auth store: import users: %w", err)
		}
	}
	for i, u := range us {
		if !claimed[i] {
			out[i].Err = s.CreateUser(ctx, u)
		}
	}
	return out, nil
}

// bulkFailures calls failed for each document an unordered InsertMany
// refused; any other error is returned.
func bulkFailures(err error, failed func(i int, err error)) error {
	if err == nil {
		return nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return err
	}
	for _, we := range bwe.WriteErrors {
		failed(we.Index, we)
	}
	return nil
}
