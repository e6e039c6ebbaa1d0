package auth

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestQuickRatioMatchesDifflib(t *testing.T) {
	t.Parallel()
	// Expected values computed with Python's difflib.SequenceMatcher(a=a, b=b).quick_ratio().
	cases := []struct {
		a, b string
		want float64
	}{
		{"quintessential1", "quintessential@example.com", 0.6829268292682927},
		{"quintessential1", "quintessential", 0.9655172413793104},
		{"maximilian!", "maximilian", 0.9523809523809523},
		{"abc", "", 0},
		{"", "", 1},
		{"hello", "world", 0.4},
		{"ab", "ba", 1},
		{"aabbcc", "abc", 0.6666666666666666},
		{"résumé", "resume", 0.6666666666666666},
	}
	for _, c := range cases {
		if got := QuickRatio([]rune(c.a), []rune(c.b)); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("QuickRatio(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestSplitNonWordMatchesPython(t *testing.T) {
	t.Parallel()
	// Expected values from Python's re.split(r'\W+', s).
	cases := map[string][]string{
		"quintessential@example.com": {"quintessential", "example", "com"},
		"@a..b@":                     {"", "a", "b", ""},
		"jean-luc picard":            {"jean", "luc", "picard"},
		"under_score":                {"under_score"},
		"":                           {""},
	}
	for in, want := range cases {
		if got := splitNonWord(in); !slices.Equal(got, want) {
			t.Errorf("splitNonWord(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPasswordRulesMatchDjango(t *testing.T) {
	t.Parallel()
	rules, err := NewPasswordRules()
	if err != nil {
		t.Fatal(err)
	}
	if len(rules.common) < 19000 {
		t.Fatalf("common password list has %d entries", len(rules.common))
	}
	// Expected messages produced by Django 3.2.25's validate_password with the
	// default AUTH_PASSWORD_VALIDATORS for a user with these attributes.
	cases := []struct {
		pw, first, last, email string
		want                   []string
	}{
		{"Quintessential1", "Ann", "Bee", "quintessential@example.com", []string{"The password is too similar to the email."}},
		{"maximilian!", "Maximilian", "Bee", "v8@example.com", []string{"The password is too similar to the first name."}},
		{"Tr1cky-Wombat-Lantern", "Alice", "Smith", "alice.smith@example.com", nil},
		{"alicesmith", "Alice", "Smith", "alice.smith@example.com", nil},
		{"12345678", "A", "B", "a@b.com", []string{"This password is too common.", "This password is entirely numeric."}},
		{"short", "A", "B", "a@b.com", []string{"This password is too short. It must contain at least 8 characters."}},
		{"9087163452", "A", "B", "a@b.com", []string{"This password is entirely numeric."}},
		{"PASSWORD ", "", "", "x@y.com", []string{"This password is too common."}},
		{"jeanluc2024", "Jean-Luc", "Picard", "jl@enterprise.org", []string{"The password is too similar to the first name."}},
		{"enterprise.org", "Jean", "Picard", "jl@enterprise.org", []string{"The password is too similar to the email."}},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "A", "B", "b@c.de", nil},
		{"xy@example.co", "X", "Y", "xy@example.com", []string{"The password is too similar to the email."}},
	}
	for _, c := range cases {
		got := rules.Validate(c.pw, UserAttributes{FirstName: c.first, LastName: c.last, Email: c.email})
		if !slices.Equal(got, c.want) {
			t.Errorf("Validate(%q) = %q, want %q", c.pw, got, c.want)
		}
	}
	if got := rules.Validate(strings.Repeat("x", MaxPasswordBytes+1), UserAttributes{}); len(got) != 1 || !strings.Contains(got[0], "4096") {
		t.Errorf("over-long password: %q", got)
	}
	if got := rules.Validate(strings.Repeat("Zq8!", MaxPasswordBytes/4), UserAttributes{Email: "a@b.com"}); got != nil {
		t.Errorf("4096-byte password: %q", got)
	}
}

func TestValidEmail(t *testing.T) {
	t.Parallel()
	for _, e := range []string{"a@example.com", "first.last+tag@sub.example.co.uk", "x@localhost", "o'brien@example.ie"} {
		if !ValidEmail(e) {
			t.Errorf("%q refused", e)
		}
	}
	for _, e := range []string{"", "a", "a@", "@example.com", "a@@example.com", "a@example", "a b@example.com", "a@example.c", "a@-example.com", "a..b@example.com", "a@example.com-"} {
		if ValidEmail(e) {
			t.Errorf("%q accepted", e)
		}
	}
}

func TestParseClients(t *testing.T) {
	t.Parallel()
	c, err := ParseClients(" bff:s3cret , migrate:a:b ", "")
	if err != nil || c.Len() != 2 {
		t.Fatalf("ParseClients: %v %v", c, err)
	}
	if !c.Verify("bff", "s3cret") || !c.Verify("migrate", "a:b") {
		t.Error("good credentials refused")
	}
	if c.Verify("bff", "s3cret ") || c.Verify("bff", "") || c.Verify("nobody", "s3cret") || c.Verify("", "") {
		t.Error("bad credentials accepted")
	}
	if s := c.Scopes("bff"); len(s) != 0 || !slices.Equal(c.Unscoped(), []string{"bff", "migrate"}) {
		t.Errorf("scopes %q, unscoped %q", s, c.Unscoped())
	}
	c, err = ParseClients("bff:s3cret,customer:x,bare:y", " bff = users:read users:delete:customers users:read , customer=users:read")
	if err != nil || !slices.Equal(c.Scopes("bff"), []string{"users:read", "users:delete:customers"}) ||
		!slices.Equal(c.Scopes("customer"), []string{"users:read"}) || c.Scopes("nobody") != nil || !slices.Equal(c.Unscoped(), []string{"bare"}) {
		t.Fatalf("scopes: %v", err)
	}
	if !c.Verify("bff", "s3cret") {
		t.Error("the secret before the scopes refused")
	}
	c.GrantUnscoped(KnownScopes())
	if !slices.Equal(c.Scopes("bare"), KnownScopes()) || len(c.Unscoped()) != 0 || len(c.Scopes("customer")) != 1 {
		t.Errorf("GrantUnscoped: %q %q", c.Scopes("bare"), c.Scopes("customer"))
	}
	for _, bad := range []string{"bff", "bff:", ":x", "a:1,a:2"} {
		if _, err := ParseClients(bad, ""); err == nil {
			t.Errorf("ParseClients(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"bff=users:raed", "bff", "=users:read", "other=users:raed", "bff=users:read,bff=users:create"} {
		if _, err := ParseClients("bff:s", bad); err == nil {
			t.Errorf("scopes %q accepted", bad)
		}
	}
	if c, err := ParseClients("", ""); err != nil || c.Len() != 0 || c.Verify("", "") {
		t.Errorf("empty clients: %v %v", c, err)
	}
}
