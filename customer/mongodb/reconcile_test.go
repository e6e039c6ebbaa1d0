package mongodb

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
)

// TestEachProfileRefStreamsInUserOrder: every profile once, in user_id
// order, in batches of at most the size asked; fn's error stops the stream.
func TestEachProfileRefStreamsInUserOrder(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	want := map[string]string{} // user id -> profile id
	for i := range 23 {
		p := profile(contract.NewID(), base.Add(time.Duration(i)*time.Minute))
		testenv.Must(t, s.Create(ctx, p), "create")
		want[p.UserID] = p.ID
	}
	var users []string
	var batches []int
	err := s.EachProfileRef(ctx, 5, func(refs []ProfileRef) error {
		batches = append(batches, len(refs))
		for _, r := range refs {
			if want[r.UserID] != r.ID || r.CreatedAt.IsZero() {
				t.Errorf("ref %+v: want profile %s", r, want[r.UserID])
			}
			users = append(users, r.UserID)
		}
		return nil
	})
	testenv.Must(t, err, "each")
	if len(users) != len(want) || !slices.IsSorted(users) {
		t.Fatalf("streamed %d users (want %d), sorted %v", len(users), len(want), slices.IsSorted(users))
	}
	if !slices.Equal(batches, []int{5, 5, 5, 5, 3}) {
		t.Errorf("batches %v", batches)
	}

	stop := errors.New("stop")
	n := 0
	err = s.EachProfileRef(ctx, 5, func(refs []ProfileRef) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("fn's error: %v after %d batches", err, n)
	}

	// An empty collection calls fn never.
	empty, _ := newStore(t)
	if err := empty.EachProfileRef(ctx, 5, func([]ProfileRef) error { return errors.New("called") }); err != nil {
		t.Errorf("an empty collection: %v", err)
	}

}
