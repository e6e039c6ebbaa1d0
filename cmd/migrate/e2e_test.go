package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/acme/customer-platform/auth"
	authmongo "github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/customer/legacy"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

func TestMain(m *testing.M) { os.Exit(systest.Main(m)) }

// system is a running auth and customer service on fresh databases.
type system struct {
	authURL, customerURL string
	mongoURI, customerDB string
	authDB               string
	batch                int
	auth                 *authclient.Client
	tokens               *authclient.ServiceTokens
}

func startSystem(t *testing.T) *system {
	t.Helper()
	sys := systest.Start(t, systest.Options{Services: []string{"auth", "customer"},
		ServiceEnv: map[string]map[string]string{"auth": {"SERVICE_TOKEN_TTL": "10m"}}})
	s := &system{authURL: sys.URL("auth"), customerURL: sys.URL("customer"),
		mongoURI: sys.MongoURI, customerDB: sys.DBName("customer"), authDB: sys.DBName("auth")}
	s.auth = authclient.New(authclient.Options{BaseURL: s.authURL, Timeout: 10 * time.Second})
	s.tokens = authclient.NewServiceTokens(s.auth, systest.MigrateClientID, systest.MigrateClientSecret)
	return s
}

func (s *system) env() map[string]string {
	return map[string]string{
		"MONGODB_URI": s.mongoURI, "CUSTOMER_DB": s.customerDB, "AUTH_URL": s.authURL,
		"MIGRATE_CLIENT_ID": systest.MigrateClientID, "MIGRATE_CLIENT_SECRET": systest.MigrateClientSecret,
		"MIGRATE_BATCH_SIZE": strconv.Itoa(s.batch), "MIGRATE_LOOKUPS": "8", "LOG_LEVEL": "warn",
	}
}

func (s *system) token(t *testing.T) string {
	t.Helper()
	tok, err := s.tokens.Token(context.Background())
	testenv.Must(t, err, "service token")
	return tok
}

// seedUsers puts users into the auth service's store, as users of the
// legacy service who signed up again after the split, in bulk (the store's
// ImportUsers, a thousand at a time); it returns their ids by email.
func (s *system) seedUsers(t *testing.T, emails []string) map[string]string {
	t.Helper()
	client, _ := testenv.Mongo(t)
	store := authmongo.New(client.Database(s.authDB))
	ids := make(map[string]string, len(emails))
	joined := time.Now().UTC().Truncate(time.Millisecond)
	for start := 0; start < len(emails); start += 1000 {
		chunk := emails[start:min(start+1000, len(emails))]
		us := make([]auth.User, len(chunk))
		for i, e := range chunk {
			us[i] = auth.User{ID: contract.NewID(), Email: contract.NormalizeEmail(e), FirstName: "F", LastName: "L",
				Role: "customer", DateJoined: joined, PasswordHash: auth.UnusablePasswordPrefix + "seeded"}
		}
		res, err := store.ImportUsers(context.Background(), us)
		testenv.Must(t, err, "seed users")
		for i, r := range res {
			testenv.Must(t, r.Err, "seed user %s", us[i].Email)
			ids[us[i].Email] = us[i].ID
		}
	}
	return ids
}

// authUsers reads every auth user from the auth service's store at once:
// id, email, names and whether the password is usable.
func (s *system) authUsers(t *testing.T) map[string]authmongoUser {
	t.Helper()
	client, _ := testenv.Mongo(t)
	cur, err := client.Database(s.authDB).Collection(authmongo.UsersCollection).Find(context.Background(), bson.D{})
	testenv.Must(t, err, "read auth users")
	var us []authmongoUser
	testenv.Must(t, cur.All(context.Background(), &us), "decode auth users")
	out := make(map[string]authmongoUser, len(us))
	for _, u := range us {
		out[u.Email] = u
	}
	return out
}

// authmongoUser is the part of the auth service's user document the test reads.
type authmongoUser struct {
	ID          string `bson:"_id"`
	Email       string `bson:"email"`
	FirstName   string `bson:"first_name"`
	PhoneNumber string `bson:"phone_number"`
	Password    string `bson:"password"`
}

// cli runs the command as the binary would, with the system's environment.
func (s *system) cli(t *testing.T, e env, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e.lookup = config.FromMap(s.env())
	e.stdout, e.stderr = &out, &errOut
	ctx := context.Background()
	code := run(ctx, args, e)
	return code, out.String(), errOut.String()
}

// legacyRecord is one generated legacy customer and what it should become.
type legacyRecord struct {
	fields map[string]any
	email  string
	// want is the intended address when the form is one the parser must
	// parse with confidence.
	want *customer.Address
}

var (
	streets = []string{"Main St", "Oak Avenue", "Pine Rd", "Elm Street", "Maple Dr", "Cedar Ln", "Lakeview Blvd", "Sunset Way", "Harbor Ct"}
	places  = [][3]string{
		{"Portland", "OR", "Oregon"}, {"Seattle", "WA", "Washington"}, {"Austin", "TX", "Texas"},
		{"New York", "NY", "New York"}, {"Kansas City", "MO", "Missouri"}, {"Salt Lake City", "UT", "Utah"},
		{"Boston", "MA", "Massachusetts"}, {"San Diego", "CA", "California"}, {"Charleston", "WV", "West Virginia"},
	}
	foreign = []string{
		"10 Downing St, London SW1A 2AA, United Kingdom", "Unter den Linden 77, 10117 Berlin, Germany",
		"290 Bremner Blvd, Toronto, ON M5V 3L9", "5 Rue de Rivoli, 75001 Paris, France",
	}
	businessTypes = []string{"", "", "individual", "llc", "corporation", "nonprofit"}
)

// generate makes n legacy records with a fixed seed: messy addresses, some
// emails without an auth user, duplicates of earlier users, invalid fields.
func generate(n int) []legacyRecord {
	rng := rand.New(rand.NewPCG(8, 2026))
	recs := make([]legacyRecord, n)
	for i := range n {
		email := fmt.Sprintf("customer%04d@example.com", i)
		if i%29 == 28 { // the same user as an earlier record, typed differently
			email = strings.ToUpper(fmt.Sprintf("customer%04d@Example.com", i-7))
		}
		num := 1 + rng.IntN(9999)
		street := fmt.Sprintf("%d %s", num, streets[rng.IntN(len(streets))])
		pl := places[rng.IntN(len(places))]
		zip := fmt.Sprintf("%05d", 1000+rng.IntN(98000))
		want := &customer.Address{StreetAddress: street, City: pl[0], State: pl[1], PostalCode: zip, Country: "USA"}
		var addr string
		switch form := rng.IntN(16); form {
		case 0, 1:
			addr = fmt.Sprintf("%s, %s, %s, %s", street, pl[0], pl[1], zip)
		case 2, 3:
			addr = fmt.Sprintf("%s, %s, %s %s", street, pl[0], pl[1], zip)
		case 4:
			apt := fmt.Sprintf("Apt %d", 1+rng.IntN(40))
			want.StreetAddress = street + ", " + apt
			addr = fmt.Sprintf("%s, %s, %s, %s %s", street, apt, pl[0], pl[1], zip)
		case 5:
			addr = fmt.Sprintf("%s, %s, %s %s", street, pl[0], pl[2], zip)
		case 6:
			want.PostalCode = zip + "-" + fmt.Sprintf("%04d", rng.IntN(10000))
			addr = fmt.Sprintf("%s, %s, %s %s", street, pl[0], pl[1], want.PostalCode)
		case 7:
			addr = fmt.Sprintf("%s, %s, %s %s, %s", street, pl[0], pl[1], zip, []string{"USA", "United States", "US"}[rng.IntN(3)])
		case 8:
			addr = strings.ToLower(fmt.Sprintf("%s, %s, %s %s", street, pl[0], pl[1], zip))
			want.StreetAddress, want.City = strings.ToLower(street), strings.ToLower(pl[0])
		case 9:
			addr = fmt.Sprintf("%s\r\n%s, %s %s", street, pl[0], pl[1], zip)
		case 10:
			addr = fmt.Sprintf("  %s ,  %s ,%s   %s ", strings.ReplaceAll(street, " ", "  "), pl[0], pl[1], zip)
		case 11: // no ZIP: partial
			addr, want = fmt.Sprintf("%s, %s, %s", street, pl[0], pl[1]), nil
		case 12: // no comma between street and city: partial
			addr, want = fmt.Sprintf("%s %s, %s %s", street, pl[0], pl[1], zip), nil
		case 13:
			addr, want = foreign[rng.IntN(len(foreign))], nil
		case 14:
			if rng.IntN(3) == 0 {
				addr, want = "", nil
			} else {
				addr = fmt.Sprintf("%s, %s, %s %s", street, pl[0], pl[1], zip)
			}
		default:
			addr = fmt.Sprintf("%s,\n%s,\n%s\n%s", street, pl[0], pl[2], zip)
		}
		f := map[string]any{
			"user_id": 1000 + i, "first_name": fmt.Sprintf("First%d", i), "last_name": "Legacy",
			"email": email, "phone": fmt.Sprintf("555-01%02d", i%100), "address": addr,
			"company_name": "", "business_type": businessTypes[rng.IntN(len(businessTypes))],
			"tax_id": "", "emergency_contact_name": fmt.Sprintf("Contact %d", i),
			"emergency_contact_phone":        fmt.Sprintf("(503) 555-%04d", rng.IntN(10000)),
			"emergency_contact_relationship": []string{"spouse", "parent", "friend", ""}[rng.IntN(4)],
			"is_verified":                    rng.IntN(3) == 0,
			"customer_since": time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).
				Add(time.Duration(i)*24*time.Hour + time.Duration(rng.IntN(86400000))*time.Millisecond).Format("2006-01-02T15:04:05.000Z"),
		}
		if rng.IntN(4) == 0 {
			f["company_name"] = fmt.Sprintf("Company %d LLC", i)
			f["tax_id"] = fmt.Sprintf("%02d-%07d", rng.IntN(100), rng.IntN(10000000))
		}
		switch {
		case i%53 == 10:
			f["business_type"] = "empire" // not a choice
		case i%61 == 7:
			f["email"], email = "customer-at-example.com", "customer-at-example.com"
		}
		recs[i] = legacyRecord{fields: f, email: strings.ToLower(email), want: want}
	}
	return recs
}

func writeDumpdata(t *testing.T, path string, recs []legacyRecord) {
	t.Helper()
	objs := make([]map[string]any, 0, len(recs)+1)
	for i, r := range recs {
		objs = append(objs, map[string]any{"model": legacy.Model, "pk": i + 1, "fields": r.fields})
		if i == 10 {
			objs = append(objs, map[string]any{"model": "auth.user", "pk": 1, "fields": map[string]any{"username": "x"}})
		}
	}
	b, err := json.MarshalIndent(objs, "", " ")
	testenv.Must(t, err, "encode export")
	testenv.Must(t, os.WriteFile(path, b, 0o600), "write export")
}

func readReport(t *testing.T, path string) legacy.Report {
	t.Helper()
	f, err := os.Open(path)
	testenv.Must(t, err, "open report")
	defer f.Close()
	rep, err := legacy.ReadReport(f)
	testenv.Must(t, err, "read report %s", path)
	return rep
}

// TestMigrationEndToEnd runs the operator's checklist against the real auth
// and customer services: backup, plan, an apply interrupted after two
// batches, its re-run, verify; the stored profiles are exactly the plan's.
func TestMigrationEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end against the real services: not in -short")
	}
	t.Parallel()
	// Every lookup the run makes is by _id on both sides (the auth
	// service's email claims, the profiles' derived ids), so the run grows
	// linearly with the records: 3,000 in CI. MIGRATE_E2E_RECORDS=n runs it
	// with n; TestMigrationLarge is the large manual run (docs/migration.md).
	n := 3000
	if v, err := strconv.Atoi(os.Getenv("MIGRATE_E2E_RECORDS")); err == nil && v > 0 {
		n = v
	}
	start := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }
	sys := startSystem(t)
	sys.batch = max(10, n/8)
	phase("services started")
	dir := t.TempDir()
	recs := generate(n)

	// The auth users that exist already: all but every 9th record's.
	var emails []string
	seen := map[string]bool{}
	for i, r := range recs {
		if i%9 == 4 || seen[r.email] || !strings.Contains(r.email, "@") {
			continue
		}
		seen[r.email] = true
		emails = append(emails, r.email)
	}
	userIDs := sys.seedUsers(t, append(emails, "already@example.com"))
	phase(fmt.Sprintf("%d auth users seeded", len(userIDs)))

	// One profile exists before the migration, of a user not in the export.
	ctx := context.Background()
	client, db := testenv.Mongo(t)
	_ = db
	store, err := custmongo.New(ctx, client.Database(sys.customerDB))
	testenv.Must(t, err, "store")
	before := customer.Customer{
		ID: contract.NewID(), UserID: userIDs["already@example.com"],
		Address:                 customer.Address{StreetAddress: "1 First St", City: "Salem", State: "OR", PostalCode: "97301", Country: "USA"},
		PreferredContactMethod:  "sms",
		NotificationPreferences: customer.DefaultNotificationPreferences(),
		CustomerSince:           time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), CreatedAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		UpdatedAt: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	testenv.Must(t, store.Create(ctx, before), "existing profile")

	input := filepath.Join(dir, "customers.json")
	writeDumpdata(t, input, recs)

	// 1. backup
	backupFile := filepath.Join(dir, "backup.json")
	code, out, errOut := sys.cli(t, env{}, "backup", "--out", backupFile)
	if code != exitOK || !strings.Contains(out, "1 profiles") {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, _ := sys.cli(t, env{}, "backup", "--out", backupFile); code != exitFailure {
		t.Errorf("a second backup to the same file: exit %d, want it refused", code)
	}

	phase("backup")
	// 2. plan (a dry run with apply's flags); --strict fails on problems.
	planFile := filepath.Join(dir, "plan.json")
	code, out, errOut = sys.cli(t, env{progress: true}, "plan", "--input", input, "--report", planFile, "--create-missing-users", "--strict")
	if code != exitProblems || !strings.Contains(out, fmt.Sprintf("plan: %d customer records (1 objects of other models ignored)", n)) {
		t.Fatalf("plan --strict: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, fmt.Sprintf("%d/%d", n, n)) || !strings.Contains(errOut, "records/s") {
		t.Errorf("no progress bar on a terminal:\n%s", errOut)
	}
	phase("plan")
	plan := readReport(t, planFile)
	if len(plan.Entries) != n || plan.Summary.Records != n || plan.Command != "plan" || !plan.Options.CreateMissingUsers {
		t.Fatalf("plan report: %d entries, summary %+v", len(plan.Entries), plan.Summary)
	}
	if c, _ := store.Count(ctx, customer.Filter{}); c != 1 {
		t.Fatalf("plan wrote: %d profiles", c)
	}
	s := plan.Summary
	if s.Migrate == 0 || s.CreateUser == 0 || s.Skip == 0 || s.Problems[legacy.ProblemDuplicateUser] == 0 ||
		s.Problems[legacy.ProblemAddressPartial] == 0 || s.Problems[legacy.ProblemAddressForeign] == 0 ||
		s.Problems[legacy.ProblemAddressEmpty] == 0 || s.Problems[legacy.ProblemInvalidField] == 0 {
		t.Fatalf("the generated problems are not all planned: %+v", s)
	}
	t.Logf("plan: %+v", s)
	// The parser got every confidently parseable form right.
	for i, e := range plan.Entries {
		if w := recs[i].want; w != nil {
			a := e.Address
			if a.Status != legacy.AddressParsed || a.Street != w.StreetAddress || a.City != w.City || a.State != w.State || a.PostalCode != w.PostalCode || a.Country != "USA" {
				t.Errorf("record %d: %q parsed as %+v, want %+v", i+1, recs[i].fields["address"], a, *w)
			}
		}
	}

	// 3. apply, interrupted after two batches (as by Ctrl-C) ...
	applyFile := filepath.Join(dir, "apply.json")
	ictx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out1, err1 bytes.Buffer
	code = run(ictx, []string{"apply", "--input", input, "--report", applyFile, "--create-missing-users"}, env{
		lookup: config.FromMap(sys.env()), stdout: &out1, stderr: &err1,
		afterBatch: func(b int) {
			if b == 2 {
				cancel()
			}
		},
	})
	if code != exitFailure || !strings.Contains(err1.String(), "run it again") {
		t.Fatalf("interrupted apply: exit %d\n%s\n%s", code, out1.String(), err1.String())
	}
	phase("interrupted apply")
	partial := readReport(t, applyFile)
	if !partial.Summary.Interrupted || partial.Summary.Batches != 2 || len(partial.Entries) != 2*sys.batch {
		t.Fatalf("interrupted apply report: %d entries, %+v", len(partial.Entries), partial.Summary)
	}
	mid, _ := store.Count(ctx, customer.Filter{})
	if mid <= 1 || mid != 1+partial.Summary.Inserted {
		t.Fatalf("after the interruption: %d profiles, %d inserted", mid, partial.Summary.Inserted)
	}

	// ... and run again to the end.
	code, out, errOut = sys.cli(t, env{afterBatch: func(b int) { phase(fmt.Sprintf("batch %d", b)) }}, "apply", "--input", input, "--report", applyFile, "--create-missing-users")
	if code != exitOK {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	phase("apply")
	applied := readReport(t, applyFile)
	as := applied.Summary
	if as.Migrate+as.CreateUser != s.Migrate+s.CreateUser || as.Skip != s.Skip || as.Failed != 0 ||
		as.Inserted+as.Updated != s.Migrate+s.CreateUser || as.Updated != partial.Summary.Inserted {
		t.Fatalf("apply summary %+v, plan %+v, interrupted run inserted %d", as, s, partial.Summary.Inserted)
	}

	// 4. verify
	code, out, errOut = sys.cli(t, env{}, "verify", "--input", input, "--report", filepath.Join(dir, "verify.json"))
	if code != exitOK || !strings.Contains(out, "OK") {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errOut)
	}

	phase("verify")
	// The state is exactly what the plan promised, user by user.
	tok := sys.token(t)
	all, err := store.List(ctx, customer.Filter{}, 0, 10*n)
	testenv.Must(t, err, "read profiles")
	profiles := make(map[string]customer.Customer, len(all))
	for _, p := range all {
		profiles[p.UserID] = p
	}
	users := sys.authUsers(t)
	written := map[string]bool{} // the users the plan gives a profile
	for _, e := range plan.Entries {
		if e.Action == legacy.ActionMigrate {
			written[e.UserID] = true
		}
	}
	wantProfiles := 1
	for i, e := range plan.Entries {
		r := recs[i]
		uid := e.UserID
		if e.Action == legacy.ActionCreateUser {
			u, ok := users[e.Email]
			if !ok {
				t.Fatalf("record %d: the missing user %s was not created", i+1, e.Email)
			}
			// Created with the legacy names and phone, and an unusable password.
			if u.FirstName != r.fields["first_name"] || u.PhoneNumber != r.fields["phone"] || !strings.HasPrefix(u.Password, auth.UnusablePasswordPrefix) {
				t.Errorf("record %d: created user %+v", i+1, u)
			}
			uid = u.ID
			if applied.Entries[i].UserID != uid {
				t.Errorf("record %d: apply entry %+v, user %s", i+1, applied.Entries[i], uid)
			}
		}
		if e.Action == legacy.ActionSkip {
			if applied.Entries[i].Outcome != legacy.OutcomeSkipped {
				t.Errorf("record %d: planned skip, outcome %s", i+1, applied.Entries[i].Outcome)
			}
			if _, ok := profiles[uid]; ok && uid != "" && !written[uid] {
				t.Errorf("record %d: skipped, but its user %s has a profile", i+1, uid)
			}
			continue
		}
		wantProfiles++
		got, ok := profiles[uid]
		if !ok {
			t.Errorf("record %d: no profile for %s", i+1, uid)
			continue
		}
		f := r.fields
		since, _ := legacy.ParseTime(f["customer_since"].(string))
		a := e.Address
		if got.StreetAddress != a.Street || got.City != a.City || got.State != a.State || got.PostalCode != a.PostalCode || got.Country != a.Country ||
			got.CompanyName != f["company_name"] || got.BusinessType != f["business_type"] || got.TaxID != f["tax_id"] ||
			got.EmergencyContact.Name != f["emergency_contact_name"] || got.EmergencyContact.Phone != f["emergency_contact_phone"] ||
			got.EmergencyContact.Relationship != f["emergency_contact_relationship"] || got.IsVerified != f["is_verified"] ||
			!got.CustomerSince.Equal(since) || got.PreferredContactMethod != "email" || !got.NotificationPreferences["email"] ||
			!contract.ValidID(got.ID) || got.CreatedAt.IsZero() {
			t.Errorf("record %d: profile %+v\nplanned %+v\nlegacy %v", i+1, got, a, f)
		}
	}
	if total := len(profiles); total != wantProfiles || len(all) != total {
		t.Errorf("%d profiles, the plan promised %d (and the one there before)", total, wantProfiles)
	}
	kept, err := store.ByUserID(ctx, before.UserID)
	if err != nil || kept.ID != before.ID || kept.PreferredContactMethod != "sms" || kept.City != "Salem" {
		t.Errorf("the profile there before: %+v, %v", kept, err)
	}

	// The customer service serves the migrated profiles.
	list := testenv.Call(t, nil, http.MethodGet, sys.customerURL+"/api/v1/customers/?page_size=5&city=Portland", nil, testenv.Bearer(tok))
	var page struct {
		Count   int              `json:"count"`
		Results []map[string]any `json:"results"`
	}
	_ = json.Unmarshal(list.Body, &page)
	portland, _ := store.Count(ctx, customer.Filter{City: "Portland"})
	if list.Status != http.StatusOK || page.Count != portland || page.Count == 0 || page.Results[0]["city"] != "Portland" {
		t.Errorf("customer service list: %d, %+v (store has %d in Portland)", list.Status, page, portland)
	}

	// Verify notices a profile changed behind its back.
	var victim string
	for _, e := range plan.Entries {
		if e.Action == legacy.ActionMigrate {
			victim = e.UserID
			break
		}
	}
	p, _ := store.ByUserID(ctx, victim)
	city := "Nowhere"
	_, err = store.Update(ctx, p, customer.Changes{City: &city}, time.Now())
	testenv.Must(t, err, "tamper")
	code, out, _ = sys.cli(t, env{}, "verify", "--input", input)
	if code != exitProblems || !strings.Contains(out, "profiles with other content:   1") {
		t.Errorf("verify after tampering: exit %d\n%s", code, out)
	}

	phase("checked")
	// 5. roll back from the backup.
	if code, _, errOut := sys.cli(t, env{}, "restore", "--in", backupFile); code != exitUsage || !strings.Contains(errOut, "--yes") {
		t.Errorf("restore without --yes: exit %d %s", code, errOut)
	}
	code, out, errOut = sys.cli(t, env{}, "restore", "--in", backupFile, "--yes")
	if code != exitOK {
		t.Fatalf("restore: exit %d\n%s\n%s", code, out, errOut)
	}
	if total, _ := store.Count(ctx, customer.Filter{}); total != 1 {
		t.Errorf("after the restore: %d profiles", total)
	}
	restored, err := store.ByUserID(ctx, before.UserID)
	if err != nil || restored.ID != before.ID || !restored.CustomerSince.Equal(before.CustomerSince) || restored.PreferredContactMethod != "sms" {
		t.Errorf("restored profile %+v, %v", restored, err)
	}
	if _, err := store.ByUserID(ctx, victim); err == nil {
		t.Error("a migrated profile survived the restore")
	}
}
