// Package mongodb is the auth service's Store on MongoDB (and the embedded
// FerretDB used in development and tests).
//
// Stored documents:
//
//	users: {
//	  _id:          string, the user's UUIDv4
//	  email:        string, normalised (trimmed, lower-cased); unique index "email_unique"
//	  first_name, last_name, phone_number: string
//	  user_role:    string, customer | employee | admin; index "user_role_id" {user_role, _id} for the listing
//	  date_joined:  date
//	  password:     string, the encoded hash ($argon2id$..., Django's pbkdf2_sha256$..., or "!..." unusable)
//	  registration_key: string, the Idempotency-Key of the registration that created the user; absent when none
//	}
//	user_emails: {                 the email claims: the lookup by email and its uniqueness guard
//	  _id:        string, the normalised email
//	  user_id:    string, the user who claimed it
//	  claimed_at: date
//	  registration_key: string, the Idempotency-Key of the registration that claimed it; absent when none
//	  until:      date, that registration's Registration-Deadline; absent when none
//	}
//	user_email_releases: {         one per claim deleted: who may delete it
//	  _id:        string, "<user_id>/<claimed_at in Unix ms>/<email>", the claim's generation
//	  created_at: date; index "created_at" for the sweep
//	}
//	refresh_blacklist: {
//	  _id:            string, the refresh token's jti (the unique key: inserting it is the atomic "use")
//	  user_id:        string
//	  expires_at:     date, the token's exp; index "expires_at" for the sweep
//	  blacklisted_at: date
//	}
//
// Every hot lookup is a lone {_id: value} filter, the only one the embedded
// FerretDB answers from an index (docs/indexes.md): a user by id, a used
// refresh token by jti, and a user by email as two of them, the claim of
// the email, then its user. FerretDB has neither TTL indexes nor atomic
// read-modify-write, so contended state is inserted under a unique _id
// (a claim, a release, a used token) and expired entries are removed by
// the service's periodic sweeps.
//
// # Email claims
//
// A claim is valid when its user exists with that email; anything else (a
// crash between the claim and the user's write, an email change or a
// deletion half done) reads as "no such user" and is replaced by the next
// claimant once it is older than ClaimGrace (a younger one may be a write
// under way), or sooner when it was a registration's whose deadline has
// passed by DeadlineMargin (no user is inserted after its deadline), or an
// earlier attempt of the same registration sent again in time (the same
// Idempotency-Key: the replica that took it died). Should the write still
// be under way, the user that gets in gets its claim back (claims.go). The
// unique index on users.email stays as a second guard, so two users never
// share an email whatever the claims say. A claim is only
// ever deleted by whoever inserted its release document first, so of two
// actors releasing or replacing the same claim exactly one deletes it, and
// never a successor (FerretDB's conditional delete is a read then a delete
// by _id, not atomic). Users written straight into the users collection (an
// import) have no claim until BackfillEmailClaims runs: the auth service
// runs it at start.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/contract"
)

// Collection names.
const (
	UsersCollection         = "users"
	EmailsCollection        = "user_emails"
	EmailReleasesCollection = "user_email_releases"
	BlacklistCollection     = "refresh_blacklist"
)

// ClaimGrace is how long a claim that is not (yet) valid is left to its
// claimant: a registration inserts its user, an email change updates its
// user, right after claiming. An invalid claim older than this is a crash's
// leftover and is replaced (a registration's may be sooner: see abandoned
// in claims.go).
const ClaimGrace = time.Minute

// MaxClockSkew is how far a replica's clock may be off the database's: a
// registration's deadline is set on the BFF's clock, which agrees with
// the auth service's within 2 s when each is within this of its
// database's.
const MaxClockSkew = time.Second

// InsertAllowance is how long after its deadline a registration's insert
// that started just before it may still land.
const InsertAllowance = time.Second

// DeadlineMargin is how long after a registration's deadline, on another
// replica's clock, its claim may still be a write under way: the insert's
// allowance, and two replicas' clocks each up to MaxClockSkew off the
// database's. The BFF's reconciler waits as long after the deadline
// before it takes "no user" for final (its grace).
const DeadlineMargin = InsertAllowance + 2*MaxClockSkew

// ReleaseRetention is how long a release document is kept. While it
// exists, nobody else deletes the claim it names; the sweep removes it
// after this, so a claimant that crashed holding it blocks an email for at
// most this long (plus the sweep's period).
const ReleaseRetention = 10 * time.Minute

// Store implements auth.Store.
type Store struct {
	users     *mongo.Collection
	emails    *mongo.Collection
	releases  *mongo.Collection
	blacklist *mongo.Collection
	now       func() time.Time
	// beforeDelete, when set (by tests), runs in release between the
	// claim's last read and its delete; beforeInsert in CreateUser
	// between the deadline's check and the insert; afterUpdate in
	// UpdateUser right after the update.
	beforeDelete, beforeInsert, afterUpdate func()
}

var _ auth.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithClock makes the store read the time from now (claims' ages, the
// documents' dates).
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns the store over db. Call EnsureIndexes and then
// BackfillEmailClaims once at start.
func New(db *mongo.Database, opts ...Option) *Store {
	s := &Store{
		users: db.Collection(UsersCollection), emails: db.Collection(EmailsCollection),
		releases: db.Collection(EmailReleasesCollection), blacklist: db.Collection(BlacklistCollection),
		now: time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// EnsureIndexes creates the unique email index (the second guard behind the
// claims), the listing's index, the blacklist's and the releases' expiry
// indexes. The claims need none but their _id.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	for _, ix := range []struct {
		coll  *mongo.Collection
		model mongo.IndexModel
	}{
		{s.users, mongo.IndexModel{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetName("email_unique").SetUnique(true)}},
		{s.users, mongo.IndexModel{Keys: bson.D{{Key: "user_role", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("user_role_id")}},
		{s.blacklist, mongo.IndexModel{Keys: bson.D{{Key: "expires_at", Value: 1}}, Options: options.Index().SetName("expires_at")}},
		{s.releases, mongo.IndexModel{Keys: bson.D{{Key: "created_at", Value: 1}}, Options: options.Index().SetName("created_at")}},
	} {
		if _, err := ix.coll.Indexes().CreateOne(ctx, ix.model); err != nil {
			return fmt.Errorf("auth store: %s index %s: %w", ix.coll.Name(), *ix.model.Options.Name, err)
		}
	}
	return nil
}

// userDoc is the stored shape of a user.
type userDoc struct {
	ID          string    `bson:"_id"`
	Email       string    `bson:"email"`
	FirstName   string    `bson:"first_name"`
	LastName    string    `bson:"last_name"`
	PhoneNumber string    `bson:"phone_number"`
	Role        string    `bson:"user_role"`
	DateJoined  time.Time `bson:"date_joined"`
	Password    string    `bson:"password"`
	// RegistrationKey is absent from the documents of users registered
	// without a key (and of every user stored before it existed).
	RegistrationKey string `bson:"registration_key,omitempty"`
}

// userDocOf is u as the users collection stores it (the email normalized).
func userDocOf(u auth.User) userDoc {
	return userDoc{
		ID: u.ID, Email: contract.NormalizeEmail(u.Email), FirstName: u.FirstName, LastName: u.LastName,
		PhoneNumber: u.PhoneNumber, Role: u.Role, DateJoined: u.DateJoined.UTC(), Password: u.PasswordHash,
		RegistrationKey: u.RegistrationKey,
	}
}

func (d userDoc) user() auth.User {
	return auth.User{
		ID: d.ID, Email: d.Email, FirstName: d.FirstName, LastName: d.LastName,
		PhoneNumber: d.PhoneNumber, Role: d.Role, DateJoined: d.DateJoined.UTC(), PasswordHash: d.Password,
		RegistrationKey: d.RegistrationKey,
	}
}

// CreateUser claims the email, then inserts u, unless its registration's
// deadline has come (auth.ErrDeadlineExceeded, and nothing is left): the
// deadline is checked before the claim and again immediately before the
// insert. After the insert the claim is read again: one released or
// replaced meanwhile (by a claimant that took this write for abandoned) is
// the new user's again (keepClaim). An insert refused by the unique index
// on users.email (a user the claims did not know, an import not yet
// backfilled) releases the claim, repairs that user's and is
// ErrEmailTaken; one that got no answer keeps the claim if the user is
// there after all.
func (s *Store) CreateUser(ctx context.Context, u auth.User) error {
	d := userDocOf(u)
	late := func() bool { return !u.RegistrationDeadline.IsZero() && !s.now().Before(u.RegistrationDeadline) }
	if late() { // before the claim too: a late call touches no claim
		return auth.ErrDeadlineExceeded
	}
	if err := s.claim(ctx, registrationClaim(u)); err != nil {
		return err
	}
	if late() {
		s.releaseOwn(ctx, d.Email, d.ID)
		return auth.ErrDeadlineExceeded
	}
	if s.beforeInsert != nil {
		s.beforeInsert()
	}
	_, err := s.users.InsertOne(ctx, d)
	switch {
	case err == nil:
		s.keepClaim(ctx, d.Email, d.ID)
		return nil
	case isDuplicate(err):
		s.releaseOwn(ctx, d.Email, d.ID)
		s.repairClaim(ctx, d.Email)
		return auth.ErrEmailTaken
	}
	// No answer (a timeout, a cancelled request, a connection cut): the
	// insert may have landed. The user keeps the claim if it did; else the
	// claim is released, or left to be taken for abandoned when even that
	// cannot be told.
	bg := context.WithoutCancel(ctx)
	switch _, gerr := s.UserByID(bg, d.ID); {
	case gerr == nil:
		s.keepClaim(bg, d.Email, d.ID)
		return nil
	case errors.Is(gerr, auth.ErrNotFound):
		s.releaseOwn(bg, d.Email, d.ID)
	}
	return fmt.Errorf("auth store: insert user: %w", err)
}

func (s *Store) findOne(ctx context.Context, filter bson.D) (auth.User, error) {
	var d userDoc
	err := s.users.FindOne(ctx, filter).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return auth.User{}, auth.ErrNotFound
	}
	if err != nil {
		return auth.User{}, fmt.Errorf("auth store: find user: %w", err)
	}
	return d.user(), nil
}

// UserByID returns the user or auth.ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id string) (auth.User, error) {
	return s.findOne(ctx, bson.D{{Key: "_id", Value: id}})
}

// UserByEmail returns the user with the normalised email or
// auth.ErrNotFound: the email's claim, then its user, both by _id; a claim
// whose user is gone or has another email is no user.
func (s *Store) UserByEmail(ctx context.Context, email string) (auth.User, error) {
	email = contract.NormalizeEmail(email)
	c, err := s.readClaim(ctx, email)
	if err != nil {
		return auth.User{}, err
	}
	u, valid, err := s.holder(ctx, c)
	if err != nil {
		return auth.User{}, err
	}
	if !valid {
		return auth.User{}, auth.ErrNotFound
	}
	return u, nil
}

// UpdateUser $sets only the fields sent and returns the stored user. A new
// email is claimed first, the user updated, then the old email's claim
// released; a crash in between leaves a claim whose user has another
// email, which reads as free.
func (s *Store) UpdateUser(ctx context.Context, id string, upd auth.ProfileUpdate) (auth.User, error) {
	set := bson.D{}
	var oldEmail, newEmail string
	if upd.Email != nil {
		newEmail = contract.NormalizeEmail(*upd.Email)
		old, err := s.UserByID(ctx, id)
		if err != nil {
			return auth.User{}, err
		}
		if oldEmail = old.Email; oldEmail != newEmail {
			if err := s.claim(ctx, claimDoc{Email: newEmail, UserID: id}); err != nil {
				return auth.User{}, err
			}
		}
		set = append(set, bson.E{Key: "email", Value: newEmail})
	}
	if upd.FirstName != nil {
		set = append(set, bson.E{Key: "first_name", Value: *upd.FirstName})
	}
	if upd.LastName != nil {
		set = append(set, bson.E{Key: "last_name", Value: *upd.LastName})
	}
	if upd.PhoneNumber != nil {
		set = append(set, bson.E{Key: "phone_number", Value: *upd.PhoneNumber})
	}
	if len(set) == 0 {
		return s.UserByID(ctx, id)
	}
	changed := newEmail != "" && oldEmail != newEmail
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}})
	if s.afterUpdate != nil {
		s.afterUpdate()
	}
	if changed && (err != nil || res.MatchedCount == 0) {
		s.releaseOwn(ctx, newEmail, id)
	}
	switch {
	case isDuplicate(err):
		if changed {
			s.repairClaim(ctx, newEmail)
		}
		return auth.User{}, auth.ErrEmailTaken
	case err != nil:
		return auth.User{}, fmt.Errorf("auth store: update user: %w", err)
	case res.MatchedCount == 0:
		return auth.User{}, auth.ErrNotFound
	}
	if !changed {
		return s.UserByID(ctx, id)
	}
	s.keepClaim(ctx, newEmail, id)
	u, err := s.UserByID(ctx, id)
	if err == nil && u.Email != oldEmail { // not changed back meanwhile
		s.releaseOwn(ctx, oldEmail, id)
	}
	return u, err
}

// isDuplicate recognises a unique-index violation. MongoDB reports it as a
// duplicate key (E11000) on inserts and updates; FerretDB v1 does so on
// inserts but answers an update that breaks a unique index with an
// InternalError carrying SQLite's "UNIQUE constraint failed".
func isDuplicate(err error) bool {
	if err == nil {
		return false
	}
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// SetPasswordHash replaces the hash when it still is old.
func (s *Store) SetPasswordHash(ctx context.Context, id, old, new string) error {
	_, err := s.users.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "password", Value: old}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "password", Value: new}}}})
	if err != nil {
		return fmt.Errorf("auth store: set password: %w", err)
	}
	return nil
}

// DeleteUser removes the user, then releases its email's claim (a claim
// left by a crash in between points at no user: it reads as free).
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	u, err := s.UserByID(ctx, id)
	if err != nil {
		return err
	}
	res, err := s.users.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("auth store: delete user: %w", err)
	}
	if res.DeletedCount == 0 {
		return auth.ErrNotFound
	}
	s.releaseOwn(ctx, contract.NormalizeEmail(u.Email), id)
	return nil
}

// ListUsers reads a page of the listing: {user_role, _id: {$gt: after}}
// sorted by _id, which the index user_role_id serves on MongoDB (without a
// role, the _id index). On the embedded FerretDB every page reads the
// whole collection.
func (s *Store) ListUsers(ctx context.Context, q auth.ListQuery) ([]auth.User, error) {
	filter := bson.D{}
	if q.Role != "" {
		filter = append(filter, bson.E{Key: "user_role", Value: q.Role})
	}
	if q.After != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: q.After}}})
	}
	cur, err := s.users.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(q.Limit)))
	if err != nil {
		return nil, fmt.Errorf("auth store: list users: %w", err)
	}
	var docs []userDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("auth store: list users: %w", err)
	}
	out := make([]auth.User, len(docs))
	for i, d := range docs {
		out[i] = d.user()
	}
	return out, nil
}

type blacklistDoc struct {
	JTI           string    `bson:"_id"`
	UserID        string    `bson:"user_id"`
	ExpiresAt     time.Time `bson:"expires_at"`
	BlacklistedAt time.Time `bson:"blacklisted_at"`
}

// BlacklistToken inserts the jti; a duplicate key is auth.ErrTokenBlacklisted.
func (s *Store) BlacklistToken(ctx context.Context, jti, userID string, expiresAt time.Time) error {
	_, err := s.blacklist.InsertOne(ctx, blacklistDoc{JTI: jti, UserID: userID, ExpiresAt: expiresAt.UTC(), BlacklistedAt: s.clock()})
	if mongo.IsDuplicateKeyError(err) {
		return auth.ErrTokenBlacklisted
	}
	if err != nil {
		return fmt.Errorf("auth store: blacklist token: %w", err)
	}
	return nil
}

// Blacklisted looks the jti up by _id.
func (s *Store) Blacklisted(ctx context.Context, jti string) (bool, error) {
	err := s.blacklist.FindOne(ctx, bson.D{{Key: "_id", Value: jti}}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth store: blacklist lookup: %w", err)
	}
	return true, nil
}

// SweepBlacklist deletes the entries of tokens that expired before t.
func (s *Store) SweepBlacklist(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.blacklist.DeleteMany(ctx, bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: before.UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("auth store: sweep blacklist: %w", err)
	}
	return res.DeletedCount, nil
}
