package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/customer/legacy"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
)

// fakeDirectory answers UserByID with its function.
type fakeDirectory struct {
	userByID func(ctx context.Context, id string) (legacy.User, bool, error)
}

func (f fakeDirectory) UserByID(ctx context.Context, id string) (legacy.User, bool, error) {
	return f.userByID(ctx, id)
}

// fakeProfiles streams its refs in batches of the size asked.
type fakeProfiles []custmongo.ProfileRef

func (f fakeProfiles) EachProfileRef(ctx context.Context, size int, fn func([]custmongo.ProfileRef) error) error {
	for i := 0; i < len(f); i += size {
		if err := fn(f[i:min(i+size, len(f))]); err != nil {
			return err
		}
	}
	return nil
}

// fakeUserList lists its users in pages of the size asked.
type fakeUserList []authUser

func (f fakeUserList) EachCustomerPage(ctx context.Context, size int, fn func([]authUser) error) error {
	for i := 0; i == 0 || i < len(f); i += size {
		if err := fn(f[i:min(i+size, len(f))]); err != nil {
			return err
		}
	}
	return nil
}

// fakeDeleter deletes with its function.
type fakeDeleter func(ctx context.Context, id string) (bool, error)

func (f fakeDeleter) DeleteProfile(ctx context.Context, id string) (bool, error) { return f(ctx, id) }

var (
	_ userChecker    = fakeDirectory{}
	_ profileRefs    = fakeProfiles{}
	_ userPages      = fakeUserList{}
	_ profileDeleter = fakeDeleter(nil)
)

func refs(userIDs ...string) fakeProfiles {
	out := make(fakeProfiles, len(userIDs))
	for i, u := range userIDs {
		out[i] = custmongo.ProfileRef{ID: "p-" + u, UserID: u}
	}
	return out
}

// TestMergeUsersAndProfiles: one pass over the listed customer users and
// the profiles, both in user id order: a user without a profile is an
// orphan (or recent, within the grace period); only the profiles without a
// listed user are looked up by id (staff users, users created after the
// listing passed, ghosts), and those the auth service lacks are the ghosts.
func TestMergeUsersAndProfiles(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	old, young := now.Add(-48*time.Hour), now.Add(-time.Hour)
	users := func(ids ...string) fakeUserList {
		out := make(fakeUserList, len(ids))
		for i, id := range ids {
			joined := old
			if strings.HasPrefix(id, "y") {
				joined = young
			}
			out[i] = authUser{ID: id, DateJoined: joined}
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		users    fakeUserList
		profiles fakeProfiles
		orphans  []string
		recent   int
		lookedUp []string // the profiles' users looked up by id
		ghosts   []string // of those, the users the auth service lacks ("g..." or "x...")
		err      string
	}{
		{name: "none", users: users("a", "b"), profiles: refs("a", "b")},
		{name: "empty", users: users(), profiles: refs()},
		{name: "no profiles at all", users: users("a", "b", "ya"), orphans: []string{"a", "b"}, recent: 1},
		{name: "no users at all", profiles: refs("ga", "gb", "staff"), lookedUp: []string{"ga", "gb", "staff"}, ghosts: []string{"ga", "gb"}},
		{name: "gaps on both sides", users: users("b", "d", "f", "yb", "yc"), profiles: refs("a", "b", "c", "e", "f", "h", "yc"),
			orphans: []string{"d"}, recent: 1, lookedUp: []string{"a", "c", "e", "h"}},
		{name: "ghosts between and after", users: users("b", "d", "f"), profiles: refs("a", "b", "c", "d", "ge", "gz"),
			orphans: []string{"f"}, lookedUp: []string{"a", "c", "ge", "gz"}, ghosts: []string{"ge", "gz"}},
		{name: "users past the last profile", users: users("a", "m", "z"), profiles: refs("a"), orphans: []string{"m", "z"}},
		{name: "profiles out of order", users: users("a", "c", "e"), profiles: refs("b", "a", "d"), err: "not in user id order"},
		{name: "users out of order", users: users("c", "a"), profiles: refs("a", "c"), err: "not in id order"},
		{name: "a lookup fails", users: users("b"), profiles: refs("a", "b", "xfail"), err: "auth unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var looked []string
			dir := fakeDirectory{userByID: func(ctx context.Context, id string) (legacy.User, bool, error) {
				mu.Lock()
				looked = append(looked, id)
				mu.Unlock()
				if id == "xfail" {
					return legacy.User{}, false, errors.New("auth unavailable")
				}
				return legacy.User{ID: id}, !strings.HasPrefix(id, "g"), nil
			}}
			var rep reconcileReport
			kept, err := mergeUsersAndProfiles(context.Background(), tc.users, dir, tc.profiles, 2, 2, 1, 24*time.Hour, now, &rep)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range rep.Orphans.Users {
				got = append(got, o.UserID)
			}
			if !rep.Orphans.Checked || !slices.Equal(got, tc.orphans) || rep.Orphans.Count != len(tc.orphans) || rep.Orphans.Recent != tc.recent ||
				rep.UsersChecked != len(tc.users) || rep.ProfilesChecked != len(tc.profiles) {
				t.Errorf("orphans %v recent %d, checked %d users %d profiles; want %v and %d", got, rep.Orphans.Recent, rep.UsersChecked, rep.ProfilesChecked, tc.orphans, tc.recent)
			}
			slices.Sort(looked)
			if !slices.Equal(looked, tc.lookedUp) {
				t.Errorf("looked up %v, want %v", looked, tc.lookedUp)
			}
			var ghosts []string
			for _, g := range rep.Ghosts.Profiles {
				ghosts = append(ghosts, g.UserID)
			}
			if !slices.Equal(ghosts, tc.ghosts) || rep.Ghosts.Count != len(tc.ghosts) || len(kept) != min(1, len(tc.ghosts)) {
				t.Errorf("ghosts %v (count %d, kept %d), want %v", ghosts, rep.Ghosts.Count, len(kept), tc.ghosts)
			}
		})
	}
}

// TestFindGhostsBoundsItsLookups: one lookup per profile, never more than
// the bound at once; a lookup that fails fails the run (a user is never
// taken as missing for lack of an answer); keep bounds what is kept.
func TestFindGhostsBoundsItsLookups(t *testing.T) {
	t.Parallel()
	var inFlight, most, calls atomic.Int64
	dir := fakeDirectory{userByID: func(ctx context.Context, id string) (legacy.User, bool, error) {
		calls.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(time.Millisecond)
		return legacy.User{ID: id}, !strings.HasPrefix(id, "ghost"), nil
	}}
	ids := []string{}
	for i := range 40 {
		if i%10 == 3 {
			ids = append(ids, "ghost"+string(rune('a'+i)))
		} else {
			ids = append(ids, "user"+string(rune('a'+i)))
		}
	}
	var rep reconcileReport
	kept, err := findGhosts(context.Background(), dir, refs(ids...), 16, 3, 2, &rep)
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 40 || most.Load() > 3 || rep.ProfilesChecked != 40 || rep.Ghosts.Count != 4 || len(rep.Ghosts.Profiles) != 4 || len(kept) != 2 {
		t.Errorf("calls %d, most at once %d, report %+v, kept %d", calls.Load(), most.Load(), rep.Ghosts, len(kept))
	}

	failing := fakeDirectory{userByID: func(ctx context.Context, id string) (legacy.User, bool, error) {
		if id == "userc" {
			return legacy.User{}, false, errors.New("auth unavailable")
		}
		return legacy.User{}, false, nil
	}}
	rep = reconcileReport{}
	if _, err := findGhosts(context.Background(), failing, refs("usera", "userb", "userc"), 5, 2, 10, &rep); err == nil || rep.Ghosts.Count != 0 {
		t.Errorf("a failed lookup: err %v, ghosts %d", err, rep.Ghosts.Count)
	}
}

// TestRepairGhosts: in batches; a user found again on the check just
// before the delete is spared; a profile gone already counts as done; a
// failed delete stops the repair after its batch's other deletes.
func TestRepairGhosts(t *testing.T) {
	t.Parallel()
	ghosts := []ghost{{ProfileID: "p1", UserID: "u1"}, {ProfileID: "p2", UserID: "back"}, {ProfileID: "p3", UserID: "u3"},
		{ProfileID: "p4", UserID: "u4"}, {ProfileID: "p5", UserID: "u5"}}
	dir := fakeDirectory{userByID: func(ctx context.Context, id string) (legacy.User, bool, error) {
		return legacy.User{ID: id}, id == "back", nil
	}}
	var mu sync.Mutex
	var deleted []string
	del := fakeDeleter(func(ctx context.Context, id string) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		deleted = append(deleted, id)
		return id != "p3", nil // p3 was gone already
	})
	var batches []int
	var rep reconcileReport
	if err := repairGhosts(context.Background(), dir, del, ghosts, 2, 4, func(b int) { batches = append(batches, b) }, &rep); err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, []string{"p1", "p3", "p4", "p5"}) || rep.Ghosts.Repaired != 4 || rep.Ghosts.Spared != 1 || !slices.Equal(batches, []int{1, 2, 3}) {
		t.Errorf("deleted %v, report %+v, batches %v", deleted, rep.Ghosts, batches)
	}

	failing := fakeDeleter(func(ctx context.Context, id string) (bool, error) {
		if id == "p3" {
			return false, errors.New("customer service unavailable")
		}
		return true, nil
	})
	rep = reconcileReport{}
	batches = nil
	err := repairGhosts(context.Background(), dir, failing, ghosts, 2, 4, func(b int) { batches = append(batches, b) }, &rep)
	if err == nil || rep.Ghosts.Repaired != 2 || len(batches) != 1 {
		t.Errorf("a failed delete: err %v, repaired %d, batches %v", err, rep.Ghosts.Repaired, batches)
	}
}
