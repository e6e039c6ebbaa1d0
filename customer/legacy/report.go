package legacy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// ReportHeader describes the run a report belongs to.
type ReportHeader struct {
	Command     string    `json:"command"` // plan or apply
	GeneratedAt time.Time `json:"generated_at"`
	Input       string    `json:"input"`
	Format      Format    `json:"format"`
	Options     struct {
		AcceptPartialAddress bool `json:"accept_partial_address"`
		CreateMissingUsers   bool `json:"create_missing_users"`
	} `json:"options"`
}

// Report is a whole report as read back (tests, tools).
type Report struct {
	ReportHeader
	Entries []Entry `json:"entries"`
	Summary Summary `json:"summary"`
}

// ReportWriter streams a JSON report: the header, one entry at a time, and
// the summary at the end, so a report of a million records is written
// without holding them.
type ReportWriter struct {
	w   *bufio.Writer
	n   int
	err error
}

// NewReportWriter starts a report on w.
func NewReportWriter(w io.Writer, h ReportHeader) (*ReportWriter, error) {
	rw := &ReportWriter{w: bufio.NewWriterSize(w, 64<<10)}
	b, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	// The header's members, then the entries array, in one object.
	rw.write(b[:len(b)-1])
	rw.write([]byte(",\n\"entries\": [\n"))
	return rw, rw.err
}

func (rw *ReportWriter) write(b []byte) {
	if rw.err == nil {
		_, rw.err = rw.w.Write(b)
	}
}

// Entry appends one entry.
func (rw *ReportWriter) Entry(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if rw.n > 0 {
		rw.write([]byte(",\n"))
	}
	rw.n++
	rw.write(b)
	return rw.err
}

// Close ends the report with the summary and flushes it.
func (rw *ReportWriter) Close(s Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	rw.write([]byte("\n],\n\"summary\": "))
	rw.write(b)
	rw.write([]byte("}\n"))
	if rw.err == nil {
		rw.err = rw.w.Flush()
	}
	return rw.err
}

// ReadReport reads a whole report.
func ReadReport(r io.Reader) (Report, error) {
	var rep Report
	err := json.NewDecoder(r).Decode(&rep)
	return rep, err
}

// Text is the short human summary of a plan or apply run.
func (s Summary) Text(command string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d customer records", command, s.Records)
	if s.OtherModels > 0 {
		fmt.Fprintf(&b, " (%d objects of other models ignored)", s.OtherModels)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  migrate (auth user found):    %d\n", s.Migrate)
	fmt.Fprintf(&b, "  create auth user, then migrate: %d\n", s.CreateUser)
	fmt.Fprintf(&b, "  skip (see problems):          %d\n", s.Skip)
	if command == "apply" {
		fmt.Fprintf(&b, "  profiles inserted: %d, updated: %d, failed: %d, auth users created: %d\n", s.Inserted, s.Updated, s.Failed, s.UsersCreated)
	}
	if len(s.Problems) > 0 {
		b.WriteString("  records with problems:\n")
		for _, c := range slices.Sorted(maps.Keys(s.Problems)) {
			fmt.Fprintf(&b, "    %-18s %d\n", c, s.Problems[c])
		}
	}
	if len(s.Addresses) > 0 {
		b.WriteString("  addresses:")
		for _, st := range slices.Sorted(maps.Keys(s.Addresses)) {
			fmt.Fprintf(&b, " %s %d", st, s.Addresses[st])
		}
		b.WriteString("\n")
	}
	if s.Interrupted {
		fmt.Fprintf(&b, "  INTERRUPTED after %d batches (%s): run apply again to finish; nothing is written twice\n", s.Batches, s.InterruptReason)
	}
	return b.String()
}

// Text is the short human summary of a verification.
func (v Verification) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verify: %d customer records, %d to be migrated, %d skipped by the plan\n", v.Records, v.Expected, v.Skipped)
	fmt.Fprintf(&b, "  profiles found for them:       %d of %d\n", v.Found, v.Expected)
	fmt.Fprintf(&b, "  missing profiles:              %d\n", v.Missing)
	fmt.Fprintf(&b, "  profiles with other content:   %d\n", v.Mismatched)
	fmt.Fprintf(&b, "  profiles without an auth user: %d (of %d profiles in all)\n", v.OrphanUsers, v.TotalProfiles)
	fmt.Fprintf(&b, "  users with several profiles:   %d\n", v.SharedUsers)
	if v.OK() {
		b.WriteString("  OK\n")
	} else {
		b.WriteString("  PROBLEMS FOUND\n")
	}
	return b.String()
}
