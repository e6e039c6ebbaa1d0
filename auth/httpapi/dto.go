package httpapi

import (
	"encoding/json"
	"time"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/contract"
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

type userListJSON struct {
	Count   int        `json:"count"`
	Results []userJSON `json:"results"`
}

type serviceTokenJSON struct {
	Access    string `json:"access"`
	TokenType string `json:"token_type"`
	ExpiresIn int64  `json:"expires_in"`
}

// fields decodes the members of a JSON object body one by one, collecting a
// DRF message for each member of the wrong type.
type fields struct {
	raw  map[string]json.RawMessage
	errs auth.Fields
}

func newFields(raw map[string]json.RawMessage) *fields {
	return &fields{raw: raw, errs: auth.Fields{}}
}

// str returns a string member, nil when absent or of the wrong type.
func (f *fields) str(name string) *string {
	r, ok := f.raw[name]
	if !ok {
		return nil
	}
	if string(r) == "null" {
		f.errs.Add(name, auth.MsgNull)
		return nil
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		f.errs.Add(name, auth.MsgNotString)
		return nil
	}
	return &s
}

// only rejects members outside allowed (read-only ones get their own message).
func (f *fields) only(allowed, readOnly []string) {
	for k := range f.raw {
		switch {
		case contains(allowed, k):
		case contains(readOnly, k):
			f.errs.Add(k, auth.MsgReadOnly)
		default:
			f.errs.Add(k, auth.MsgUnknownField)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// merge returns err with the type errors added (they replace the domain's
// messages for those fields, which saw them as absent), or the type errors
// alone when err is nil.
func (f *fields) merge(err error) error {
	if len(f.errs) == 0 {
		return err
	}
	if ve, ok := err.(*contract.ValidationError); ok {
		for k, v := range f.errs {
			ve.Fields[k] = v
		}
		return ve
	}
	return f.errs.Err()
}
