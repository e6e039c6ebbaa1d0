package httpapi

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/acme/customer-platform/auth"
)

// userJSON is the contract's user JSON.
type userJSON struct {
	ID          string    `json:"id"`
	Email       string    `json:"email"`
	FirstName   string    `json:"first_name"`
	LastName    string    `json:"last_name"`
	PhoneNumber string    `json:"phone_number"`
	UserRole    string    `json:"user_role"`
	DateJoined  time.Time `json:"date_joined"`
}

func toUserJSON(u auth.User) userJSON {
	return userJSON{
		ID: u.ID, Email: u.Email, FirstName: u.FirstName, LastName: u.LastName,
		PhoneNumber: u.PhoneNumber, UserRole: u.Role, DateJoined: u.DateJoined.UTC(),
	}
}

// staffUserJSON is the user JSON as staff and services read it (the user
// lookups): with the registration key, null when the user has none. The
// user never sees it in their own answers.
type staffUserJSON struct {
	userJSON
	RegistrationKey *string `json:"registration_key"`
}

func toStaffUserJSON(u auth.User) staffUserJSON {
	out := staffUserJSON{userJSON: toUserJSON(u)}
	if u.RegistrationKey != "" {
		out.RegistrationKey = &u.RegistrationKey
	}
	return out
}

type tokensJSON struct {
	Access  string `json:"access"`
	Refresh string `json:"refresh,omitempty"`
}

// userWithTokensJSON is register's and login's answer.
type userWithTokensJSON struct {
	userJSON
	Tokens tokensJSON `json:"tokens"`
}

func toUserWithTokens(r auth.RegisterResult) userWithTokensJSON {
	return userWithTokensJSON{userJSON: toUserJSON(r.User), Tokens: tokensJSON{Access: r.Tokens.Access, Refresh: r.Tokens.Refresh}}
}

// userListJSON is the answer of the lookup by email (staff and services).
type userListJSON struct {
	Count   int             `json:"count"`
	Results []staffUserJSON `json:"results"`
}

func toUserList(users []auth.User) userListJSON {
	out := userListJSON{Count: len(users), Results: make([]staffUserJSON, 0, len(users))}
	for _, u := range users {
		out.Results = append(out.Results, toStaffUserJSON(u))
	}
	return out
}

// userPageJSON is a page of the user listing: a keyset page as DRF's
// CursorPagination answers one, without a total (which would cost a count
// of the whole collection per page): the absolute link to the next page
// (null on the last; see nextPageURL) and the page's users.
type userPageJSON struct {
	Next    *string         `json:"next"`
	Results []staffUserJSON `json:"results"`
}

func toUserPage(publicURL string, p auth.UserPage) userPageJSON {
	out := userPageJSON{Results: make([]staffUserJSON, 0, len(p.Users))}
	for _, u := range p.Users {
		out.Results = append(out.Results, toStaffUserJSON(u))
	}
	if p.Next != "" {
		u := nextPageURL(publicURL, p)
		out.Next = &u
	}
	return out
}

// usersPath is the path of the user listing.
const usersPath = "/api/auth/users/"

// nextPageURL is the link to the page after p: after set to the page's last
// id, page_size and user_role as applied. It is never built from the
// request (its Host or X-Forwarded-* headers are the client's to choose):
// absolute on publicURL (PUBLIC_URL) when one is configured, else relative,
// the path and query only.
func nextPageURL(publicURL string, p auth.UserPage) string {
	q := url.Values{"after": {p.Next}, "page_size": {strconv.Itoa(p.Query.Limit)}}
	if p.Query.Role != "" {
		q.Set("user_role", p.Query.Role)
	}
	return strings.TrimRight(publicURL, "/") + usersPath + "?" + q.Encode()
}

type serviceTokenJSON struct {
	Access    string `json:"access"`
	TokenType string `json:"token_type"`
	ExpiresIn int64  `json:"expires_in"`
}

func toTokensJSON(p auth.TokenPair) tokensJSON {
	return tokensJSON{Access: p.Access, Refresh: p.Refresh}
}

func toServiceTokenJSON(t auth.ServiceToken) serviceTokenJSON {
	return serviceTokenJSON{
		Access: t.Access, TokenType: "Bearer",
		ExpiresIn: int64(time.Until(t.ExpiresAt).Round(time.Second) / time.Second),
	}
}
