package bff_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/customer-platform/bff"
)

const (
	viewUserID  = "0b6f1c2e-4f9a-4c1e-9d3b-6a2f8e7d5c41"
	otherUserID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
)

var (
	viewUser = json.RawMessage(`{"id":"` + viewUserID + `","email":"ada@example.com","first_name":"Ada","last_name":"Lovelace","phone_number":"+15555550100","user_role":"customer","date_joined":"2024-01-02T03:04:05Z"}`)
	// viewProfile is the customer service's answer without the user data
	// (include_user=false): the user fields null.
	viewProfile = json.RawMessage(`{"id":"5d1c0b7e-3a2f-4e6d-9c8b-7a6f5e4d3c2b","user_id":"` + viewUserID + `","email":null,"first_name":null,"last_name":null,"phone_number":null,"city":"Springfield","postal_code":"12345","country":"USA","notification_preferences":{"email":true,"sms":false,"marketing":false}}`)
	// viewMerged is viewProfile as the view carries it: the user fields
	// filled from viewUser, in place.
	viewMerged  = json.RawMessage(`{"id":"5d1c0b7e-3a2f-4e6d-9c8b-7a6f5e4d3c2b","user_id":"` + viewUserID + `","email":"ada@example.com","first_name":"Ada","last_name":"Lovelace","phone_number":"+15555550100","city":"Springfield","postal_code":"12345","country":"USA","notification_preferences":{"email":true,"sms":false,"marketing":false}}`)
	errUpstream = errors.New("upstream unavailable")
)

// fakeUsers and fakeProfiles are hand-written fakes of the two sources.
type fakeUsers struct {
	CurrentUserFn func(ctx context.Context, token string) (json.RawMessage, error)
}

func (f *fakeUsers) CurrentUser(ctx context.Context, token string) (json.RawMessage, error) {
	return f.CurrentUserFn(ctx, token)
}

type fakeProfiles struct {
	CurrentProfileFn func(ctx context.Context, token string) (json.RawMessage, error)
}

func (f *fakeProfiles) CurrentProfile(ctx context.Context, token string) (json.RawMessage, error) {
	return f.CurrentProfileFn(ctx, token)
}

var (
	_ bff.UserSource    = (*fakeUsers)(nil)
	_ bff.ProfileSource = (*fakeProfiles)(nil)
)

func staticUsers(raw json.RawMessage, err error) *fakeUsers {
	return &fakeUsers{CurrentUserFn: func(context.Context, string) (json.RawMessage, error) { return raw, err }}
}

func staticProfiles(raw json.RawMessage, err error) *fakeProfiles {
	return &fakeProfiles{CurrentProfileFn: func(context.Context, string) (json.RawMessage, error) { return raw, err }}
}

// waitCancelled blocks until ctx ends (bounded, so a broken implementation
// fails the test instead of hanging it) and reports whether it did.
func waitCancelled(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

func TestLoadMergesBothParts(t *testing.T) {
	t.Parallel()
	var gotTokens [2]string
	users := &fakeUsers{CurrentUserFn: func(_ context.Context, tok string) (json.RawMessage, error) {
		gotTokens[0] = tok
		return append(json.RawMessage(" \n"), append(viewUser, '\n')...), nil // whitespace is trimmed
	}}
	profiles := &fakeProfiles{CurrentProfileFn: func(_ context.Context, tok string) (json.RawMessage, error) {
		gotTokens[1] = tok
		return viewProfile, nil
	}}
	body, status, err := bff.NewOrigin(users, profiles).View(context.Background(), viewUserID, "the-token")
	if err != nil {
		t.Fatal(err)
	}
	if status != bff.CacheBypass {
		t.Fatalf("status %s, want BYPASS from the origin-only views", status)
	}
	want := `{"user":` + string(viewUser) + `,"profile":` + string(viewMerged) + `}`
	if string(body) != want {
		t.Fatalf("body\n%s\nwant\n%s", body, want)
	}
	if gotTokens != [2]string{"the-token", "the-token"} {
		t.Fatalf("tokens passed to the sources: %q", gotTokens)
	}
	var decoded map[string]map[string]any
	if err := json.Unmarshal(body, &decoded); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if decoded["profile"]["city"] != "Springfield" || decoded["user"]["email"] != "ada@example.com" {
		t.Fatalf("decoded %v", decoded)
	}
}

func TestLoadWithoutProfileAnswersNull(t *testing.T) {
	t.Parallel()
	notFound := errors.Join(errors.New("customer: 404"), bff.ErrNoProfile)
	o := bff.NewOrigin(staticUsers(viewUser, nil), staticProfiles(nil, notFound))
	body, _, err := o.View(context.Background(), viewUserID, "tok")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"user":` + string(viewUser) + `,"profile":null}`; string(body) != want {
		t.Fatalf("body %s, want %s", body, want)
	}
}

func TestLoadFetchesInParallel(t *testing.T) {
	t.Parallel()
	// Each source waits until the other has been called: a sequential
	// loader would never get past the first one.
	userCalled, profileCalled := make(chan struct{}), make(chan struct{})
	meet := func(mine, theirs chan struct{}) error {
		close(mine)
		select {
		case <-theirs:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("the other source was not called while this one was in flight")
		}
	}
	users := &fakeUsers{CurrentUserFn: func(context.Context, string) (json.RawMessage, error) {
		return viewUser, meet(userCalled, profileCalled)
	}}
	profiles := &fakeProfiles{CurrentProfileFn: func(context.Context, string) (json.RawMessage, error) {
		return viewProfile, meet(profileCalled, userCalled)
	}}
	if _, err := bff.NewOrigin(users, profiles).Load(context.Background(), viewUserID, "tok"); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFailureCancelsTheOtherFetch(t *testing.T) {
	t.Parallel()
	t.Run("user fails", func(t *testing.T) {
		t.Parallel()
		var profileCancelled atomic.Bool
		profiles := &fakeProfiles{CurrentProfileFn: func(ctx context.Context, _ string) (json.RawMessage, error) {
			profileCancelled.Store(waitCancelled(ctx))
			return nil, ctx.Err()
		}}
		_, err := bff.NewOrigin(staticUsers(nil, errUpstream), profiles).Load(context.Background(), viewUserID, "tok")
		if !errors.Is(err, errUpstream) {
			t.Fatalf("got %v, want the user source's error", err)
		}
		if !profileCancelled.Load() {
			t.Fatal("the profile fetch was not cancelled")
		}
	})
	t.Run("profile fails", func(t *testing.T) {
		t.Parallel()
		var userCancelled atomic.Bool
		users := &fakeUsers{CurrentUserFn: func(ctx context.Context, _ string) (json.RawMessage, error) {
			userCancelled.Store(waitCancelled(ctx))
			return nil, ctx.Err()
		}}
		_, err := bff.NewOrigin(users, staticProfiles(nil, errUpstream)).Load(context.Background(), viewUserID, "tok")
		if !errors.Is(err, errUpstream) {
			t.Fatalf("got %v, want the profile source's error (not the cancellation it caused)", err)
		}
		if errors.Is(err, context.Canceled) {
			t.Fatalf("the cancellation was reported instead of the cause: %v", err)
		}
		if !userCancelled.Load() {
			t.Fatal("the user fetch was not cancelled")
		}
	})
}

func TestLoadRefusesAnotherUsersOrMalformedParts(t *testing.T) {
	t.Parallel()
	otherUser := json.RawMessage(strings.ReplaceAll(string(viewUser), viewUserID, otherUserID))
	otherProfile := json.RawMessage(strings.ReplaceAll(string(viewProfile), viewUserID, otherUserID))
	upper := json.RawMessage(strings.ReplaceAll(string(viewUser), viewUserID, strings.ToUpper(viewUserID)))
	for _, tc := range []struct {
		name          string
		user, profile json.RawMessage
		ok            bool
	}{
		{"matching", viewUser, viewProfile, true},
		{"id in another case", upper, viewProfile, true},
		{"another user's user", otherUser, viewProfile, false},
		{"another user's profile", viewUser, otherProfile, false},
		{"user without id", json.RawMessage(`{"email":"a@b.c"}`), viewProfile, false},
		{"numeric id", json.RawMessage(`{"id":7}`), viewProfile, false},
		{"user not JSON", json.RawMessage(`<html>`), viewProfile, false},
		{"user truncated", viewUser[:len(viewUser)-5], viewProfile, false},
		{"user an array", json.RawMessage(`[1]`), viewProfile, false},
		{"profile truncated", viewUser, viewProfile[:20], false},
		{"profile without user_id", viewUser, json.RawMessage(`{"id":"p","city":"Salem"}`), false},
		{"profile empty", viewUser, json.RawMessage(`{}`), false},
		{"profile with a second, other user_id", viewUser, json.RawMessage(`{"user_id":"` + viewUserID + `","user_id":"` + otherUserID + `"}`), false},
		{"profile's user_id a number", viewUser, json.RawMessage(`{"user_id":7}`), false},
		{"profile's user_id escaped", viewUser, json.RawMessage(`{"user_id":"` + strings.Replace(viewUserID, "0", `\u0030`, 1) + `"}`), true},
		{"profile's member name user_id escaped (JSON: the same name)", viewUser, json.RawMessage(`{"user_\u0069d":"` + viewUserID + `"}`), true},
		{"profile's escaped member name user_id another user's", viewUser, json.RawMessage(`{"user_\u0069d":"` + otherUserID + `"}`), false},
		{"profile an array", viewUser, json.RawMessage(`[` + string(viewProfile) + `]`), false},
		{"profile with trailing data", viewUser, json.RawMessage(string(viewProfile) + `{}`), false},
		{"empty user", json.RawMessage(``), viewProfile, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := bff.NewOrigin(staticUsers(tc.user, nil), staticProfiles(tc.profile, nil)).Load(context.Background(), viewUserID, "tok")
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, bff.ErrViewMismatch) {
				t.Fatalf("got %v (view %s), want ErrViewMismatch", err, v.JSON())
			}
		})
	}
}

// TestLoadFillsTheProfilesUserFields: the view's profile carries email,
// first_name, last_name and phone_number from the view's user part, the
// auth service's answer, whatever the customer service answered for them
// (null when asked include_user=false; the token's names, possibly stale,
// from a service that merges anyway); every other member is kept as
// written, in its place.
func TestLoadFillsTheProfilesUserFields(t *testing.T) {
	t.Parallel()
	const head = `{"id":"p1","user_id":"` + viewUserID + `"`
	for _, tc := range []struct {
		name, user, profile, want string
	}{
		{"the user fields null", string(viewUser), string(viewProfile), string(viewMerged)},
		{"merged by the customer service from an older token", string(viewUser),
			head + `,"email":"old@example.com","first_name":"Augusta","last_name":"Byron","phone_number":null,"city":"Salem"}`,
			head + `,"email":"ada@example.com","first_name":"Ada","last_name":"Lovelace","phone_number":"+15555550100","city":"Salem"}`},
		{"the user fields missing: added at the end, in order", string(viewUser),
			head + `,"city":"Salem"}`,
			head + `,"city":"Salem","email":"ada@example.com","first_name":"Ada","last_name":"Lovelace","phone_number":"+15555550100"}`},
		{"a user field the user lacks is null", `{"id":"` + viewUserID + `","email":"ada@example.com","first_name":"Ada","last_name":null}`,
			head + `,"email":null,"first_name":null,"last_name":"x","phone_number":"+1"}`,
			head + `,"email":"ada@example.com","first_name":"Ada","last_name":null,"phone_number":null}`},
		{"values as the user part writes them", `{"id":"` + viewUserID + `","email":"a\u0040b.c","first_name":"Zo\u00eb \"Z\"","last_name":"O'Brien","phone_number":""}`,
			head + `,"email":null,"first_name":null,"last_name":null,"phone_number":null}`,
			head + `,"email":"a\u0040b.c","first_name":"Zo\u00eb \"Z\"","last_name":"O'Brien","phone_number":""}`},
		{"nested values, escapes and whitespace", string(viewUser),
			"{ \"user_id\" : \"" + viewUserID + "\" ,\n\t\"note\": \"a \\\"}{,\\\" b\\\\\",\"email\" :null , \"prefs\":{\"email\":{\"a\":[1,{\"b\":\"]}\"}]}},\"n\":-1.5e3,\"ok\":true,\"phone_number\":null,\"x\":[]\r\n}",
			`{"user_id":"` + viewUserID + `","note":"a \"}{,\" b\\","email":"ada@example.com","prefs":{"email":{"a":[1,{"b":"]}"}]}},"n":-1.5e3,"ok":true,"phone_number":"+15555550100","x":[],"first_name":"Ada","last_name":"Lovelace"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v, err := bff.NewOrigin(staticUsers(json.RawMessage(tc.user), nil), staticProfiles(json.RawMessage(tc.profile), nil)).Load(context.Background(), viewUserID, "tok")
			if err != nil {
				t.Fatal(err)
			}
			if string(v.Profile) != tc.want {
				t.Fatalf("profile\n%s\nwant\n%s", v.Profile, tc.want)
			}
			if string(v.User) != tc.user {
				t.Fatalf("user part %s, want %s as answered", v.User, tc.user)
			}
			if _, err := bff.ParseView(v.JSON()); err != nil {
				t.Fatalf("the view is not valid: %v", err)
			}
		})
	}
}

func TestLoadNeedsAUserID(t *testing.T) {
	t.Parallel()
	called := false
	users := &fakeUsers{CurrentUserFn: func(context.Context, string) (json.RawMessage, error) { called = true; return viewUser, nil }}
	if _, err := bff.NewOrigin(users, staticProfiles(viewProfile, nil)).Load(context.Background(), "", "tok"); err == nil {
		t.Fatal("an empty user id was accepted")
	}
	if called {
		t.Fatal("the origins were called for an empty user id")
	}
}

func TestViewEncodingRoundTrips(t *testing.T) {
	t.Parallel()
	for _, v := range []bff.View{{User: viewUser, Profile: viewMerged}, {User: viewUser}} {
		got, err := bff.ParseView(v.JSON())
		if err != nil {
			t.Fatal(err)
		}
		if string(got.User) != string(v.User) || string(got.Profile) != string(v.Profile) {
			t.Fatalf("round trip: %+v, want %+v", got, v)
		}
	}
	// Embedded in a larger answer, such as the login's.
	b, err := json.Marshal(struct {
		bff.View
		Tokens map[string]string `json:"tokens"`
	}{bff.View{User: viewUser}, map[string]string{"access": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	var login map[string]json.RawMessage
	if err := json.Unmarshal(b, &login); err != nil {
		t.Fatal(err)
	}
	if string(login["user"]) != string(viewUser) || string(login["profile"]) != "null" || string(login["tokens"]) != `{"access":"a"}` {
		t.Fatalf("embedded view encoded as %s", b)
	}
	for _, bad := range []string{``, `{}`, `{"user":1}`, `{"user":{},"profile":[1]}`, `[]`} {
		if _, err := bff.ParseView([]byte(bad)); err == nil {
			t.Fatalf("ParseView(%s) accepted", bad)
		}
	}
}

func TestOriginInvalidateIsANoOp(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	users := &fakeUsers{CurrentUserFn: func(context.Context, string) (json.RawMessage, error) { n.Add(1); return viewUser, nil }}
	o := bff.NewOrigin(users, staticProfiles(viewProfile, nil))
	o.Invalidate(context.Background(), viewUserID)
	if n.Load() != 0 {
		t.Fatal("Invalidate called an origin")
	}
}
