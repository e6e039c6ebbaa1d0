package legacy

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Format is the kind of a legacy export.
type Format string

// Formats, detected from the content.
const (
	FormatDumpdata Format = "dumpdata-json"
	FormatCSV      Format = "csv"
)

// ErrFormat is wrapped by every error about an input that is not a readable
// export (as opposed to a record with a bad field, which is reported in
// Record.Invalid).
var ErrFormat = errors.New("unreadable legacy export")

// Reader streams the customer records of an export: it holds one record at a
// time, so a file of a million records does not need a million records of
// memory.
type Reader struct {
	format  Format
	next    func() (Record, error)
	seq     int
	skipped int
}

// NewReader detects the format of r from its first bytes (a JSON array is a
// dumpdata export, anything else is read as CSV with a header row) and
// returns a Reader over it.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// Skip a UTF-8 byte order mark and leading white space.
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	var first byte
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: the input is empty", ErrFormat)
		}
		if err != nil {
			return nil, fmt.Errorf("read input: %w", err)
		}
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			continue
		}
		first = c
		_ = br.UnreadByte()
		break
	}
	lr := &Reader{}
	switch first {
	case '[':
		lr.format = FormatDumpdata
		next, err := dumpdataRecords(br, &lr.skipped)
		if err != nil {
			return nil, err
		}
		lr.next = next
	case '{':
		return nil, fmt.Errorf("%w: a JSON object; want a dumpdata export (a JSON array of {\"model\", \"pk\", \"fields\"})", ErrFormat)
	default:
		lr.format = FormatCSV
		next, err := csvRecords(br)
		if err != nil {
			return nil, err
		}
		lr.next = next
	}
	return lr, nil
}

// Format is the detected format.
func (r *Reader) Format() Format { return r.format }

// Skipped counts the dumpdata objects of other models passed over so far.
func (r *Reader) Skipped() int { return r.skipped }

// Next returns the next customer record, or io.EOF after the last one. Any
// other error means the input is malformed from that point on.
func (r *Reader) Next() (Record, error) {
	rec, err := r.next()
	if err != nil {
		return Record{}, err
	}
	r.seq++
	rec.Seq = r.seq
	return rec, nil
}

// dumpdataRecords reads `[{"model", "pk", "fields"}, ...]` one object at a time.
func dumpdataRecords(r io.Reader, skipped *int) (func() (Record, error), error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%w: want a JSON array", ErrFormat)
	}
	done := false
	n := 0
	return func() (Record, error) {
		for {
			if done {
				return Record{}, io.EOF
			}
			if !dec.More() {
				if _, err := dec.Token(); err != nil { // the closing ]
					return Record{}, fmt.Errorf("%w: after object %d: %v", ErrFormat, n, err)
				}
				if _, err := dec.Token(); err != io.EOF {
					return Record{}, fmt.Errorf("%w: unexpected data after the JSON array", ErrFormat)
				}
				done = true
				return Record{}, io.EOF
			}
			n++
			var obj struct {
				Model  string                     `json:"model"`
				PK     json.RawMessage            `json:"pk"`
				Fields map[string]json.RawMessage `json:"fields"`
			}
			if err := dec.Decode(&obj); err != nil {
				return Record{}, fmt.Errorf("%w: object %d: %v", ErrFormat, n, err)
			}
			if !strings.EqualFold(obj.Model, Model) {
				*skipped++
				continue
			}
			rec := Record{PK: rawText(obj.PK)}
			fields := make(map[string]value, len(obj.Fields))
			for k, v := range obj.Fields {
				fields[k] = jsonValue(v)
			}
			fill(&rec, fields)
			return rec, nil
		}
	}, nil
}

// csvRecords reads a CSV export whose first row names the columns.
func csvRecords(r io.Reader) (func() (Record, error), error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%w: the CSV has no header row", ErrFormat)
		}
		return nil, fmt.Errorf("%w: CSV header: %v", ErrFormat, err)
	}
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if seen[h] && h != "" {
			return nil, fmt.Errorf("%w: CSV column %q appears twice", ErrFormat, h)
		}
		seen[h] = true
		cols[i] = h
	}
	if !seen["email"] || !seen["address"] {
		return nil, fmt.Errorf("%w: the CSV header must name at least the columns email and address (got %s)", ErrFormat, strings.Join(cols, ", "))
	}
	return func() (Record, error) {
		for {
			row, err := cr.Read()
			if err == io.EOF {
				return Record{}, io.EOF
			}
			if err != nil {
				return Record{}, fmt.Errorf("%w: CSV: %v", ErrFormat, err)
			}
			line, _ := cr.FieldPos(0)
			var invalid []FieldError
			if len(row) == 1 && strings.TrimSpace(row[0]) == "" {
				continue // a blank line
			}
			if len(row) != len(cols) {
				invalid = append(invalid, FieldError{Field: "row", Message: fmt.Sprintf("has %d values, the header names %d columns", len(row), len(cols))})
			}
			fields := make(map[string]value, len(cols))
			for i, c := range cols {
				if i < len(row) && c != "" {
					fields[c] = value{text: row[i], kind: kindCSV}
				}
			}
			rec := Record{Line: line}
			if v, ok := fields["pk"]; ok {
				rec.PK = strings.TrimSpace(v.text)
			} else if v, ok := fields["id"]; ok {
				rec.PK = strings.TrimSpace(v.text)
			}
			fill(&rec, fields)
			rec.Invalid = append(invalid, rec.Invalid...)
			return rec, nil
		}
	}, nil
}

type valueKind int

const (
	kindNull valueKind = iota
	kindString
	kindNumber
	kindBool
	kindObject
	kindOther
	kindCSV // text of a CSV cell, to be interpreted by the field
)

// value is one field's raw value.
type value struct {
	kind valueKind
	text string          // strings, numbers, CSV cells
	b    bool            // booleans
	raw  json.RawMessage // objects and other JSON
}

func jsonValue(raw json.RawMessage) value {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return value{kind: kindNull}
	}
	switch t[0] {
	case '"':
		var s string
		if json.Unmarshal(t, &s) == nil {
			return value{kind: kindString, text: s}
		}
	case 't', 'f':
		var b bool
		if json.Unmarshal(t, &b) == nil {
			return value{kind: kindBool, b: b}
		}
	case '{':
		return value{kind: kindObject, raw: t}
	default:
		if (t[0] >= '0' && t[0] <= '9') || t[0] == '-' {
			return value{kind: kindNumber, text: string(t)}
		}
	}
	return value{kind: kindOther, raw: t}
}

func rawText(raw json.RawMessage) string {
	v := jsonValue(raw)
	switch v.kind {
	case kindString, kindNumber:
		return strings.TrimSpace(v.text)
	}
	return ""
}

// fill sets the record's fields from the export's values by legacy name.
func fill(rec *Record, f map[string]value) {
	str := func(dst *string, names ...string) {
		for _, n := range names {
			v, ok := f[n]
			if !ok {
				continue
			}
			switch v.kind {
			case kindNull:
			case kindString, kindCSV:
				*dst = strings.TrimSpace(v.text)
			case kindNumber:
				*dst = v.text
			default:
				rec.Invalid = append(rec.Invalid, FieldError{Field: n, Message: "must be a string"})
			}
			return
		}
	}
	str(&rec.LegacyUserID, "user_id", "user")
	if rec.LegacyUserID != "" {
		if _, err := strconv.ParseInt(rec.LegacyUserID, 10, 64); err != nil {
			rec.Invalid = append(rec.Invalid, FieldError{Field: "user_id", Message: fmt.Sprintf("%q is not an integer", rec.LegacyUserID)})
		}
	}
	str(&rec.FirstName, "first_name")
	str(&rec.LastName, "last_name")
	str(&rec.Email, "email")
	str(&rec.Phone, "phone", "phone_number")
	// The address keeps its line breaks: they separate its parts.
	if v, ok := f["address"]; ok && (v.kind == kindString || v.kind == kindCSV) {
		rec.Address = strings.TrimSpace(v.text)
	} else {
		str(&rec.Address, "address")
	}
	str(&rec.CompanyName, "company_name")
	str(&rec.BusinessType, "business_type")
	str(&rec.TaxID, "tax_id")
	str(&rec.EmergencyContactName, "emergency_contact_name")
	str(&rec.EmergencyContactPhone, "emergency_contact_phone")
	str(&rec.EmergencyContactRelationship, "emergency_contact_relationship")
	str(&rec.PreferredContactMethod, "preferred_contact_method")

	if v, ok := f["is_verified"]; ok {
		b, err := boolValue(v)
		if err != nil {
			rec.Invalid = append(rec.Invalid, FieldError{Field: "is_verified", Message: err.Error()})
		}
		rec.IsVerified = b
	}
	if v, ok := f["customer_since"]; ok {
		t, err := timeValue(v)
		if err != nil {
			rec.Invalid = append(rec.Invalid, FieldError{Field: "customer_since", Message: err.Error()})
		}
		rec.CustomerSince = t
	}
	if v, ok := f["notification_preferences"]; ok {
		p, err := prefsValue(v)
		if err != nil {
			rec.Invalid = append(rec.Invalid, FieldError{Field: "notification_preferences", Message: err.Error()})
		}
		rec.NotificationPreferences = p
	}
}

func boolValue(v value) (bool, error) {
	switch v.kind {
	case kindNull:
		return false, nil
	case kindBool:
		return v.b, nil
	case kindString, kindCSV, kindNumber:
		switch strings.ToLower(strings.TrimSpace(v.text)) {
		case "":
			return false, nil
		case "true", "t", "1", "yes", "y":
			return true, nil
		case "false", "f", "0", "no", "n":
			return false, nil
		}
		return false, fmt.Errorf("%q is not a boolean", v.text)
	}
	return false, errors.New("must be a boolean")
}

// timeLayouts are the forms Django's serializers and CSV exports write
// timestamps and dates in. A time without a zone is taken as UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04Z07:00",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTime reads a legacy timestamp or date (UTC when it has no zone).
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date or an RFC 3339 timestamp", s)
}

func timeValue(v value) (time.Time, error) {
	switch v.kind {
	case kindNull:
		return time.Time{}, nil
	case kindString, kindCSV:
		if strings.TrimSpace(v.text) == "" {
			return time.Time{}, nil
		}
		return ParseTime(v.text)
	}
	return time.Time{}, errors.New("must be a date or timestamp string")
}

func prefsValue(v value) (map[string]bool, error) {
	raw := v.raw
	switch v.kind {
	case kindNull:
		return nil, nil
	case kindObject:
	case kindString, kindCSV:
		if strings.TrimSpace(v.text) == "" {
			return nil, nil
		}
		raw = json.RawMessage(v.text)
	default:
		return nil, errors.New("must be a JSON object of booleans")
	}
	var p map[string]bool
	if err := json.Unmarshal(raw, &p); err != nil || p == nil {
		return nil, errors.New("must be a JSON object of booleans")
	}
	return p, nil
}
