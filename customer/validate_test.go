package customer_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
)

func ptr[T any](v T) *T { return &v }

func fieldsOf(t *testing.T, err error) customer.FieldErrors {
	t.Helper()
	if err == nil {
		return nil
	}
	ve, ok := errors.AsType[*contract.ValidationError](err)
	if !ok {
		t.Fatalf("not a validation error: %v", err)
	}
	return ve.Fields
}

func TestValidateCreate(t *testing.T) {
	t.Parallel()
	valid := func() customer.Changes {
		return customer.Changes{StreetAddress: ptr("1 Main St"), City: ptr("Springfield"), PostalCode: ptr("62701")}
	}
	for _, c := range []struct {
		name   string
		change func(*customer.Changes)
		bad    []string
	}{
		{"valid", func(*customer.Changes) {}, nil},
		{"zip+4", func(c *customer.Changes) { c.PostalCode = ptr("62701-1234") }, nil},
		{"missing required", func(c *customer.Changes) { *c = customer.Changes{} }, []string{customer.FieldStreetAddress, customer.FieldCity, customer.FieldPostalCode}},
		{"blank after trim", func(c *customer.Changes) { c.City = ptr("  \t ") }, []string{customer.FieldCity}},
		{"bad US zip", func(c *customer.Changes) { c.PostalCode = ptr("6270") }, []string{customer.FieldPostalCode}},
		{"US spelled out", func(c *customer.Changes) { c.Country = ptr("United States"); c.PostalCode = ptr("X1") }, []string{customer.FieldPostalCode}},
		{"foreign postal code", func(c *customer.Changes) { c.Country = ptr("Canada"); c.PostalCode = ptr("K1A 0B1") }, nil},
		{"blank country", func(c *customer.Changes) { c.Country = ptr("") }, []string{customer.FieldCountry}},
		{"company name limit", func(c *customer.Changes) { c.CompanyName = ptr(strings.Repeat("é", 200)) }, nil},
		{"company name over limit", func(c *customer.Changes) { c.CompanyName = ptr(strings.Repeat("é", 201)) }, []string{customer.FieldCompanyName}},
		{"tax id over limit", func(c *customer.Changes) { c.TaxID = ptr(strings.Repeat("1", 51)) }, []string{customer.FieldTaxID}},
		{"business type", func(c *customer.Changes) { c.BusinessType = ptr("llc") }, nil},
		{"business type empty", func(c *customer.Changes) { c.BusinessType = ptr("") }, nil},
		{"business type unknown", func(c *customer.Changes) { c.BusinessType = ptr("LLC") }, []string{customer.FieldBusinessType}},
		{"contact method", func(c *customer.Changes) { c.PreferredContactMethod = ptr("sms") }, nil},
		{"contact method empty", func(c *customer.Changes) { c.PreferredContactMethod = ptr("") }, []string{customer.FieldPreferredContactMethod}},
		{"contact method unknown", func(c *customer.Changes) { c.PreferredContactMethod = ptr("fax") }, []string{customer.FieldPreferredContactMethod}},
		{"phone", func(c *customer.Changes) { c.EmergencyContactPhone = ptr("+1 (555) 010-0100") }, nil},
		{"phone letters", func(c *customer.Changes) { c.EmergencyContactPhone = ptr("call me") }, []string{customer.FieldEmergencyContactPhone}},
		{"null character", func(c *customer.Changes) { c.State = ptr("I\x00L") }, []string{customer.FieldState}},
		{"preferences", func(c *customer.Changes) {
			c.NotificationPreferences = map[string]bool{"email": false, "push_alerts": true}
		}, nil},
		{"preference operator key", func(c *customer.Changes) { c.NotificationPreferences = map[string]bool{"$set": true} }, []string{customer.FieldNotificationPreferences}},
		{"preference dotted key", func(c *customer.Changes) { c.NotificationPreferences = map[string]bool{"a.b": true} }, []string{customer.FieldNotificationPreferences}},
		{"too many preferences", func(c *customer.Changes) {
			c.NotificationPreferences = map[string]bool{}
			for i := range customer.MaxPreferences + 1 {
				c.NotificationPreferences["k"+strings.Repeat("x", i)] = true
			}
		}, []string{customer.FieldNotificationPreferences}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ch := valid()
			c.change(&ch)
			cust, err := customer.ValidateCreate(ch)
			fe := fieldsOf(t, err)
			if len(fe) != len(c.bad) {
				t.Fatalf("errors %v, want fields %v", fe, c.bad)
			}
			for _, f := range c.bad {
				if len(fe[f]) == 0 {
					t.Errorf("%s not reported: %v", f, fe)
				}
			}
			if err == nil && (cust.Country == "" || cust.PreferredContactMethod == "" || cust.NotificationPreferences == nil) {
				t.Errorf("defaults not applied: %+v", cust)
			}
		})
	}
}

func TestValidateCreateDefaultsAndTrim(t *testing.T) {
	t.Parallel()
	c, err := customer.ValidateCreate(customer.Changes{StreetAddress: ptr("  1 Main St  "), City: ptr("X"), PostalCode: ptr(" 62701 ")})
	if err != nil {
		t.Fatal(err)
	}
	if c.StreetAddress != "1 Main St" || c.PostalCode != "62701" || c.Country != "USA" || c.PreferredContactMethod != "email" ||
		len(c.NotificationPreferences) != 3 || !c.NotificationPreferences["email"] || c.NotificationPreferences["sms"] || c.IsVerified {
		t.Fatalf("%+v", c)
	}
}

func TestValidateUpdateChecksTheMergedProfile(t *testing.T) {
	t.Parallel()
	current := customer.Customer{Address: customer.Address{StreetAddress: "1 Main St", City: "X", PostalCode: "K1A 0B1", Country: "Canada"}}
	// Moving to the USA with a Canadian postal code is refused.
	if fe := fieldsOf(t, second(customer.ValidateUpdate(current, customer.Changes{Country: ptr("USA")}, false))); len(fe[customer.FieldPostalCode]) == 0 {
		t.Fatalf("merged check missed: %v", fe)
	}
	// Along with a US postal code it is fine.
	if _, err := customer.ValidateUpdate(current, customer.Changes{Country: ptr("USA"), PostalCode: ptr("10001")}, false); err != nil {
		t.Fatal(err)
	}
	// A change of another field does not re-judge stored data.
	if _, err := customer.ValidateUpdate(customer.Customer{Address: customer.Address{Country: "USA", PostalCode: "legacy"}}, customer.Changes{City: ptr("Y")}, false); err != nil {
		t.Fatal(err)
	}
	// A full update demands the required fields.
	fe := fieldsOf(t, second(customer.ValidateUpdate(current, customer.Changes{City: ptr("Y")}, true)))
	if len(fe[customer.FieldStreetAddress]) == 0 || len(fe[customer.FieldPostalCode]) == 0 || len(fe[customer.FieldCity]) != 0 {
		t.Fatalf("full update: %v", fe)
	}
}

func second[A, B any](_ A, b B) B { return b }

func TestValidIdempotencyKey(t *testing.T) {
	t.Parallel()
	for k, want := range map[string]bool{"abc-123": true, "": false, "has space": false, strings.Repeat("k", 255): true, strings.Repeat("k", 256): false, "tab\t": false} {
		if customer.ValidIdempotencyKey(k) != want {
			t.Errorf("ValidIdempotencyKey(%q) != %v", k, want)
		}
	}
}

func TestValidateService(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := customer.ValidateService(customer.ServiceInput{ServiceType: "repair", PerformedAt: ptr(now.Add(time.Minute))}, now); err != nil {
		t.Fatalf("within skew: %v", err)
	}
	fe := fieldsOf(t, second(customer.ValidateService(customer.ServiceInput{Notes: strings.Repeat("n", 2001), PerformedAt: ptr(now.Add(time.Hour))}, now)))
	if len(fe[customer.FieldNotes]) == 0 || len(fe[customer.FieldPerformedAt]) == 0 {
		t.Fatalf("%v", fe)
	}
	a := customer.ServiceInput{ServiceType: "a", Notes: "b"}
	b := customer.ServiceInput{ServiceType: "a\x00b"}
	if customer.Fingerprint(a) == customer.Fingerprint(b) || customer.Fingerprint(a) != customer.Fingerprint(customer.ServiceInput{ServiceType: "a", Notes: "b"}) {
		t.Fatal("fingerprints")
	}
}

func TestFilterValidate(t *testing.T) {
	t.Parallel()
	if err := (customer.Filter{BusinessType: "llc", Search: "x"}).Validate(); err != nil {
		t.Fatal(err)
	}
	fe := fieldsOf(t, (customer.Filter{BusinessType: "empire", Search: strings.Repeat("s", customer.MaxSearch+1)}).Validate())
	if len(fe[customer.FieldBusinessType]) == 0 || len(fe[customer.FieldSearch]) == 0 {
		t.Fatalf("%v", fe)
	}
}

func TestPaginate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pr        customer.PageRequest
		total     int
		number    int
		size      int
		err       bool
		next, prv bool
	}{
		{customer.PageRequest{Number: 1}, 0, 1, 20, false, false, false},
		{customer.PageRequest{Number: 2}, 0, 0, 0, true, false, false},
		{customer.PageRequest{Number: 1, Size: 10}, 25, 1, 10, false, true, false},
		{customer.PageRequest{Number: 3, Size: 10}, 25, 3, 10, false, false, true},
		{customer.PageRequest{Number: 4, Size: 10}, 25, 0, 0, true, false, false},
		{customer.PageRequest{Last: true, Size: 10}, 25, 3, 10, false, false, true},
		{customer.PageRequest{Number: 1, Size: 500}, 150, 1, 100, false, true, false},
		{customer.PageRequest{Number: 0}, 5, 0, 0, true, false, false},
	} {
		p, err := customer.Paginate[int](c.pr, c.total)
		if (err != nil) != c.err || (err == nil && (p.Number != c.number || p.Size != c.size || p.HasNext() != c.next || p.HasPrevious() != c.prv)) {
			t.Errorf("%+v of %d: %+v, %v", c.pr, c.total, p, err)
		}
		if err != nil && !errors.Is(err, customer.ErrInvalidPage) {
			t.Errorf("error %v", err)
		}
	}
}
