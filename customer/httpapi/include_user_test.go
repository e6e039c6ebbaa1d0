package httpapi

import (
	"context"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/customer/customertest"
	"github.com/acme/customer-platform/internal/contract"
)

// userFields are the members a profile's answer merges from the user.
var userFields = []string{"email", "first_name", "last_name", "phone_number"}

// TestIncludeUserFalse: GET profile/?include_user=false (the BFF's read,
// which has the user already) answers the same members with the user
// fields null and never calls the auth service; the default and
// include_user=true merge them as before (one call); any other value is a
// 400 naming the parameter, with no call either. Staff GET <id>/ takes the
// parameter too.
func TestIncludeUserFalse(t *testing.T) {
	t.Parallel()
	var me, byID atomic.Int32
	known := customertest.KnownUsers()
	h := newHarnessWith(t, &customertest.Users{
		MeFn: func(ctx context.Context, token string) (customer.User, error) {
			me.Add(1)
			return known.Me(ctx, token)
		},
		UserFn: func(ctx context.Context, token, id string) (customer.User, error) {
			byID.Add(1)
			return known.User(ctx, token, id)
		},
	})
	owner, employee := newPerson(t, contract.RoleCustomer), newPerson(t, contract.RoleEmployee)
	id := h.createProfile(owner, nil)
	calls := func() int32 { return me.Swap(0) + byID.Swap(0) }
	calls()

	for _, c := range []struct {
		what, path string
		caller     person
	}{
		{"owner", "profile/", owner},
		{"staff", id + "/", employee},
	} {
		merged := h.do(http.MethodGet, apiPath("%s", c.path), c.caller.Token, nil)
		h.expect(merged, http.StatusOK, c.what+", merged")
		if n := calls(); n != 1 {
			t.Fatalf("%s, merged: %d calls to the auth service, want 1", c.what, n)
		}
		full := merged.json(t)
		for _, k := range userFields {
			if full[k] == nil {
				t.Fatalf("%s, merged: %s is null: %s", c.what, k, merged.Body)
			}
		}
		if r := h.do(http.MethodGet, apiPath("%s?include_user=true", c.path), c.caller.Token, nil); r.Code != http.StatusOK || string(r.Body) != string(merged.Body) || calls() != 1 {
			t.Fatalf("%s, include_user=true: %d %s, want the merged answer after one call", c.what, r.Code, r.Body)
		}

		r := h.do(http.MethodGet, apiPath("%s?include_user=false", c.path), c.caller.Token, nil)
		h.expect(r, http.StatusOK, c.what+", include_user=false")
		if n := calls(); n != 0 {
			t.Fatalf("%s, include_user=false: %d calls to the auth service, want none", c.what, n)
		}
		bare := r.json(t)
		if got, want := slices.Sorted(maps.Keys(bare)), slices.Sorted(maps.Keys(full)); !slices.Equal(got, want) {
			t.Fatalf("%s, include_user=false: members %v, want %v", c.what, got, want)
		}
		for k, v := range full {
			switch {
			case slices.Contains(userFields, k):
				if bare[k] != nil {
					t.Fatalf("%s, include_user=false: %s = %v, want null", c.what, k, bare[k])
				}
			case !reflect.DeepEqual(bare[k], v):
				t.Fatalf("%s, include_user=false: %s = %v, want %v", c.what, k, bare[k], v)
			}
		}

		for _, bad := range []string{"False", "0", "no", "", "false&include_user=maybe"} {
			r := h.do(http.MethodGet, apiPath("%s?include_user=%s", c.path, bad), c.caller.Token, nil)
			h.expect(r, http.StatusBadRequest, c.what+", include_user="+bad)
			if want := `{"include_user":["Must be a valid boolean."]}`; string(r.Body) != want {
				t.Fatalf("%s, include_user=%s: %s, want %s", c.what, bad, r.Body, want)
			}
			if n := calls(); n != 0 {
				t.Fatalf("%s, include_user=%s: %d calls to the auth service", c.what, bad, n)
			}
		}
	}
}
