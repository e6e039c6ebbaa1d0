package customer

import (
	"context"
	"slices"
	"time"
)

// Filter selects profiles for a listing. Empty strings and a nil IsVerified
// do not filter. UserID restricts the listing to one user's profile (a
// customer sees only their own).
type Filter struct {
	UserID       string
	City         string
	State        string
	Country      string
	BusinessType string
	IsVerified   *bool
	// Search is a case-insensitive substring of company_name,
	// street_address, city, state or postal_code, matched literally.
	Search string
}

// Validate checks the filter values that have a fixed set of choices.
func (f Filter) Validate() error {
	fe := FieldErrors{}
	if f.BusinessType != "" && !slices.Contains(BusinessTypes, f.BusinessType) {
		fe.Add(FieldBusinessType, "Select a valid choice. "+f.BusinessType+" is not one of the available choices.")
	}
	if len(f.Search) > MaxSearch {
		fe.Add(FieldSearch, MsgSearchLength)
	}
	return fe.Err()
}

// Store keeps profiles and their service records. Every method returns
// ErrNotFound for a missing profile and ErrProfileExists when a user already
// has one. Read profiles carry TotalServices and LastServiceDate derived from
// their service records.
type Store interface {
	// Create inserts a new profile.
	Create(ctx context.Context, c Customer) error
	// ByID and ByUserID read one profile.
	ByID(ctx context.Context, id string) (Customer, error)
	ByUserID(ctx context.Context, userID string) (Customer, error)
	// Update, Delete and AddService write the profile c as the caller read
	// it (c.ID selects it; a wrapper may use its UserID without reading it
	// again; a store may start from its ServiceSeries and TotalServices).
	//
	// Update sets only the fields ch sends (and updated_at) and returns the
	// profile as stored afterwards.
	Update(ctx context.Context, c Customer, ch Changes, now time.Time) (Customer, error)
	// Delete removes a profile and its service records.
	Delete(ctx context.Context, c Customer) error
	// Count and List read the profiles matching f, newest first.
	Count(ctx context.Context, f Filter) (int, error)
	List(ctx context.Context, f Filter, offset, limit int) ([]Customer, error)
	// AddService inserts one service record under key, unique per customer.
	// When the customer already has a record with that key, nothing is
	// inserted and that record is returned with created false.
	// r.CustomerID is c.ID.
	AddService(ctx context.Context, c Customer, r ServiceRecord, key string) (stored ServiceRecord, created bool, err error)
	// CountServices and Services read a customer's records, newest first.
	CountServices(ctx context.Context, customerID string) (int, error)
	Services(ctx context.Context, customerID string, offset, limit int) ([]ServiceRecord, error)
	// Stats computes the staff's figures; since starts the "new" window.
	Stats(ctx context.Context, since time.Time) (Stats, error)
}

// User is what the service needs to know of an auth user.
type User struct {
	ID          string
	Email       string
	FirstName   string
	LastName    string
	PhoneNumber string
}

// Users is the user directory (the auth service). Both calls forward the
// caller's bearer token. Both return an error matching ErrUserNotFound only
// when the auth service says the user does not exist (a deleted account's
// token stays valid for minutes); any other error means no answer either
// way.
type Users interface {
	// Me returns the token's own user.
	Me(ctx context.Context, token string) (User, error)
	// User returns a user by id; the token must be a staff or service token.
	User(ctx context.Context, token, id string) (User, error)
}

// Change operations published after each write.
const (
	OpCreate  = "create"
	OpUpdate  = "update"
	OpDelete  = "delete"
	OpVerify  = "verify"
	OpService = "service"
)

// Change is a notification that a profile was written.
type Change struct {
	UserID     string
	CustomerID string
	Op         string
}

// Publisher sends change notifications, best effort: it never fails the
// write that triggered it.
type Publisher interface {
	Publish(ctx context.Context, ch Change)
}
