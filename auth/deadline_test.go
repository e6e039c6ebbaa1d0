package auth_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/acme/customer-platform/auth"
)

// TestRegisterDeadline: a registration sent with a deadline (the
// Registration-Deadline header) is stored only when the insert starts
// before it. The deadline is checked after the password hash, the slow
// step, immediately before the insert: a hash that ends after the deadline
// stores nothing and returns ErrDeadlineExceeded, so a caller that gave up
// at its deadline can take "no user" as the truth.
func TestRegisterDeadline(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *string { s := start.Add(d).Format(time.RFC3339Nano); return &s }
	for _, tc := range []struct {
		name     string
		deadline *string
		hash     time.Duration // how long the hash takes on the service's clock
		stored   bool
		hashed   bool
	}{
		{name: "no deadline: stored however long the hash takes", hash: time.Hour, stored: true, hashed: true},
		{name: "the hash ends before the deadline: stored", deadline: at(3 * time.Second), hash: 2 * time.Second, stored: true, hashed: true},
		{name: "the hash ends after the deadline: nothing stored", deadline: at(3 * time.Second), hash: 4 * time.Second, hashed: true},
		{name: "the hash ends at the deadline: nothing stored", deadline: at(3 * time.Second), hash: 3 * time.Second, hashed: true},
		{name: "already past when it arrives: refused before the hash", deadline: at(-time.Millisecond)},
		{name: "another zone, the same instant", deadline: ptr(start.Add(3 * time.Second).In(time.FixedZone("", -5*3600)).Format(time.RFC3339Nano)), hash: 4 * time.Second, hashed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			now := start
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			hashed := false
			store := newFakeStore()
			hasher := &fakeHasher{onHash: func() {
				mu.Lock()
				defer mu.Unlock()
				hashed = true
				now = now.Add(tc.hash)
			}}
			rules, err := auth.NewPasswordRules()
			if err != nil {
				t.Fatal(err)
			}
			svc, err := auth.NewService(auth.Deps{Store: store, Hasher: hasher, Tokens: fakeTokens{}, Rules: rules, Now: clock})
			if err != nil {
				t.Fatal(err)
			}
			in := validRegistration("late@example.com")
			in.Deadline = tc.deadline
			_, err = svc.Register(context.Background(), in, "")
			if tc.stored {
				if err != nil {
					t.Fatalf("register: %v", err)
				}
			} else if !errors.Is(err, auth.ErrDeadlineExceeded) {
				t.Fatalf("err = %v, want ErrDeadlineExceeded", err)
			}
			if n := len(store.users); n != map[bool]int{true: 1, false: 0}[tc.stored] {
				t.Errorf("%d users stored", n)
			}
			if hashed != tc.hashed {
				t.Errorf("hashed: %v, want %v", hashed, tc.hashed)
			}
		})
	}
}

// TestRegisterDeadlineHeader: the deadline is an RFC 3339 timestamp (a
// fraction and any offset allowed); anything else is refused as a field
// error naming the header, with the body's other problems, and nothing is
// stored.
func TestRegisterDeadlineHeader(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, d := range []string{"", "tomorrow", "2026-01-01 12:00:00Z", "2026-01-01T12:00:00", "1767268800", "2026-01-01T12:00:00.5Z, 2026-01-01T12:00:01Z"} {
		in := validRegistration("bad-deadline@example.com")
		in.Deadline = ptr(d)
		_, err := f.svc.Register(context.Background(), in, "")
		wantFields(t, err, map[string][]string{auth.FieldRegistrationDeadline: {auth.MsgRegistrationDeadline}})
	}
	in := validRegistration("bad-deadline@example.com")
	in.Deadline, in.FirstName = ptr("soon"), ptr(" ")
	_, err := f.svc.Register(context.Background(), in, "")
	wantFields(t, err, map[string][]string{auth.FieldRegistrationDeadline: {auth.MsgRegistrationDeadline}, auth.FieldFirstName: {auth.MsgBlank}})
	if len(f.store.users) != 0 {
		t.Fatalf("%d users stored after refused registrations", len(f.store.users))
	}
	for i, d := range []string{"2999-01-01T12:00:00Z", "2999-01-01T12:00:00.123456789+02:00", "2999-01-01T12:00:00.5-05:00"} {
		in := validRegistration(fmt.Sprintf("ok-%d@example.com", i))
		in.Deadline = ptr(d)
		if _, err := f.svc.Register(context.Background(), in, ""); err != nil {
			t.Errorf("deadline %q: %v", d, err)
		}
	}
}
