package bff

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	profile := make(chan json.RawMessage, 1)
	go func() {
		raw, err := o.profiles.CurrentProfile(ctx, token)
		switch {
		case errors.Is(err, ErrNoProfile):
			raw = nil
		case err != nil:
			fail(fmt.Errorf("load customer profile: %w", err))
			raw = nil
		default:
			raw = bytes.TrimSpace(raw)
			if !profileOwnerOf(raw, userID) {
				fail(fmt.Errorf("load customer profile: %w", ErrViewMismatch))
				raw = nil
			}
		}
		profile <- raw
	}()

	user, err := o.users.CurrentUser(ctx, token)
	if err != nil {
		fail(fmt.Errorf("load user: %w", err))
	} else if user = bytes.TrimSpace(user); !userOf(user, userID) {
		fail(fmt.Errorf("load user: %w", ErrViewMismatch))
	}
	p := <-profile
	if first != nil {
		return View{}, first
	}
	return View{User: user, Profile: p}, nil
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

// userOf and profileOwnerOf check a part's owner: ids are UUIDs, compared
// case-insensitively. json.Unmarshal validates the whole document first.
func userOf(raw []byte, userID string) bool {
	var u struct {
		ID string `json:"id"`
	}
	return len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &u) == nil && strings.EqualFold(u.ID, userID)
}

func profileOwnerOf(raw []byte, userID string) bool {
	var p struct {
		UserID string `json:"user_id"`
	}
	return len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &p) == nil && strings.EqualFold(p.UserID, userID)
}
