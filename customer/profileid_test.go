package customer_test

import (
	"context"
	"testing"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/customer/customertest"
	"github.com/acme/customer-platform/internal/contract"
)

// TestProfileID: a name-based UUID (version 5, RFC 9562 variant) of the
// user id, the same for every spelling of it, different for every user.
func TestProfileID(t *testing.T) {
	t.Parallel()
	// Fixed forever: profiles stored under it are found by it (checked
	// once against github.com/google/uuid NewSHA1).
	if got := customer.ProfileID("2b3f6a0e-8c1d-4e5f-9a7b-0c1d2e3f4a5b"); got != "a78198ab-4429-514f-a480-e00e60cd4b28" {
		t.Errorf("ProfileID changed: %s", got)
	}
	seen := map[string]bool{}
	for range 100 {
		u := contract.NewID()
		id := customer.ProfileID(u)
		if !contract.ValidID(id) || id[14] != '5' || id[19] != '8' && id[19] != '9' && id[19] != 'a' && id[19] != 'b' {
			t.Fatalf("ProfileID(%s) = %s: not a version 5 UUID", u, id)
		}
		if customer.ProfileID(u) != id || customer.ProfileID(upper(u)) != id {
			t.Fatalf("ProfileID(%s) is not a function of the user id", u)
		}
		if seen[id] {
			t.Fatalf("ProfileID(%s) = %s twice", u, id)
		}
		seen[id] = true
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'f' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// TestCreateUsesTheDerivedID: a profile the service creates is stored
// under ProfileID of its user, so the store finds it by _id.
func TestCreateUsesTheDerivedID(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	svc := customer.NewService(store, customertest.KnownUsers(), nil, customer.Options{})
	a := customer.Actor{UserID: contract.NewID(), Role: contract.RoleCustomer}
	street, city, postal := "1 Main St", "Springfield", "62701"
	got, err := svc.CreateOwn(context.Background(), a, customer.Changes{StreetAddress: &street, City: &city, PostalCode: &postal})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if got.ID != customer.ProfileID(a.UserID) {
		t.Fatalf("created %s, want %s", got.ID, customer.ProfileID(a.UserID))
	}
}
