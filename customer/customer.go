// Package customer is the vocabulary of the customer service: the customer
// profile and its service records, their validation, the sentinel errors, the
// interfaces of what the service needs from the outside (a Store, the user
// directory, a change Publisher) and the Service that holds the business
// rules: who may see and do what, and how a profile is merged with the user
// data of the auth service. Only the standard library is imported here.
package customer

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

// Business types a profile may carry (or none: "").
var BusinessTypes = []string{"individual", "sole_proprietorship", "partnership", "corporation", "llc", "nonprofit", "government"}

// Contact methods.
const (
	ContactEmail = "email"
	ContactPhone = "phone"
	ContactSMS   = "sms"
)

// DefaultCountry is the country of a profile created without one.
const DefaultCountry = "USA"

// DefaultNotificationPreferences returns a fresh copy of the preferences a new
// profile gets when none are given.
func DefaultNotificationPreferences() map[string]bool {
	return map[string]bool{"email": true, "sms": false, "marketing": false}
}

// Address is where a customer is.
type Address struct {
	StreetAddress string
	City          string
	State         string
	PostalCode    string
	Country       string
}

// EmergencyContact is whom to call for a customer.
type EmergencyContact struct {
	Name         string
	Phone        string
	Relationship string
}

// Customer is a customer profile. TotalServices and LastServiceDate are
// derived from the customer's service records whenever it is read.
//
// ID is ProfileID(UserID) for a profile created by this service; a profile
// created before (or imported with an id of its own) keeps the random id its
// clients hold.
type Customer struct {
	ID     string
	UserID string
	Address
	CompanyName             string
	BusinessType            string
	TaxID                   string
	EmergencyContact        EmergencyContact
	PreferredContactMethod  string
	NotificationPreferences map[string]bool
	IsVerified              bool
	CustomerSince           time.Time
	TotalServices           int
	LastServiceDate         *time.Time
	CreatedAt               time.Time
	UpdatedAt               time.Time
	// ServiceSeries is the store's name of this profile's service history,
	// set by the store when it reads the profile: a profile deleted and
	// created again (under the same ProfileID) starts a new series, so a
	// record written by a request that raced the deletion is never counted
	// for the new profile. Not part of the contract.
	ServiceSeries string
}

// Clone returns a copy that shares no map or pointer with c.
func (c Customer) Clone() Customer {
	c.NotificationPreferences = maps.Clone(c.NotificationPreferences)
	if c.LastServiceDate != nil {
		t := *c.LastServiceDate
		c.LastServiceDate = &t
	}
	return c
}

// UserData is the read-only user part of a response, from the caller's token
// or the auth service. A nil field is unknown (written as null).
type UserData struct {
	Email       *string
	FirstName   *string
	LastName    *string
	PhoneNumber *string
}

// CustomerWithUserData is a profile with the user data merged in.
type CustomerWithUserData struct {
	Customer
	User UserData
}

// ServiceRecord is one service performed for a customer: the records are
// insert-only and the customer's service counter is their count.
type ServiceRecord struct {
	ID          string
	CustomerID  string
	ServiceType string
	Notes       string
	PerformedAt time.Time
	RecordedBy  string // user id of the staff member or service that recorded it
	CreatedAt   time.Time
	// RequestHash identifies the request that recorded it, so a retry under
	// the same Idempotency-Key with a different body is told apart.
	RequestHash string
}

// ServiceInput is the optional body of increment_service.
type ServiceInput struct {
	ServiceType string
	Notes       string
	PerformedAt *time.Time
}

// Stats are the staff's figures over every profile.
type Stats struct {
	TotalCustomers     int
	VerifiedCustomers  int
	BusinessCustomers  int // profiles whose business_type is set and not "individual"
	CustomersByCountry map[string]int
	TotalServices      int
	NewLast30Days      int // profiles whose customer_since is within the last 30 days
}

// SelfStats are a customer's figures about their own profile.
type SelfStats struct {
	CustomerSince   time.Time
	TotalServices   int
	LastServiceDate *time.Time
	IsVerified      bool
}

// StatsResult is either scope: exactly one of All and Self is set.
type StatsResult struct {
	All  *Stats
	Self *SelfStats
}

// Actor is the authenticated caller.
type Actor struct {
	UserID    string
	Role      string // one of the contract's roles (contract.RoleCustomer, ...)
	Email     string
	FirstName string
	LastName  string
	Token     string // the bearer token, forwarded to the auth service
	// Scopes are what a service account (Role contract.RoleService) may do
	// here, some of ScopeRead, ScopeWrite and ScopeDelete: the HTTP adapter
	// takes them from the token's scope claim. Without the scope an
	// operation needs, a service is refused it (ErrMissingScope); none is
	// allowed by default. A person's rights come from the role alone and
	// ignore Scopes.
	Scopes []string
}

// The scopes of service tokens the customer service enforces
// (internal/contract): ScopeRead reads any profile (<id>/, the list,
// <id>/services/, stats over every profile, check_profile_exists for
// another user); ScopeWrite changes one (PATCH/PUT <id>/,
// increment_service; creating for a user and verifying stay staff-only,
// as the contract has them, whatever a service's scopes); ScopeDelete
// deletes any profile (DELETE <id>/).
const (
	ScopeRead   = contract.ScopeCustomersRead
	ScopeWrite  = contract.ScopeCustomersWrite
	ScopeDelete = contract.ScopeCustomersDelete
)

// ServiceScopes returns every scope of the customer service.
func ServiceScopes() []string { return []string{ScopeRead, ScopeWrite, ScopeDelete} }

// permit returns nil when the caller may act with scope: anyone but a
// service account (whose role decides), or a service holding the scope;
// otherwise ErrMissingScope.
func (a Actor) permit(scope string) error {
	if a.Role != contract.RoleService || slices.Contains(a.Scopes, scope) {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrMissingScope, scope)
}

// IsStaff reports whether the caller is an employee or an admin.
func (a Actor) IsStaff() bool { return contract.IsStaff(a.Role) }

// staffReader reports whether the caller may read every profile: staff and
// machine accounts.
func (a Actor) staffReader() bool { return a.IsStaff() || a.Role == contract.RoleService }

// isUser reports whether the caller is a person (not a machine account).
func (a Actor) isUser() bool { return contract.IsUserRole(a.Role) }

// owns reports whether c is the caller's own profile.
func (a Actor) owns(c Customer) bool { return a.isUser() && a.UserID != "" && a.UserID == c.UserID }
