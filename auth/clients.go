package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Clients are the configured service accounts (AUTH_SERVICE_CLIENTS) and
// their scopes.
type Clients struct {
	secrets map[string][sha256.Size]byte
	scopes  map[string][]string
	dummy   [sha256.Size]byte
}

var _ ClientVerifier = (*Clients)(nil)

// ParseClients parses the service clients, "id:secret" pairs separated by
// commas (AUTH_SERVICE_CLIENTS, e.g. "bff:s3cret,customer:0ther"), and
// their scopes (AUTH_SERVICE_CLIENT_SCOPES, not secret): clients separated
// by commas, each its id, "=" and its scopes separated by spaces, e.g.
// "bff=users:read users:delete:customers,customer=users:read". Ids must be
// unique, secrets non-empty, scopes among KnownScopes; the scopes of a
// client that is not configured are ignored. A client without scopes gets
// none (see Unscoped).
func ParseClients(clients, scopes string) (*Clients, error) {
	c := &Clients{secrets: map[string][sha256.Size]byte{}, scopes: map[string][]string{}}
	c.dummy = sha256.Sum256([]byte("no such client"))
	for _, item := range strings.Split(clients, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, secret, ok := strings.Cut(item, ":")
		id = strings.TrimSpace(id)
		if !ok || id == "" || secret == "" {
			return nil, errors.New("want client_id:secret pairs separated by commas")
		}
		if _, dup := c.secrets[id]; dup {
			return nil, fmt.Errorf("client %q is listed twice", id)
		}
		c.secrets[id] = sha256.Sum256([]byte(secret))
		c.scopes[id] = []string{}
	}
	seen := map[string]bool{}
	for _, item := range strings.Split(scopes, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, list, ok := strings.Cut(item, "=")
		id = strings.TrimSpace(id)
		if !ok || id == "" {
			return nil, errors.New("want client_id=scope scope... separated by commas")
		}
		if seen[id] {
			return nil, fmt.Errorf("the scopes of %q are listed twice", id)
		}
		seen[id] = true
		for _, sc := range strings.Fields(list) {
			if !slices.Contains(knownScopes, sc) {
				return nil, fmt.Errorf("client %q: unknown scope %q (known: %s)", id, sc, strings.Join(knownScopes, " "))
			}
			if _, known := c.secrets[id]; known && !slices.Contains(c.scopes[id], sc) {
				c.scopes[id] = append(c.scopes[id], sc)
			}
		}
	}
	return c, nil
}

// Len is the number of configured clients.
func (c *Clients) Len() int { return len(c.secrets) }

// Verify compares the secret's digest with the client's in constant time
// (an unknown id is compared with a dummy, so it costs the same).
func (c *Clients) Verify(clientID, secret string) bool {
	want, ok := c.secrets[clientID]
	if !ok {
		want = c.dummy
	}
	got := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && ok
}

// Scopes returns the client's scopes (nil for an unknown client).
func (c *Clients) Scopes(clientID string) []string { return slices.Clone(c.scopes[clientID]) }

// Unscoped lists the clients configured without any scope, sorted.
func (c *Clients) Unscoped() []string {
	var ids []string
	for id, s := range c.scopes {
		if len(s) == 0 {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// GrantUnscoped gives every client configured without scopes all of
// scopes: development's default, where the clients were configured before
// scopes existed.
func (c *Clients) GrantUnscoped(scopes []string) {
	for _, id := range c.Unscoped() {
		c.scopes[id] = slices.Clone(scopes)
	}
}
