package httpapi

import (
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
