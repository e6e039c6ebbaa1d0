package customer

import (
	"crypto/sha1" // UUIDv5 is defined on SHA-1 (RFC 9562); not a security use
	"strings"

	"github.com/acme/customer-platform/internal/contract"
)

// profileNamespace (7c1f4e2a-935d-4b8e-a60b-3d52e971c408) is the namespace
// of ProfileID's name-based UUIDs: a fixed random UUID of ours, never to
// change (every stored profile id derived from it would be lost).
var profileNamespace = [16]byte{0x7c, 0x1f, 0x4e, 0x2a, 0x93, 0x5d, 0x4b, 0x8e, 0xa6, 0x0b, 0x3d, 0x52, 0xe9, 0x71, 0xc4, 0x08}

// ProfileID is the id of the profile of a user, derived from the user id: a
// name-based UUID (version 5, RFC 9562) of the lower-cased user id in a
// namespace of ours. Deriving it makes "the profile of user u" a lookup by
// _id, the one lookup every store answers from an index. It is a UUID like
// any other profile id; profiles created before it was introduced keep
// their random ids (the store finds them through an alias).
func ProfileID(userID string) string {
	h := sha1.New()
	h.Write(profileNamespace[:])
	h.Write([]byte(strings.ToLower(userID)))
	var b [20]byte
	sum := h.Sum(b[:0])
	sum[6] = sum[6]&0x0f | 0x50
	sum[8] = sum[8]&0x3f | 0x80
	return contract.FormatUUID([16]byte(sum[:16]))
}
