package authclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/acme/customer-platform/internal/upstream"
)

// ServiceTokens caches a service account's access token and renews it before
// it expires. Token is safe for concurrent use: at most one fetch runs at a
// time and the callers waiting for it share its result.
type ServiceTokens struct {
	client   *Client
	clientID string
	secret   string
	now      func() time.Time

	fetch chan struct{} // a one-slot semaphore held while fetching

	mu      sync.Mutex
	token   string
	renewAt time.Time // after this the token is renewed
	expires time.Time
}

// NewServiceTokens returns a token source for the client id and secret
// configured on the auth service (AUTH_SERVICE_CLIENTS).
func NewServiceTokens(c *Client, clientID, secret string) *ServiceTokens {
	return &ServiceTokens{client: c, clientID: clientID, secret: secret, now: time.Now, fetch: make(chan struct{}, 1)}
}

// ClientID is the service account's id.
func (s *ServiceTokens) ClientID() string { return s.clientID }

func (s *ServiceTokens) cached() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && s.now().Before(s.renewAt) {
		return s.token
	}
	return ""
}

// Token returns a valid service token, fetching a new one when none is
// cached or the cached one is in the last fifth of its life.
func (s *ServiceTokens) Token(ctx context.Context) (string, error) {
	if t := s.cached(); t != "" {
		return t, nil
	}
	select {
	case s.fetch <- struct{}{}:
	case <-ctx.Done():
		return "", upstream.Unavailable("auth", "POST /api/auth/token/service/", "gave up waiting for the service token", ctx.Err())
	}
	defer func() { <-s.fetch }()
	if t := s.cached(); t != "" { // fetched while we waited
		return t, nil
	}
	st, err := s.client.ServiceToken(ctx, s.clientID, s.secret)
	if err != nil {
		// A token that is due for renewal but still valid beats no token.
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.token != "" && s.now().Before(s.expires.Add(-5*time.Second)) {
			return s.token, nil
		}
		return "", err
	}
	now := s.now()
	life := st.ExpiresAt.Sub(now)
	s.mu.Lock()
	s.token, s.expires, s.renewAt = st.Access, st.ExpiresAt, now.Add(life*4/5)
	s.mu.Unlock()
	return st.Access, nil
}

// Invalidate drops token from the cache (e.g. after the services refused it
// because the key was rotated), so the next Token fetches a new one.
func (s *ServiceTokens) Invalidate(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == token {
		s.token = ""
	}
}

// unverifiedExpiry reads a JWT's exp claim without verifying it: the client
// only uses it to know when to renew its own token.
func unverifiedExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > MaxTokenBytes {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Exp == nil || *c.Exp <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(*c.Exp), 0), true
}
