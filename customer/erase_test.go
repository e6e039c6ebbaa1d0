package customer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/customer/customertest"
	"github.com/acme/customer-platform/internal/contract"
)

// TestEraseUser: the cascade of user.deleted deletes the profile and its
// service records only when the auth service says the user does not exist;
// a user it still has, or no answer, deletes nothing; a user without a
// profile (a second delivery) succeeds without asking.
func TestEraseUser(t *testing.T) {
	t.Parallel()
	gone := func(context.Context, string, string) (customer.User, error) {
		return customer.User{}, fmt.Errorf("%w: 404", customer.ErrUserNotFound)
	}
	alive := func(_ context.Context, _, id string) (customer.User, error) { return customer.User{ID: id}, nil }
	down := func(context.Context, string, string) (customer.User, error) {
		return customer.User{}, errors.New("503")
	}
	svcActor := customer.Actor{UserID: "customer", Role: contract.RoleService, Token: "service-token"}
	cases := []struct {
		name       string
		actor      customer.Actor
		lookup     func(context.Context, string, string) (customer.User, error)
		noProfile  bool
		badID      bool
		wantErr    error
		wantErased bool
		wantAsked  bool
	}{
		{name: "gone", actor: svcActor, lookup: gone, wantErased: true, wantAsked: true},
		{name: "still exists", actor: svcActor, lookup: alive, wantErr: customer.ErrUserExists, wantAsked: true},
		{name: "auth down", actor: svcActor, lookup: down, wantErr: customer.ErrUserUnconfirmed, wantAsked: true},
		{name: "no profile", actor: svcActor, lookup: gone, noProfile: true},
		{name: "malformed id", actor: svcActor, lookup: gone, badID: true, wantErr: customer.ErrNotFound},
		{name: "not a service", actor: customer.Actor{UserID: contract.NewID(), Role: contract.RoleAdmin, Token: "t"}, lookup: gone, wantErr: customer.ErrForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store := newMemStore()
			seed := customer.NewService(store, customertest.KnownUsers(), nil, customer.Options{})
			userID := contract.NewID()
			other := contract.NewID()
			staff := customer.Actor{UserID: contract.NewID(), Role: contract.RoleEmployee, Token: "staff"}
			ids := map[string]string{}
			for _, u := range []string{userID, other} {
				if tc.noProfile && u == userID {
					continue
				}
				c, err := seed.CreateFor(ctx, staff, u, customer.Changes{StreetAddress: ptr("1 Main St"), City: ptr("Springfield"), PostalCode: ptr("62701")})
				if err != nil {
					t.Fatal(err)
				}
				ids[u] = c.ID
				if _, err := seed.IncrementService(ctx, staff, c.ID, customer.ServiceInput{ServiceType: "visit", PerformedAt: ptr(time.Now())}, "k1"); err != nil {
					t.Fatal(err)
				}
			}
			asked := false
			users := &customertest.Users{UserFn: func(ctx context.Context, tok, id string) (customer.User, error) {
				asked = true
				if tok != tc.actor.Token || id != userID {
					t.Errorf("asked with token %q about %q", tok, id)
				}
				return tc.lookup(ctx, tok, id)
			}}
			pub := &customertest.Publisher{}
			s := customer.NewService(store, users, pub, customer.Options{Logger: slog.New(slog.DiscardHandler)})
			id := userID
			if tc.badID {
				id = "not-a-uuid"
			}
			erased, err := s.EraseUser(ctx, tc.actor, id)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if erased != tc.wantErased || asked != tc.wantAsked {
				t.Fatalf("erased %v asked %v, want %v %v", erased, asked, tc.wantErased, tc.wantAsked)
			}
			_, err = store.ByUserID(ctx, userID)
			if tc.wantErased || tc.noProfile {
				if !errors.Is(err, customer.ErrNotFound) {
					t.Fatalf("the profile is still there: %v", err)
				}
				if n, _ := store.CountServices(ctx, ids[userID]); n != 0 {
					t.Fatalf("%d service records left", n)
				}
			} else if err != nil {
				t.Fatalf("the profile was deleted: %v", err)
			}
			if c, err := store.ByUserID(ctx, other); err != nil || c.TotalServices != 1 {
				t.Fatalf("another user's profile touched: %v %+v", err, c)
			}
			if tc.wantErased {
				if ops := pub.Ops(); len(ops) != 1 || ops[0] != customer.OpDelete {
					t.Fatalf("published %v, want one delete", ops)
				}
				// A second delivery finds nothing and succeeds.
				if erased, err := s.EraseUser(ctx, tc.actor, userID); erased || err != nil {
					t.Fatalf("second erasure: %v %v", erased, err)
				}
			} else if ops := pub.Ops(); len(ops) != 0 {
				t.Fatalf("published %v", ops)
			}
		})
	}
}
