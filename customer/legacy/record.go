// Package legacy moves the customer records of the pre-split Django service
// into the new profiles: it reads the legacy exports (a Django dumpdata JSON
// file or a CSV file) as streams, parses the free-text addresses, and plans,
// applies and verifies the migration against small interfaces of the auth
// service and the customer store that the command wires to the real ones.
//
// It imports only the standard library.
package legacy

import (
	"fmt"
	"time"
)

// Model is the dumpdata model label of the legacy customers.
const Model = "customers.customer"

// Record is one legacy customer as read from an export. String fields are
// trimmed; a field absent from the export is empty.
type Record struct {
	// Seq is the 1-based position of the record among the input's customer
	// records; Line is the CSV line it starts on (0 for dumpdata).
	Seq  int
	Line int

	PK           string // the legacy primary key
	LegacyUserID string // the legacy integer user_id, as text

	FirstName string
	LastName  string
	Email     string
	Phone     string
	Address   string // the free-text address

	CompanyName                  string
	BusinessType                 string
	TaxID                        string
	EmergencyContactName         string
	EmergencyContactPhone        string
	EmergencyContactRelationship string
	PreferredContactMethod       string          // "" when the export has none
	NotificationPreferences      map[string]bool // nil when the export has none
	IsVerified                   bool
	CustomerSince                time.Time // zero when absent

	// Invalid lists the fields whose value could not be read (a wrong JSON
	// type, an unparseable date or boolean, a CSV row of the wrong width).
	Invalid []FieldError
}

// Ref names the record for people: its primary key, or its position.
func (r Record) Ref() string {
	if r.PK != "" {
		return "pk " + r.PK
	}
	return fmt.Sprintf("record %d", r.Seq)
}

// FieldError is a problem with one field of a record.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }
