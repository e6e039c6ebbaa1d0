package legacy

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func readAll(t *testing.T, in string) (*Reader, []Record, error) {
	t.Helper()
	r, err := NewReader(strings.NewReader(in))
	if err != nil {
		return nil, nil, err
	}
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r, recs, nil
		}
		if err != nil {
			return r, recs, err
		}
		recs = append(recs, rec)
	}
}

func TestReadDumpdata(t *testing.T) {
	t.Parallel()
	in := "\xef\xbb\xbf  [\n" +
		`{"model": "customers.customer", "pk": 7, "fields": {"user_id": 42, "first_name": " Ada ", "last_name": "Lovelace",
		  "email": "Ada@Example.com", "phone": "555-0100", "address": "1 Main St,\nPortland, OR 97201",
		  "company_name": "Engines", "emergency_contact_name": null, "is_verified": true,
		  "customer_since": "2019-03-04T12:34:56.789Z", "notification_preferences": {"email": false}}},` +
		`{"model": "auth.user", "pk": 42, "fields": {"username": "ada"}},` +
		`{"model": "customers.customer", "pk": "8", "fields": {"user": 43, "email": "b@example.com", "address": "x",
		  "is_verified": "maybe", "customer_since": "last year", "company_name": {"a": 1}, "notification_preferences": [1]}},` +
		`{"model": "customers.customer", "pk": 9, "fields": {"email": "c@example.com", "customer_since": "2020-01-02"}}` +
		"]\n"
	r, recs, err := readAll(t, in)
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != FormatDumpdata || r.Skipped() != 1 || len(recs) != 3 {
		t.Fatalf("format %s, skipped %d, records %d", r.Format(), r.Skipped(), len(recs))
	}
	a := recs[0]
	if a.Seq != 1 || a.PK != "7" || a.LegacyUserID != "42" || a.FirstName != "Ada" || a.Email != "Ada@Example.com" ||
		a.Address != "1 Main St,\nPortland, OR 97201" || !a.IsVerified || a.CompanyName != "Engines" ||
		!a.CustomerSince.Equal(time.Date(2019, 3, 4, 12, 34, 56, 789e6, time.UTC)) ||
		a.NotificationPreferences["email"] || len(a.Invalid) != 0 {
		t.Errorf("first record: %+v", a)
	}
	b := recs[1]
	if b.Seq != 2 || b.PK != "8" || b.LegacyUserID != "43" {
		t.Errorf("second record: %+v", b)
	}
	var fields []string
	for _, fe := range b.Invalid {
		fields = append(fields, fe.Field)
	}
	if got := strings.Join(fields, ","); got != "company_name,is_verified,customer_since,notification_preferences" {
		t.Errorf("invalid fields = %s (%v)", got, b.Invalid)
	}
	if c := recs[2]; !c.CustomerSince.Equal(time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC)) || c.IsVerified {
		t.Errorf("third record: %+v", c)
	}
}

func TestReadCSV(t *testing.T) {
	t.Parallel()
	in := "id,user_id,first_name,last_name,Email,phone,address,company_name,is_verified,customer_since,extra\r\n" +
		"1,10,Ada,Lovelace,ada@example.com,555-0100,\"1 Main St\nPortland, OR 97201\",,True,2019-03-04 12:34:56+00:00,x\r\n" +
		"\r\n" +
		"2,11,Bob,B,bob@example.com,,\"2 Elm St, Salem, OR 97301\",Acme,0,2020-05-06,y\r\n" +
		"3,x,Cy,C,cy@example.com,,addr,,perhaps,2020-13-45\r\n"
	r, recs, err := readAll(t, in)
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != FormatCSV || len(recs) != 3 {
		t.Fatalf("format %s, %d records", r.Format(), len(recs))
	}
	if a := recs[0]; a.PK != "1" || a.Line != 2 || a.Address != "1 Main St\nPortland, OR 97201" || !a.IsVerified ||
		!a.CustomerSince.Equal(time.Date(2019, 3, 4, 12, 34, 56, 0, time.UTC)) || len(a.Invalid) != 0 {
		t.Errorf("first: %+v", a)
	}
	if b := recs[1]; b.PK != "2" || b.Line != 5 || b.IsVerified || b.CompanyName != "Acme" || b.Seq != 2 {
		t.Errorf("second: %+v", b)
	}
	var fields []string
	for _, fe := range recs[2].Invalid {
		fields = append(fields, fe.Field)
	}
	if got := strings.Join(fields, ","); got != "row,user_id,is_verified,customer_since" {
		t.Errorf("invalid fields of the third = %s", got)
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"empty":          "  \n",
		"object":         `{"model": "customers.customer"}`,
		"csv no columns": "id,name\n1,x\n",
		"csv dup column": "email,address,email\n",
		"truncated json": `[{"model": "customers.customer", "pk": 1, "fields": {"email": "a@b.c"}}, {"model": `,
		"trailing data":  `[] []`,
		"not objects":    `[1, 2]`,
		"bad csv quote":  "email,address\na@b.c,\"unterminated\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, _, err := readAll(t, in)
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("want ErrFormat, got %v", err)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	want := time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC)
	for _, s := range []string{"2021-06-07T08:09:10Z", "2021-06-07T10:09:10+02:00", "2021-06-07T08:09:10", "2021-06-07 08:09:10", "2021-06-07 08:09:10+00:00"} {
		got, err := ParseTime(s)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseTime("07/06/2021"); err == nil {
		t.Error("a US date was accepted")
	}
}
