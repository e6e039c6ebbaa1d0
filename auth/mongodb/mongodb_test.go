package mongodb_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newStore(t *testing.T) *mongodb.Store {
	t.Helper()
	_, db := testenv.Mongo(t)
	s := mongodb.New(db)
	testenv.Must(t, s.EnsureIndexes(context.Background()), "indexes")
	testenv.Must(t, s.EnsureIndexes(context.Background()), "indexes again (idempotent)")
	return s
}

func user(email string) auth.User {
	return auth.User{ID: contract.NewID(), Email: email, FirstName: "F", LastName: "L", Role: contract.RoleCustomer,
		DateJoined: time.Now().UTC().Truncate(time.Millisecond), PasswordHash: "h"}
}

func TestUsers(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	u := user("a@example.com")
	testenv.Must(t, s.CreateUser(ctx, u), "create")
	got, err := s.UserByID(ctx, u.ID)
	if err != nil || got != u {
		t.Fatalf("UserByID = %+v, %v; want %+v", got, err, u)
	}
	if got, err := s.UserByEmail(ctx, " A@Example.com "); err != nil || got.ID != u.ID {
		t.Fatalf("UserByEmail: %v", err)
	}
	if err := s.CreateUser(ctx, user("A@EXAMPLE.COM")); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("case-variant duplicate: %v", err)
	}
	b := user("b@example.com")
	testenv.Must(t, s.CreateUser(ctx, b), "create b")
	taken := "a@example.com"
	if _, err := s.UpdateUser(ctx, b.ID, auth.ProfileUpdate{Email: &taken}); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("update to a taken email: %v", err)
	}
	name := "Newname"
	upd, err := s.UpdateUser(ctx, b.ID, auth.ProfileUpdate{FirstName: &name})
	if err != nil || upd.FirstName != "Newname" || upd.Email != "b@example.com" || upd.LastName != "L" {
		t.Fatalf("update: %+v %v", upd, err)
	}
	if _, err := s.UpdateUser(ctx, contract.NewID(), auth.ProfileUpdate{FirstName: &name}); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("update of a missing user: %v", err)
	}
	// The rehash only replaces the hash it read.
	testenv.Must(t, s.SetPasswordHash(ctx, u.ID, "stale", "new1"), "set")
	if got, _ := s.UserByID(ctx, u.ID); got.PasswordHash != "h" {
		t.Fatal("a stale rehash overwrote the hash")
	}
	testenv.Must(t, s.SetPasswordHash(ctx, u.ID, "h", "new2"), "set")
	if got, _ := s.UserByID(ctx, u.ID); got.PasswordHash != "new2" {
		t.Fatal("rehash not stored")
	}
	testenv.Must(t, s.DeleteUser(ctx, u.ID), "delete")
	if err := s.DeleteUser(ctx, u.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := s.UserByID(ctx, u.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("deleted user: %v", err)
	}
}

// TestRegistrationKey: a user's registration key is stored as
// registration_key and read back; a user without one has no member.
func TestRegistrationKey(t *testing.T) {
	t.Parallel()
	_, db := testenv.Mongo(t)
	s := mongodb.New(db)
	ctx := context.Background()
	testenv.Must(t, s.EnsureIndexes(ctx), "indexes")
	k := user("keyed@example.com")
	k.RegistrationKey = "saga-7d0c1f9a"
	plain := user("plain@example.com")
	testenv.Must(t, s.CreateUser(ctx, k), "create keyed")
	testenv.Must(t, s.CreateUser(ctx, plain), "create plain")
	if got, err := s.UserByEmail(ctx, "keyed@example.com"); err != nil || got != k {
		t.Fatalf("UserByEmail = %+v, %v; want %+v", got, err, k)
	}
	if got, err := s.UserByID(ctx, plain.ID); err != nil || got != plain {
		t.Fatalf("UserByID = %+v, %v; want %+v", got, err, plain)
	}
	name := "Renamed"
	if got, err := s.UpdateUser(ctx, k.ID, auth.ProfileUpdate{FirstName: &name}); err != nil || got.RegistrationKey != k.RegistrationKey {
		t.Fatalf("a profile update lost the key: %+v, %v", got, err)
	}
	var doc bson.M
	testenv.Must(t, db.Collection(mongodb.UsersCollection).FindOne(ctx, bson.D{{Key: "_id", Value: k.ID}}).Decode(&doc), "raw keyed")
	if doc["registration_key"] != "saga-7d0c1f9a" {
		t.Fatalf("stored document %v", doc)
	}
	doc = nil
	testenv.Must(t, db.Collection(mongodb.UsersCollection).FindOne(ctx, bson.D{{Key: "_id", Value: plain.ID}}).Decode(&doc), "raw plain")
	if _, ok := doc["registration_key"]; ok {
		t.Fatalf("a user without a key stored one: %v", doc)
	}
}

func TestConcurrentCreatesOneWinner(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, dups := 0, 0
	for range 20 {
		wg.Go(func() {
			err := s.CreateUser(context.Background(), user("race@example.com"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, auth.ErrEmailTaken):
				dups++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || dups != 19 {
		t.Fatalf("%d created, %d duplicates; want 1 and 19", wins, dups)
	}
}

func TestBlacklist(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	first := 0
	for range 10 {
		wg.Go(func() {
			err := s.BlacklistToken(ctx, "jti-1", "u", now.Add(time.Hour))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				first++
			} else if !errors.Is(err, auth.ErrTokenBlacklisted) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if first != 1 {
		t.Fatalf("%d concurrent first uses of one jti", first)
	}
	testenv.Must(t, s.BlacklistToken(ctx, "jti-old", "u", now.Add(-time.Hour)), "old")
	n, err := s.SweepBlacklist(ctx, now)
	if err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if err := s.BlacklistToken(ctx, "jti-1", "u", now.Add(time.Hour)); !errors.Is(err, auth.ErrTokenBlacklisted) {
		t.Fatalf("a live entry was swept: %v", err)
	}
	if err := s.BlacklistToken(ctx, "jti-old", "u", now.Add(-time.Hour)); err != nil {
		t.Fatalf("the swept entry is still there: %v", err)
	}
}
