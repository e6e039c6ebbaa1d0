package mongodb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/indexcheck"
)

// hotPath drives the store's hot-path operations: what login, register,
// GET profile/, users/?email=, users/<id>/, the profile update, the
// deletions and the token refresh and logout do.
func hotPath(t *testing.T, s *mongodb.Store) {
	t.Helper()
	ctx := context.Background()
	u := user("hot@example.com")
	if _, err := s.UserByEmail(ctx, u.Email); !errors.Is(err, auth.ErrNotFound) { // register's check
		t.Fatalf("free email: %v", err)
	}
	testenv.Must(t, s.CreateUser(ctx, u), "create")
	if err := s.CreateUser(ctx, user(u.Email)); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("taken: %v", err)
	}
	_, err := s.UserByEmail(ctx, u.Email) // login, users/?email=
	testenv.Must(t, err, "by email")
	_, err = s.UserByID(ctx, u.ID) // profile/, users/<id>/, refresh
	testenv.Must(t, err, "by id")
	name, email := "N", "hot2@example.com"
	_, err = s.UpdateUser(ctx, u.ID, auth.ProfileUpdate{FirstName: &name, Email: &email})
	testenv.Must(t, err, "update")
	testenv.Must(t, s.BlacklistToken(ctx, contract.NewID(), u.ID, time.Now().Add(time.Hour)), "blacklist")
	testenv.Must(t, s.DeleteUser(ctx, u.ID), "delete")
}

// TestQueriesAreIndexed: every query of every store operation is served
// by an index the store creates, on MongoDB; the exempt ones read a whole
// collection on purpose (the backfill at start, the repair of an
// unclaimed import's email).
func TestQueriesAreIndexed(t *testing.T) {
	t.Parallel()
	rec, db := indexcheck.Connect(t)
	c := newClock()
	s := mongodb.New(db, c.option())
	ctx := context.Background()
	testenv.Must(t, s.EnsureIndexes(ctx), "indexes")
	hotPath(t, s)
	u := user("more@example.com")
	testenv.Must(t, s.CreateUser(ctx, u), "create")
	testenv.Must(t, s.SetPasswordHash(ctx, u.ID, "h", "h2"), "rehash")
	_, err := s.ListUsers(ctx, auth.ListQuery{Role: contract.RoleCustomer, After: contract.NewID(), Limit: 10})
	testenv.Must(t, err, "list")
	_, err = s.ListUsers(ctx, auth.ListQuery{Limit: 10})
	testenv.Must(t, err, "list all")
	_, err = s.SweepBlacklist(ctx, time.Now())
	testenv.Must(t, err, "sweep")
	_, err = s.SweepEmailReleases(ctx, time.Now())
	testenv.Must(t, err, "sweep releases")
	_, err = s.ImportUsers(ctx, []auth.User{user("imp@example.com"), user("more@example.com")})
	testenv.Must(t, err, "import")
	_, err = s.BackfillEmailClaims(ctx)
	testenv.Must(t, err, "backfill")
	// A stale claim replaced.
	testenv.Must(t, s.Claim(ctx, "stale@example.com", contract.NewID()), "claim")
	c.pastGrace()
	testenv.Must(t, s.CreateUser(ctx, user("stale@example.com")), "over a stale claim")

	rec.CheckIndexed(t, db,
		indexcheck.Exempt{Collection: mongodb.UsersCollection, Command: "find", Fields: []string{}, Reason: "BackfillEmailClaims reads every user once at start"},
		indexcheck.Exempt{Collection: mongodb.EmailsCollection, Command: "find", Fields: []string{}, Reason: "BackfillEmailClaims reads every claim once at start"},
	)
}

// TestHotPathIsIDOnly: the hot paths send only lone _id equalities, the
// lookups the embedded FerretDB answers from an index (flat from 100 to
// 10,000 users).
func TestHotPathIsIDOnly(t *testing.T) {
	t.Parallel()
	rec, db := indexcheck.Connect(t)
	s := mongodb.New(db)
	testenv.Must(t, s.EnsureIndexes(context.Background()), "indexes")
	rec.Reset()
	hotPath(t, s)
	rec.CheckIDOnly(t)
}
