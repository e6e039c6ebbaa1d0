package contract

import (
	"errors"
	"strings"
	"testing"
)

func TestNewIDIsAValidVersion4UUID(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !ValidID(id) || id[14] != '4' || !(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') {
			t.Fatalf("NewID() = %q: not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"0b3c6f1e-8d2a-4c3b-9e7f-1a2b3c4d5e6f": true,
		"0B3C6F1E-8D2A-4C3B-9E7F-1A2B3C4D5E6F": true,
		"0b3c6f1e8d2a4c3b9e7f1a2b3c4d5e6f":     false,
		"0b3c6f1e-8d2a-4c3b-9e7f-1a2b3c4d5e6":  false,
		"0b3c6f1e-8d2a-4c3b-9e7f-1a2b3c4d5e6g": false,
		"0b3c6f1e+8d2a-4c3b-9e7f-1a2b3c4d5e6f": false,
		"":                                     false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestRoles(t *testing.T) {
	t.Parallel()
	for r, want := range map[string][2]bool{
		RoleCustomer: {true, false}, RoleEmployee: {true, true}, RoleAdmin: {true, true},
		RoleService: {false, false}, "": {false, false}, "Admin": {false, false},
	} {
		if IsUserRole(r) != want[0] || IsStaff(r) != want[1] {
			t.Errorf("%q: user role %v, staff %v; want %v", r, IsUserRole(r), IsStaff(r), want)
		}
	}
}

func TestValidationError(t *testing.T) {
	t.Parallel()
	var err error = &ValidationError{Fields: map[string][]string{"email": {"Enter a valid email address."}, "city": {"This field is required.", "x"}}}
	if got, want := err.Error(), "invalid input: city: This field is required. x; email: Enter a valid email address."; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	ve, ok := errors.AsType[*ValidationError](FieldError("email", "bad"))
	if !ok || len(ve.Fields) != 1 || ve.Fields["email"][0] != "bad" {
		t.Errorf("FieldError: %+v", ve)
	}
	if NormalizeEmail("  Ada@Example.COM ") != "ada@example.com" {
		t.Error("NormalizeEmail does not trim and lower-case")
	}
}

func TestEchoedNameIsBounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", MaxEchoedName+10)
	for in, want := range map[string]string{"": "", "city": "city", long[:MaxEchoedName]: long[:MaxEchoedName], long: long[:MaxEchoedName] + "..."} {
		if got := EchoedName(in); got != want {
			t.Errorf("EchoedName(%d bytes) = %d bytes %q..., want %d bytes", len(in), len(got), got[:min(len(got), 8)], len(want))
		}
	}
}
