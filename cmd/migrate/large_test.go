package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/customer-platform/customer/legacy"
)

// TestMigrationLarge is the manual run of a large migration that
// docs/migration.md records: MIGRATE_LARGE=<records> runs plan, apply
// (with --create-missing-users) and verify over that many generated legacy
// records against the real auth and customer services on the embedded
// database, and logs each phase's wall time and rate. Skipped without the
// variable (it takes minutes):
//
//	MIGRATE_LARGE=50000 go test -count=1 -timeout 2h -run TestMigrationLarge -v ./cmd/migrate/
func TestMigrationLarge(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MIGRATE_LARGE"))
	if n <= 0 {
		t.Skip("MIGRATE_LARGE=<records> runs the large migration (docs/migration.md)")
	}
	sys := startSystem(t)
	sys.batch = 500 // MIGRATE_BATCH_SIZE's default
	recs := generate(n)
	var emails []string
	seen := map[string]bool{}
	for i, r := range recs {
		if i%9 == 4 || seen[r.email] || !strings.Contains(r.email, "@") {
			continue
		}
		seen[r.email] = true
		emails = append(emails, r.email)
	}
	begin := time.Now()
	sys.seedUsers(t, emails)
	t.Logf("seeded %d auth users in %.1fs", len(emails), time.Since(begin).Seconds())
	dir := t.TempDir()
	input := filepath.Join(dir, "customers.json")
	writeDumpdata(t, input, recs)

	var phases []string
	total := time.Duration(0)
	step := func(name string, want int, args ...string) {
		t.Helper()
		start := time.Now()
		code, out, errOut := sys.cli(t, env{}, args...)
		d := time.Since(start)
		total += d
		if code != want {
			t.Fatalf("%s: exit %d, want %d\n%s\n%s", name, code, want, out, errOut)
		}
		line := fmt.Sprintf("%s %.1fs (%.0f records/s)", name, d.Seconds(), float64(n)/d.Seconds())
		t.Log(line)
		phases = append(phases, line)
	}
	step("plan", exitOK, "plan", "--input", input, "--report", filepath.Join(dir, "plan.json"), "--create-missing-users")
	step("apply", exitOK, "apply", "--input", input, "--report", filepath.Join(dir, "apply.json"), "--create-missing-users")
	step("verify", exitOK, "verify", "--input", input)

	applied := readReport(t, filepath.Join(dir, "apply.json"))
	s := applied.Summary
	if s.Records != n || s.Failed != 0 || s.Inserted == 0 || s.Inserted+s.Updated != s.Migrate+s.CreateUser {
		t.Errorf("apply summary %+v", s)
	}
	if s.Problems[legacy.ProblemDuplicateUser] == 0 {
		t.Errorf("the generated duplicates were not found: %+v", s)
	}
	t.Logf("MIGRATE_LARGE=%d: %s; plan+apply+verify %.1fs", n, strings.Join(phases, ", "), total.Seconds())
}
