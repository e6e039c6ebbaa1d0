package bff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// CacheStatus says where a merged view came from; the HTTP layer writes it
// as the X-Cache header.
type CacheStatus string

// Cache statuses.
const (
	CacheHit    CacheStatus = "HIT"    // served from the cache
	CacheMiss   CacheStatus = "MISS"   // loaded from the origins and cached
	CacheBypass CacheStatus = "BYPASS" // loaded from the origins, cache not used (none configured, down, or its breaker open)
)

// Views serves the caller's merged view {user, profile}. The origin-only
// implementation is Origin; the Redis cache (package rediscache) decorates
// it. The HTTP layer uses only this interface.
type Views interface {
	// View returns the JSON body of userID's merged view, loading what it
	// needs with the caller's access token. userID must be the user id
	// verified from that token: it is the cache key, and a view is never
	// served under any other id.
	View(ctx context.Context, userID, token string) (body []byte, status CacheStatus, err error)
	// Invalidate drops every cached copy of userID's view. It is best
	// effort and never fails the caller: a view that could not be evicted
	// expires with the cache TTL.
	Invalidate(ctx context.Context, userID string)
}

// UserSource fetches the auth service's user JSON of the token's owner
// (GET /api/auth/profile/ with the caller's token).
type UserSource interface {
	CurrentUser(ctx context.Context, token string) (json.RawMessage, error)
}

// ProfileSource fetches the customer JSON of the token's owner
// (GET /api/v1/customers/profile/ with the caller's token). A caller without
// a profile (the service's 404) is an error wrapping ErrNoProfile.
type ProfileSource interface {
	CurrentProfile(ctx context.Context, token string) (json.RawMessage, error)
}

// UserSourceFunc adapts a function to UserSource.
type UserSourceFunc func(ctx context.Context, token string) (json.RawMessage, error)

// CurrentUser calls f.
func (f UserSourceFunc) CurrentUser(ctx context.Context, token string) (json.RawMessage, error) {
	return f(ctx, token)
}

// ProfileSourceFunc adapts a function to ProfileSource.
type ProfileSourceFunc func(ctx context.Context, token string) (json.RawMessage, error)

// CurrentProfile calls f.
func (f ProfileSourceFunc) CurrentProfile(ctx context.Context, token string) (json.RawMessage, error) {
	return f(ctx, token)
}

var (
	// ErrNoProfile is what a ProfileSource answers (wrapped) for a user
	// without a customer profile; the view then has "profile": null.
	ErrNoProfile = errors.New("no customer profile")
	// ErrViewMismatch means an origin answered with a document that is not
	// the requested user's (or not a JSON object): it is never served or
	// cached.
	ErrViewMismatch = errors.New("origin answered with another user's or a malformed document")
)

// View is a merged view. Each part is kept as the raw JSON its service
// answered, so a view is encoded by concatenation (AppendJSON) and a cached
// body is written as it is. The struct tags let encoding/json embed a View
// in a larger answer, such as the login's {user, profile, tokens}.
type View struct {
	User    json.RawMessage `json:"user"`    // the auth service's user JSON
	Profile json.RawMessage `json:"profile"` // the customer JSON; nil (null) when the user has none
}

var (
	viewPrefix    = []byte(`{"user":`)
	viewMiddle    = []byte(`,"profile":`)
	viewNull      = []byte(`null`)
	viewSuffix    = []byte(`}`)
	viewOverheads = len(viewPrefix) + len(viewMiddle) + len(viewNull) + len(viewSuffix)
)

// AppendJSON appends the view's JSON body {"user": ..., "profile": ...} to dst.
func (v View) AppendJSON(dst []byte) []byte {
	dst = append(dst, viewPrefix...)
	dst = append(dst, v.User...)
	dst = append(dst, viewMiddle...)
	if len(v.Profile) == 0 {
		dst = append(dst, viewNull...)
	} else {
		dst = append(dst, v.Profile...)
	}
	return append(dst, viewSuffix...)
}

// JSON returns the view's JSON body in a buffer of exactly the right size.
func (v View) JSON() []byte {
	return v.AppendJSON(make([]byte, 0, len(v.User)+len(v.Profile)+viewOverheads))
}

// ParseView decodes a view's JSON body back into its parts.
func ParseView(body []byte) (View, error) {
	var raw struct {
		User    json.RawMessage `json:"user"`
		Profile json.RawMessage `json:"profile"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return View{}, fmt.Errorf("bff: view body: %w", err)
	}
	if !isObject(raw.User) {
		return View{}, fmt.Errorf("bff: view body: %w", ErrViewMismatch)
	}
	v := View{User: raw.User}
	if !bytes.Equal(raw.Profile, viewNull) && len(raw.Profile) > 0 {
		if !isObject(raw.Profile) {
			return View{}, fmt.Errorf("bff: view body: %w", ErrViewMismatch)
		}
		v.Profile = raw.Profile
	}
	return v, nil
}

// Origin loads merged views from the auth and customer services. As a Views
// it never caches: every answer is a BYPASS.
type Origin struct {
	users    UserSource
	profiles ProfileSource
}

var _ Views = (*Origin)(nil)

// NewOrigin returns the origin loader over the two services.
func NewOrigin(users UserSource, profiles ProfileSource) *Origin {
	return &Origin{users: users, profiles: profiles}
}

// Load fetches the user and the profile in parallel with the caller's token
// and checks that both belong to userID. If either fetch fails, the other is
// cancelled and the first failure is returned (wrapped, so callers can match
// the sources' error kinds with errors.Is).
//
// The profile's user fields (email, first_name, last_name, phone_number:
// the customer service's CustomerWithUserData) are filled from the user
// part, whatever the profile source answered for them: the source reads the
// profile without them (include_user=false, sparing the customer service
// its own call to the auth service), and the auth service, which this view
// asks anyway, is their source of truth. So both parts of a view always
// carry the same values, and the profile keeps its members and their order.
func (o *Origin) Load(ctx context.Context, userID, token string) (View, error) {
	if userID == "" {
		return View{}, errors.New("bff: view of an empty user id")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		once  sync.Once
		first error
	)
	fail := func(err error) { once.Do(func() { first = err; cancel() }) }

	profile := make(chan []member, 1)
	go func() {
		raw, err := o.profiles.CurrentProfile(ctx, token)
		var members []member
		switch {
		case errors.Is(err, ErrNoProfile):
		case err != nil:
			fail(fmt.Errorf("load customer profile: %w", err))
		default:
			var ok bool
			if members, ok = profileMembers(bytes.TrimSpace(raw), userID); !ok {
				fail(fmt.Errorf("load customer profile: %w", ErrViewMismatch))
			}
		}
		profile <- members
	}()

	var u userPart
	user, err := o.users.CurrentUser(ctx, token)
	if err != nil {
		fail(fmt.Errorf("load user: %w", err))
	} else if user = bytes.TrimSpace(user); !u.parse(user, userID) {
		fail(fmt.Errorf("load user: %w", ErrViewMismatch))
	}
	members := <-profile
	if first != nil {
		return View{}, first
	}
	v := View{User: user}
	if members != nil {
		v.Profile = u.fill(members)
	}
	return v, nil
}

// View loads the view from the origins; the status is always CacheBypass.
func (o *Origin) View(ctx context.Context, userID, token string) ([]byte, CacheStatus, error) {
	v, err := o.Load(ctx, userID, token)
	if err != nil {
		return nil, CacheBypass, err
	}
	return v.JSON(), CacheBypass, nil
}

// Invalidate does nothing: the origins hold no copies.
func (o *Origin) Invalidate(context.Context, string) {}

// isObject reports whether raw is one valid JSON object.
func isObject(raw []byte) bool {
	return len(raw) >= 2 && raw[0] == '{' && raw[len(raw)-1] == '}' && json.Valid(raw)
}

// userPart is what a view reads of its user part: the id (the owner check)
// and the user fields the profile part carries too.
type userPart struct {
	ID          string          `json:"id"`
	Email       json.RawMessage `json:"email"`
	FirstName   json.RawMessage `json:"first_name"`
	LastName    json.RawMessage `json:"last_name"`
	PhoneNumber json.RawMessage `json:"phone_number"`
}

// parse reads raw into u and reports whether it is one JSON object, the
// user userID's: ids are UUIDs, compared case-insensitively. json.Unmarshal
// validates the whole document first.
func (u *userPart) parse(raw []byte, userID string) bool {
	return len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, u) == nil && strings.EqualFold(u.ID, userID)
}

// userFields are the profile's members filled from the user part, in the
// order the customer service writes them.
var userFields = [...]string{"email", "first_name", "last_name", "phone_number"}

// values are the user's values of userFields; a field the user part lacks
// is null.
func (u *userPart) values() [len(userFields)]json.RawMessage {
	vs := [...]json.RawMessage{u.Email, u.FirstName, u.LastName, u.PhoneNumber}
	for i, v := range vs {
		if len(v) == 0 {
			vs[i] = viewNull
		}
	}
	return vs
}

// fill encodes the profile's members with the user fields' values taken
// from u, in place; a user field the profile lacks is added at its end.
func (u *userPart) fill(members []member) json.RawMessage {
	vs := u.values()
	size := 2 + len(vs[0]) + len(vs[1]) + len(vs[2]) + len(vs[3]) + 64
	for _, m := range members {
		size += len(m.name) + len(m.value) + 2
	}
	out := make([]byte, 0, size)
	out = append(out, '{')
	put := func(name string, v []byte) {
		if len(out) > 1 {
			out = append(out, ',')
		}
		q, _ := json.Marshal(name) // a string always encodes
		out = append(out, q...)
		out = append(out, ':')
		out = append(out, v...)
	}
	var seen [len(userFields)]bool
	for _, m := range members {
		if i := slices.Index(userFields[:], m.name); i >= 0 {
			seen[i] = true
			put(m.name, vs[i])
			continue
		}
		put(m.name, m.value)
	}
	for i, f := range userFields {
		if !seen[i] {
			put(f, vs[i])
		}
	}
	return append(out, '}')
}

// member is one member of a JSON object: its name and its value as
// written.
type member struct {
	name  string
	value json.RawMessage
}

// profileMembers splits raw, a profile, into its members, in order, and
// reports whether it is one JSON object whose every user_id is userID's
// (compared case-insensitively, ids being UUIDs).
func profileMembers(raw []byte, userID string) ([]member, bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	members := make([]member, 0, 32)
	owner := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		m := member{name: t.(string)} // an object's next token is a name
		if err := dec.Decode(&m.value); err != nil {
			return nil, false
		}
		if m.name == "user_id" {
			var id string
			if json.Unmarshal(m.value, &id) != nil || !strings.EqualFold(id, userID) {
				return nil, false
			}
			owner = true
		}
		members = append(members, m)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF { // nothing after the object
		return nil, false
	}
	return members, owner
}
