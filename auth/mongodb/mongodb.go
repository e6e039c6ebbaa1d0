// Package mongodb is the auth service's Store on MongoDB (and the embedded
// FerretDB used in development and tests).
//
// Stored documents:
//
//	users: {
//	  _id:          string, the user's UUIDv4
//	  email:        string, normalised (trimmed, lower-cased); unique index "email_unique"
//	  first_name, last_name, phone_number: string
//	  user_role:    string, customer | employee | admin
//	  date_joined:  date
//	  password:     string, the encoded hash ($argon2id$..., Django's pbkdf2_sha256$..., or "!..." unusable)
//	  registration_key: string, the Idempotency-Key of the registration that created the user; absent when none
//	}
//	refresh_blacklist: {
//	  _id:            string, the refresh token's jti (the unique key: inserting it is the atomic "use")
//	  user_id:        string
//	  expires_at:     date, the token's exp; index "expires_at" for the sweep
//	  blacklisted_at: date
//	}
//
// FerretDB has neither TTL indexes nor atomic read-modify-write, so used
// tokens are recorded by insert (a duplicate key means "already used") and
// expired entries are removed by the service's periodic sweep.
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
	UsersCollection     = "users"
	BlacklistCollection = "refresh_blacklist"
)

// Store implements auth.Store.
type Store struct {
	users     *mongo.Collection
	blacklist *mongo.Collection
}

var _ auth.Store = (*Store)(nil)

// New returns the store over db. Call EnsureIndexes once at start.
func New(db *mongo.Database) *Store {
	return &Store{users: db.Collection(UsersCollection), blacklist: db.Collection(BlacklistCollection)}
}

// EnsureIndexes creates the unique email index and the blacklist's expiry index.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	_, err := s.users.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "email", Value: 1}},
		Options: options.Index().SetName("email_unique").SetUnique(true),
	})
	if err != nil {
		return fmt.Errorf("auth store: users index: %w", err)
	}
	_, err = s.blacklist.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "expires_at", Value: 1}},
		Options: options.Index().SetName("expires_at"),
	})
	if err != nil {
		return fmt.Errorf("auth store: blacklist index: %w", err)
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

func toDoc(u auth.User) userDoc {
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

// CreateUser inserts u; the unique index turns a taken email into ErrEmailTaken.
func (s *Store) CreateUser(ctx context.Context, u auth.User) error {
	_, err := s.users.InsertOne(ctx, toDoc(u))
	if isDuplicate(err) {
		return auth.ErrEmailTaken
	}
	if err != nil {
		return fmt.Errorf("auth store: insert user: %w", err)
	}
	return nil
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

// UserByEmail returns the user with the normalised email or auth.ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (auth.User, error) {
	return s.findOne(ctx, bson.D{{Key: "email", Value: contract.NormalizeEmail(email)}})
}

// UpdateUser $sets only the fields sent and returns the stored user.
func (s *Store) UpdateUser(ctx context.Context, id string, upd auth.ProfileUpdate) (auth.User, error) {
	set := bson.D{}
	if upd.Email != nil {
		set = append(set, bson.E{Key: "email", Value: contract.NormalizeEmail(*upd.Email)})
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
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}})
	switch {
	case isDuplicate(err):
		return auth.User{}, auth.ErrEmailTaken
	case err != nil:
		return auth.User{}, fmt.Errorf("auth store: update user: %w", err)
	case res.MatchedCount == 0:
		return auth.User{}, auth.ErrNotFound
	}
	return s.UserByID(ctx, id)
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

// DeleteUser removes the user or returns auth.ErrNotFound.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	res, err := s.users.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("auth store: delete user: %w", err)
	}
	if res.DeletedCount == 0 {
		return auth.ErrNotFound
	}
	return nil
}

type blacklistDoc struct {
	JTI           string    `bson:"_id"`
	UserID        string    `bson:"user_id"`
	ExpiresAt     time.Time `bson:"expires_at"`
	BlacklistedAt time.Time `bson:"blacklisted_at"`
}

// BlacklistToken inserts the jti; a duplicate key is auth.ErrTokenBlacklisted.
func (s *Store) BlacklistToken(ctx context.Context, jti, userID string, expiresAt time.Time) error {
	_, err := s.blacklist.InsertOne(ctx, blacklistDoc{JTI: jti, UserID: userID, ExpiresAt: expiresAt.UTC(), BlacklistedAt: time.Now().UTC()})
	if mongo.IsDuplicateKeyError(err) {
		return auth.ErrTokenBlacklisted
	}
	if err != nil {
		return fmt.Errorf("auth store: blacklist token: %w", err)
	}
	return nil
}

// SweepBlacklist deletes the entries of tokens that expired before t.
func (s *Store) SweepBlacklist(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.blacklist.DeleteMany(ctx, bson.D{{Key: "expires_at", Value: bson.D{{Key: "$lt", Value: before.UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("auth store: sweep blacklist: %w", err)
	}
	return res.DeletedCount, nil
}
