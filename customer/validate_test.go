package customer

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

func ptr[T any](v T) *T { return &v }

func fieldsOf(t *testing.T, err error) FieldErrors {
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
	valid := func() Changes {
		return Changes{StreetAddress: ptr("1 Main St"), City: ptr("Springfield"), PostalCode: ptr("62701")}
	}
	for _, c := range []struct {
		name   string
		change func(*Changes)
		bad    []string
	}{
		{"valid", func(*Changes) {}, nil},
		{"zip+4", func(c *Changes) { c.PostalCode = ptr("62701-1234") }, nil},
		{"missing required", func(c *Changes) { *c = Changes{} }, []string{FieldStreetAddress, FieldCity, FieldPostalCode}},
		{"blank after trim", func(c *Changes) { c.City = ptr("  \t ") }, []string{FieldCity}},
		{"bad US zip", func(c *Changes) { c.PostalCode = ptr("6270") }, []string{FieldPostalCode}},
		{"US spelled out", func(c *Changes) { c.Country = ptr("United States"); c.PostalCode = ptr("X1") }, []string{FieldPostalCode}},
		{"foreign postal code", func(c *Changes) { c.Country = ptr("Canada"); c.PostalCode = ptr("K1A 0B1") }, nil},
		{"blank country", func(c *Changes) { c.Country = ptr("") }, []string{FieldCountry}},
		{"company name limit", func(c *Changes) { c.CompanyName = ptr(strings.Repeat("é", 200)) }, nil},
		{"company name over limit", func(c *Changes) { c.CompanyName = ptr(strings.Repeat("é", 201)) }, []string{FieldCompanyName}},
		{"tax id over limit", func(c *Changes) { c.TaxID = ptr(strings.Repeat("1", 51)) }, []string{FieldTaxID}},
		{"business type", func(c *Changes) { c.BusinessType = ptr("llc") }, nil},
		{"business type empty", func(c *Changes) { c.BusinessType = ptr("") }, nil},
		{"business type unknown", func(c *Changes) { c.BusinessType = ptr("LLC") }, []string{FieldBusinessType}},
		{"contact method", func(c *Changes) { c.PreferredContactMethod = ptr("sms") }, nil},
		{"contact method empty", func(c *Changes) { c.PreferredContactMethod = ptr("") }, []string{FieldPreferredContactMethod}},
		{"contact method unknown", func(c *Changes) { c.PreferredContactMethod = ptr("fax") }, []string{FieldPreferredContactMethod}},
		{"phone", func(c *Changes) { c.EmergencyContactPhone = ptr("+1 (555) 010-0100") }, nil},
		{"phone letters", func(c *Changes) { c.EmergencyContactPhone = ptr("call me") }, []string{FieldEmergencyContactPhone}},
		{"null character", func(c *Changes) { c.State = ptr("I\x00L") }, []string{FieldState}},
		{"preferences", func(c *Changes) { c.NotificationPreferences = map[string]bool{"email": false, "push_alerts": true} }, nil},
		{"preference operator key", func(c *Changes) { c.NotificationPreferences = map[string]bool{"$set": true} }, []string{FieldNotificationPreferences}},
		{"preference dotted key", func(c *Changes) { c.NotificationPreferences = map[string]bool{"a.b": true} }, []string{FieldNotificationPreferences}},
		{"too many preferences", func(c *Changes) {
			c.NotificationPreferences = map[string]bool{}
			for i := range MaxPreferences + 1 {
				c.NotificationPreferences["k"+strings.Repeat("x", i)] = true
			}
		}, []string{FieldNotificationPreferences}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ch := valid()
			c.change(&ch)
			cust, err := ValidateCreate(ch)
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
	c, err := ValidateCreate(Changes{StreetAddress: ptr("  1 Main St  "), City: ptr("X"), PostalCode: ptr(" 62701 ")})
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
	current := Customer{Address: Address{StreetAddress: "1 Main St", City: "X", PostalCode: "K1A 0B1", Country: "Canada"}}
	// Moving to the USA with a Canadian postal code is refused.
	if fe := fieldsOf(t, second(ValidateUpdate(current, Changes{Country: ptr("USA")}, false))); len(fe[FieldPostalCode]) == 0 {
		t.Fatalf("merged check missed: %v", fe)
	}
	// Along with a US postal code it is fine.
	if _, err := ValidateUpdate(current, Changes{Country: ptr("USA"), PostalCode: ptr("10001")}, false); err != nil {
		t.Fatal(err)
	}
	// A change of another field does not re-judge stored data.
	if _, err := ValidateUpdate(Customer{Address: Address{Country: "USA", PostalCode: "legacy"}}, Changes{City: ptr("Y")}, false); err != nil {
		t.Fatal(err)
	}
	// A full update demands the required fields.
	fe := fieldsOf(t, second(ValidateUpdate(current, Changes{City: ptr("Y")}, true)))
	if len(fe[FieldStreetAddress]) == 0 || len(fe[FieldPostalCode]) == 0 || len(fe[FieldCity]) != 0 {
		t.Fatalf("full update: %v", fe)
	}
}

func second[A, B any](_ A, b B) B { return b }

func TestValidIdempotencyKey(t *testing.T) {
	t.Parallel()
	for k, want := range map[string]bool{"abc-123": true, "": false, "has space": false, strings.Repeat("k", 255): true, strings.Repeat("k", 256): false, "tab\t": false} {
		if ValidIdempotencyKey(k) != want {
			t.Errorf("ValidIdempotencyKey(%q) != %v", k, want)
		}
	}
}

func TestValidateService(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := validateService(ServiceInput{ServiceType: "repair", PerformedAt: ptr(now.Add(time.Minute))}, now); err != nil {
		t.Fatalf("within skew: %v", err)
	}
	fe := fieldsOf(t, second(validateService(ServiceInput{Notes: strings.Repeat("n", 2001), PerformedAt: ptr(now.Add(time.Hour))}, now)))
	if len(fe[FieldNotes]) == 0 || len(fe[FieldPerformedAt]) == 0 {
		t.Fatalf("%v", fe)
	}
	a := ServiceInput{ServiceType: "a", Notes: "b"}
	b := ServiceInput{ServiceType: "a\x00b"}
	if a.fingerprint() == b.fingerprint() || a.fingerprint() != (ServiceInput{ServiceType: "a", Notes: "b"}).fingerprint() {
		t.Fatal("fingerprints")
	}
}

func TestFilterValidate(t *testing.T) {
	t.Parallel()
	if err := (Filter{BusinessType: "llc", Search: "x"}).Validate(); err != nil {
		t.Fatal(err)
	}
	fe := fieldsOf(t, (Filter{BusinessType: "empire", Search: strings.Repeat("s", MaxSearch+1)}).Validate())
	if len(fe[FieldBusinessType]) == 0 || len(fe[FieldSearch]) == 0 {
		t.Fatalf("%v", fe)
	}
}

func TestPaginate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pr        PageRequest
		total     int
		number    int
		size      int
		err       bool
		next, prv bool
	}{
		{PageRequest{Number: 1}, 0, 1, 20, false, false, false},
		{PageRequest{Number: 2}, 0, 0, 0, true, false, false},
		{PageRequest{Number: 1, Size: 10}, 25, 1, 10, false, true, false},
		{PageRequest{Number: 3, Size: 10}, 25, 3, 10, false, false, true},
		{PageRequest{Number: 4, Size: 10}, 25, 0, 0, true, false, false},
		{PageRequest{Last: true, Size: 10}, 25, 3, 10, false, false, true},
		{PageRequest{Number: 1, Size: 500}, 150, 1, 100, false, true, false},
		{PageRequest{Number: 0}, 5, 0, 0, true, false, false},
	} {
		p, err := paginate[int](c.pr, c.total)
		if (err != nil) != c.err || (err == nil && (p.Number != c.number || p.Size != c.size || p.HasNext() != c.next || p.HasPrevious() != c.prv)) {
			t.Errorf("%+v of %d: %+v, %v", c.pr, c.total, p, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidPage) {
			t.Errorf("error %v", err)
		}
	}
}
