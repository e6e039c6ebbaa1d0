package httpapi

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/web"
)

func benchCustomer() customer.CustomerWithUserData {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	email, first, last, phone := "ada@example.com", "Ada", "Lovelace", "+1 555 0100"
	return customer.CustomerWithUserData{
		Customer: customer.Customer{
			ID:                      contract.NewID(),
			UserID:                  contract.NewID(),
			Address:                 customer.Address{StreetAddress: "1 Main St", City: "Springfield", State: "IL", PostalCode: "62701", Country: "USA"},
			CompanyName:             "Analytical Engines LLC",
			BusinessType:            "llc",
			TaxID:                   "12-3456789",
			EmergencyContact:        customer.EmergencyContact{Name: "Charles", Phone: "+1 555 0101", Relationship: "colleague"},
			PreferredContactMethod:  "email",
			NotificationPreferences: customer.DefaultNotificationPreferences(),
			IsVerified:              true,
			CustomerSince:           now,
			TotalServices:           12,
			LastServiceDate:         &now,
			CreatedAt:               now,
			UpdatedAt:               now,
		},
		User: customer.UserData{Email: &email, FirstName: &first, LastName: &last, PhoneNumber: &phone},
	}
}

// BenchmarkEncodeCustomer measures the JSON of a CustomerWithUserData answer.
func BenchmarkEncodeCustomer(b *testing.B) {
	cw := benchCustomer()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(toCustomerResponse(cw)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeListPage measures a full page of 20 merged profiles.
func BenchmarkEncodeListPage(b *testing.B) {
	p := customer.Page[customer.CustomerWithUserData]{Total: 100, Number: 2, Size: 20}
	for range 20 {
		p.Items = append(p.Items, benchCustomer())
	}
	gin.SetMode(gin.ReleaseMode)
	c, _ := gin.CreateTestContext(httptest.NewRecorder())
	c.Request = httptest.NewRequest("GET", "/api/v1/customers/?page=2&city=Springfield", nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(toPageResponse(c, newPageLinks("https://customers.example.com"), p, toCustomerResponse)); err != nil {
			b.Fatal(err)
		}
	}
}

const benchBody = `{"street_address":"1 Main St","city":"Springfield","state":"IL","postal_code":"62701-1234",` +
	`"company_name":"Analytical Engines LLC","business_type":"llc","tax_id":"12-3456789",` +
	`"emergency_contact_name":"Charles","emergency_contact_phone":"+1 555 0101","emergency_contact_relationship":"colleague",` +
	`"preferred_contact_method":"sms","notification_preferences":{"email":true,"sms":true,"marketing":false}}`

// BenchmarkDecodeCreate measures reading, decoding and validating a create
// body, as the create handler does.
func BenchmarkDecodeCreate(b *testing.B) {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	b.ReportAllocs()
	for b.Loop() {
		c := gin.CreateTestContextOnly(httptest.NewRecorder(), e)
		c.Request = httptest.NewRequest("POST", "/api/v1/customers/profile/create/", strings.NewReader(benchBody))
		c.Request.Header.Set("Content-Type", "application/json")
		obj, err := web.ReadObject(c, true)
		if err != nil {
			b.Fatal(err)
		}
		req, fe := customer.DecodeProfile(obj, customer.DecodeOptions{})
		if len(fe) != 0 {
			b.Fatal(fe)
		}
		if _, err := customer.ValidateCreate(req.Changes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeInvalid measures refusing a body with several bad fields.
func BenchmarkDecodeInvalid(b *testing.B) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(`{"city":{"$ne":""},"is_verified":true,"total_services":5,"notification_preferences":{"$set":true},"x":1}`), &obj); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, fe := customer.DecodeProfile(obj, customer.DecodeOptions{}); len(fe) != 5 {
			b.Fatal(fe)
		}
	}
}
