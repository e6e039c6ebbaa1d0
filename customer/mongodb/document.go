package mongodb

import (
	"maps"
	"time"

	"github.com/acme/customer-platform/customer"
)

// customerDoc is a document of the customers collection (see the package
// comment for the shape). The import of legacy data writes this same struct.
type customerDoc struct {
	ID                           string          `bson:"_id"`
	UserID                       string          `bson:"user_id"`
	ServiceSeries                string          `bson:"service_series,omitempty"`
	StreetAddress                string          `bson:"street_address"`
	City                         string          `bson:"city"`
	State                        string          `bson:"state"`
	PostalCode                   string          `bson:"postal_code"`
	Country                      string          `bson:"country"`
	CompanyName                  string          `bson:"company_name"`
	BusinessType                 string          `bson:"business_type"`
	TaxID                        string          `bson:"tax_id"`
	EmergencyContactName         string          `bson:"emergency_contact_name"`
	EmergencyContactPhone        string          `bson:"emergency_contact_phone"`
	EmergencyContactRelationship string          `bson:"emergency_contact_relationship"`
	PreferredContactMethod       string          `bson:"preferred_contact_method"`
	NotificationPreferences      map[string]bool `bson:"notification_preferences"`
	IsVerified                   bool            `bson:"is_verified"`
	CustomerSince                time.Time       `bson:"customer_since"`
	CreatedAt                    time.Time       `bson:"created_at"`
	UpdatedAt                    time.Time       `bson:"updated_at"`
}

// series is the name of the profile's service series: its own, else
// (a profile stored before series existed) its _id.
func (d customerDoc) series() string {
	if d.ServiceSeries != "" {
		return d.ServiceSeries
	}
	return d.ID
}

// serviceDoc is a service record of the previous shape (one document per
// record with a random _id, counted by customer_id), which Upgrade
// converts to a slot.
type serviceDoc struct {
	ID          string    `bson:"_id"`
	CustomerID  string    `bson:"customer_id"`
	Key         string    `bson:"key"`
	ServiceType string    `bson:"service_type"`
	Notes       string    `bson:"notes"`
	PerformedAt time.Time `bson:"performed_at"`
	RecordedBy  string    `bson:"recorded_by"`
	RequestHash string    `bson:"request_hash"`
	CreatedAt   time.Time `bson:"created_at"`
}

// toCustomerDoc converts a profile to its stored document; the derived
// service figures are not stored.
func toCustomerDoc(c customer.Customer) customerDoc {
	prefs := maps.Clone(c.NotificationPreferences)
	if prefs == nil {
		prefs = map[string]bool{}
	}
	return customerDoc{
		ID:                           c.ID,
		UserID:                       c.UserID,
		ServiceSeries:                c.ServiceSeries,
		StreetAddress:                c.StreetAddress,
		City:                         c.City,
		State:                        c.State,
		PostalCode:                   c.PostalCode,
		Country:                      c.Country,
		CompanyName:                  c.CompanyName,
		BusinessType:                 c.BusinessType,
		TaxID:                        c.TaxID,
		EmergencyContactName:         c.EmergencyContact.Name,
		EmergencyContactPhone:        c.EmergencyContact.Phone,
		EmergencyContactRelationship: c.EmergencyContact.Relationship,
		PreferredContactMethod:       c.PreferredContactMethod,
		NotificationPreferences:      prefs,
		IsVerified:                   c.IsVerified,
		CustomerSince:                c.CustomerSince.UTC(),
		CreatedAt:                    c.CreatedAt.UTC(),
		UpdatedAt:                    c.UpdatedAt.UTC(),
	}
}

// fromCustomerDoc converts a stored document to a profile (without the
// derived service figures, which the store adds).
func fromCustomerDoc(d customerDoc) customer.Customer {
	prefs := d.NotificationPreferences
	if prefs == nil {
		prefs = map[string]bool{}
	}
	return customer.Customer{
		ID:            d.ID,
		UserID:        d.UserID,
		ServiceSeries: d.series(),
		Address: customer.Address{
			StreetAddress: d.StreetAddress,
			City:          d.City,
			State:         d.State,
			PostalCode:    d.PostalCode,
			Country:       d.Country,
		},
		CompanyName:  d.CompanyName,
		BusinessType: d.BusinessType,
		TaxID:        d.TaxID,
		EmergencyContact: customer.EmergencyContact{
			Name:         d.EmergencyContactName,
			Phone:        d.EmergencyContactPhone,
			Relationship: d.EmergencyContactRelationship,
		},
		PreferredContactMethod:  d.PreferredContactMethod,
		NotificationPreferences: prefs,
		IsVerified:              d.IsVerified,
		CustomerSince:           d.CustomerSince.UTC(),
		CreatedAt:               d.CreatedAt.UTC(),
		UpdatedAt:               d.UpdatedAt.UTC(),
	}
}

// toServiceDoc converts a service record to its document of the previous
// shape under key (what the previous version wrote; the tests of Upgrade
// write it).
func toServiceDoc(r customer.ServiceRecord, key string) serviceDoc {
	return serviceDoc{
		ID:          r.ID,
		CustomerID:  r.CustomerID,
		Key:         key,
		ServiceType: r.ServiceType,
		Notes:       r.Notes,
		PerformedAt: r.PerformedAt.UTC(),
		RecordedBy:  r.RecordedBy,
		RequestHash: r.RequestHash,
		CreatedAt:   r.CreatedAt.UTC(),
	}
}

// fromServiceDoc converts a stored service document to a record.
func fromServiceDoc(d serviceDoc) customer.ServiceRecord {
	return customer.ServiceRecord{
		ID:          d.ID,
		CustomerID:  d.CustomerID,
		ServiceType: d.ServiceType,
		Notes:       d.Notes,
		PerformedAt: d.PerformedAt.UTC(),
		RecordedBy:  d.RecordedBy,
		RequestHash: d.RequestHash,
		CreatedAt:   d.CreatedAt.UTC(),
	}
}

// setOf is the $set document of the fields ch sends, plus updated_at.
func setOf(ch customer.Changes, now time.Time) map[string]any {
	set := map[string]any{"updated_at": now.UTC()}
	str := func(name string, v *string) {
		if v != nil {
			set[name] = *v
		}
	}
	str("street_address", ch.StreetAddress)
	str("city", ch.City)
	str("state", ch.State)
	str("postal_code", ch.PostalCode)
	str("country", ch.Country)
	str("company_name", ch.CompanyName)
	str("business_type", ch.BusinessType)
	str("tax_id", ch.TaxID)
	str("emergency_contact_name", ch.EmergencyContactName)
	str("emergency_contact_phone", ch.EmergencyContactPhone)
	str("emergency_contact_relationship", ch.EmergencyContactRelationship)
	str("preferred_contact_method", ch.PreferredContactMethod)
	if ch.NotificationPreferences != nil {
		set["notification_preferences"] = maps.Clone(ch.NotificationPreferences)
	}
	if ch.IsVerified != nil {
		set["is_verified"] = *ch.IsVerified
	}
	return set
}
