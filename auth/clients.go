package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// Clients are the configured service accounts (AUTH_SERVICE_CLIENTS).
type Clients struct {
	secrets map[string][sha256.Size]byte
	dummy   [sha256.Size]byte
}

var _ ClientVerifier = (*Clients)(nil)

// ParseClients parses "id:secret" pairs separated by commas, e.g.
// "bff:s3cret,migrate:0ther". Ids must be unique and secrets non-empty.
func ParseClients(s string) (*Clients, error) {
	c := &Clients{secrets: map[string][sha256.Size]byte{}}
	c.dummy = sha256.Sum256([]byte("no such client"))
	for _, item := range strings.Split(s, ",") {
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
