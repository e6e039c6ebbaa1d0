package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/acme/customer-platform/auth"
	authmongo "github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/customer"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/telemetry"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestNoPersonalDataInTelemetry (issue 18): a migration (plan, apply with
// --create-missing-users, verify) and a reconciliation (a dry run, then a
// repair of planted ghosts, with planted orphans) run with tracing on in
// the tool and in the in-process auth and customer services, every log at
// debug level; then everything exported is scanned — the tool's spans,
// metrics and log, each service's spans, log and /metrics — for every
// email, phone number, name and address of the seeded records.
func TestNoPersonalDataInTelemetry(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end against the real services: not in -short")
	}
	t.Parallel()
	ss := systest.Start(t, systest.Options{Services: []string{"auth", "customer"}, Spans: true, LogLevel: slog.LevelDebug,
		ServiceEnv: map[string]map[string]string{"auth": {"SERVICE_TOKEN_TTL": "10m"}}})
	authIn, custIn := ss.Service("auth"), ss.Service("customer")
	if authIn.Spans == nil || custIn.Spans == nil {
		t.Fatal("the services run as processes: no span exporter to read")
	}
	sys := &system{authURL: ss.URL("auth"), customerURL: ss.URL("customer"), mongoURI: ss.MongoURI,
		customerDB: ss.DBName("customer"), authDB: ss.DBName("auth"), batch: 7}
	ctx := context.Background()
	client, _ := testenv.Mongo(t)
	users := authmongo.New(client.Database(sys.authDB))
	store, err := custmongo.New(ctx, client.Database(sys.customerDB))
	testenv.Must(t, err, "customer store")

	// The personal data of the run, every value distinctive enough that
	// finding it anywhere exported can only mean it leaked.
	var pii []string
	secret := func(s string) string { pii = append(pii, s); return s }
	old := time.Now().UTC().Add(-72 * time.Hour).Truncate(time.Millisecond)

	// Legacy records: two of three users exist at auth (with their names
	// and phones), the third is created by apply.
	const n = 24
	recs := make([]legacyRecord, n)
	var existing []auth.User
	for i := range n {
		email := secret(fmt.Sprintf("piirec%02d.kwazii@mailpii.example", i))
		first, last := secret(fmt.Sprintf("Zorbalind%02d", i)), secret(fmt.Sprintf("Quillfeather%02d", i))
		phone := secret(fmt.Sprintf("(503) 867-%04d", 5300+i))
		street := secret(fmt.Sprintf("%d Wobblewood Terrace", 7100+i))
		recs[i] = legacyRecord{email: email, fields: map[string]any{
			"user_id": 900 + i, "first_name": first, "last_name": last, "email": email, "phone": phone,
			"address":      fmt.Sprintf("%s, Frobisherton, OR 97%03d", street, 300+i),
			"company_name": secret(fmt.Sprintf("Glimmerquartz %02d Holdings", i)), "business_type": "llc",
			"tax_id":                         secret(fmt.Sprintf("93-71%05d", i)),
			"emergency_contact_name":         secret(fmt.Sprintf("Bartholomina Sprocket%02d", i)),
			"emergency_contact_phone":        secret(fmt.Sprintf("(971) 246-%04d", 8100+i)),
			"emergency_contact_relationship": "sibling", "is_verified": i%2 == 0,
			"customer_since": "2019-05-06T07:08:09.000Z",
		}}
		if i%3 != 0 {
			existing = append(existing, auth.User{ID: contract.NewID(), Email: email, FirstName: first, LastName: last,
				PhoneNumber: phone, Role: contract.RoleCustomer, DateJoined: old, PasswordHash: auth.UnusablePasswordPrefix + "seeded"})
		}
	}
	pii = append(pii, "Frobisherton", "Wobblewood", "mailpii", "kwazii")
	// Orphans: customer users without a profile, joined before the grace.
	for i := range 3 {
		existing = append(existing, auth.User{ID: contract.NewID(), Email: secret(fmt.Sprintf("orphanpii%d@mailpii.example", i)),
			FirstName: secret(fmt.Sprintf("Orphelinda%d", i)), LastName: secret(fmt.Sprintf("Lostbridge%d", i)),
			PhoneNumber: secret(fmt.Sprintf("+1 541 555 %04d", 4400+i)), Role: contract.RoleCustomer, DateJoined: old,
			PasswordHash: auth.UnusablePasswordPrefix + "seeded"})
	}
	res, err := users.ImportUsers(ctx, existing)
	testenv.Must(t, err, "seed users")
	for i, r := range res {
		testenv.Must(t, r.Err, "seed user %d", i)
	}
	dir := t.TempDir()
	input := filepath.Join(dir, "customers.json")
	writeDumpdata(t, input, recs)

	// The tool's telemetry: its spans in memory, its metrics, its log.
	spans := tracetest.NewInMemoryExporter()
	tel, err := telemetry.Setup(ctx, telemetry.Options{Service: "migrate", SpanExporter: spans, Lookup: config.FromMap(nil)})
	testenv.Must(t, err, "telemetry")
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	var toolLog bytes.Buffer
	cli := func(want int, args ...string) {
		t.Helper()
		vars := sys.env()
		vars["CUSTOMER_URL"], vars["LOG_LEVEL"] = sys.customerURL, "debug"
		var out, errOut bytes.Buffer
		code := run(ctx, args, env{lookup: config.FromMap(vars), stdout: &out, stderr: &errOut, telemetry: tel})
		toolLog.Write(errOut.Bytes())
		if code != want {
			t.Fatalf("%s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), code, want, out.String(), errOut.String())
		}
	}
	cli(exitOK, "plan", "--input", input, "--report", filepath.Join(dir, "plan.json"), "--create-missing-users")
	cli(exitOK, "apply", "--input", input, "--report", filepath.Join(dir, "apply.json"), "--create-missing-users")
	cli(exitOK, "verify", "--input", input)
	// Ghosts, planted after verify (which would report them): profiles
	// whose user never existed, with their own addresses and contacts.
	ghosts := map[string]bool{}
	for i := range 3 {
		p := profile(contract.NewID(), old)
		p.ID = customer.ProfileID(p.UserID)
		p.StreetAddress = secret(fmt.Sprintf("%d Spectral Hollow Rd", 6600+i))
		p.City = secret("Phantasmburg")
		p.EmergencyContact.Name = secret(fmt.Sprintf("Wraithella Moor%d", i))
		p.EmergencyContact.Phone = secret(fmt.Sprintf("(458) 303-%04d", 7700+i))
		testenv.Must(t, store.Create(ctx, p), "ghost profile")
		ghosts[p.ID] = true
	}

	cli(exitProblems, "reconcile")
	cli(exitProblems, "reconcile", "--repair", "--batch", "2")
	for id := range ghosts {
		if _, err := store.ByID(ctx, id); err == nil {
			t.Errorf("ghost %s not repaired", id)
		}
	}
	if c, _ := store.Count(ctx, customer.Filter{}); c != n {
		t.Errorf("%d profiles after the migration and the repair, want %d", c, n)
	}
	// (Not Shutdown: the in-memory exporter forgets its spans on it.)
	testenv.Must(t, tel.Tracer.ForceFlush(ctx), "flush the tool's spans")

	metricsOf := func(h http.Handler) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	exported := map[string]string{
		"the tool's spans":   fmt.Sprintf("%+v", spans.GetSpans()),
		"the tool's metrics": metricsOf(tel.Metrics),
		"the tool's log":     toolLog.String(),
	}
	for _, in := range []*systest.Instance{authIn, custIn} {
		exported[in.Name+"'s spans"] = fmt.Sprintf("%+v", in.Spans.GetSpans())
		exported[in.Name+"'s log"] = in.Logs.String()
		exported[in.Name+"'s /metrics"] = string(testenv.Call(t, nil, http.MethodGet, in.MetricsURL+"/metrics", nil, nil).Body)
	}
	// Not a scan of nothing: the calls were traced on both sides (the
	// lookups by email among them) and the deletes reached the customer
	// service.
	toolSpans := exported["the tool's spans"]
	for what, want := range map[string]string{
		"the tool's spans": "/api/auth/users/", "auth's spans": "/api/auth/users/", "customer's spans": "DELETE",
	} {
		if !strings.Contains(exported[what], want) {
			t.Errorf("%s do not show %q: the scan would prove nothing", what, want)
		}
	}
	if !strings.Contains(toolSpans, "REDACTED") || !strings.Contains(toolSpans, "migrate reconcile") {
		t.Errorf("the tool's spans lack the redacted lookups by email or the command's span")
	}
	for what, text := range exported {
		for _, s := range pii {
			for _, form := range []string{s, strings.ToLower(s), strings.ToUpper(s), url.QueryEscape(s), strconv.Quote(s)[1 : len(strconv.Quote(s))-1]} {
				if i := strings.Index(text, form); i >= 0 {
					t.Errorf("%s carry %q: ...%s...", what, form, text[max(0, i-200):min(len(text), i+80)])
					break
				}
			}
		}
	}
}
