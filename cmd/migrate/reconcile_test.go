package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/customer-platform/auth"
	authmongo "github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// reconcileWorld is a seeded dataset: customers with their user and
// profile, planted ghosts (profiles whose user does not exist) and orphans
// (customer users without a profile, older than the grace period), and
// what must never be touched: a customer user younger than the grace
// period, an employee without a profile, the customers' service records.
type reconcileWorld struct {
	sys      *system
	store    *custmongo.Store
	kept     map[string]string // user id -> profile id of the customers with both
	ghosts   map[string]string // profile id -> user id
	orphans  []string          // user ids, sorted
	recent   string            // a customer user within the grace period, without a profile
	employee string            // an employee without a profile
}

func seedReconcile(t *testing.T, customers, ghosts, orphans int) *reconcileWorld {
	t.Helper()
	ctx := context.Background()
	w := &reconcileWorld{sys: startSystem(t), kept: map[string]string{}, ghosts: map[string]string{}}
	client, _ := testenv.Mongo(t)
	users := authmongo.New(client.Database(w.sys.authDB))
	store, err := custmongo.New(ctx, client.Database(w.sys.customerDB))
	testenv.Must(t, err, "customer store")
	w.store = store
	old := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Millisecond)
	n := 0
	user := func(role string, joined time.Time) string {
		n++
		u := auth.User{ID: contract.NewID(), Email: fmt.Sprintf("r%03d@example.com", n), FirstName: "F", LastName: "L",
			Role: role, DateJoined: joined, PasswordHash: auth.UnusablePasswordPrefix + "seeded"}
		testenv.Must(t, users.CreateUser(ctx, u), "seed user")
		return u.ID
	}
	prof := func(userID string) string {
		p := profile(userID, old)
		testenv.Must(t, store.Create(ctx, p), "seed profile")
		_, _, err := store.AddService(ctx, p, customer.ServiceRecord{ID: contract.NewID(), CustomerID: p.ID, ServiceType: "repair",
			PerformedAt: old, CreatedAt: old, RecordedBy: "seed"}, contract.NewID())
		testenv.Must(t, err, "seed service record")
		return p.ID
	}
	for range customers {
		id := user(contract.RoleCustomer, old)
		w.kept[id] = prof(id)
	}
	for range ghosts {
		uid := contract.NewID() // never an auth user
		w.ghosts[prof(uid)] = uid
	}
	for range orphans {
		w.orphans = append(w.orphans, user(contract.RoleCustomer, old))
	}
	slices.Sort(w.orphans)
	w.recent = user(contract.RoleCustomer, time.Now().UTC().Add(-time.Minute))
	w.employee = user(contract.RoleEmployee, old)
	// An employee with a profile is not a ghost either.
	staff := user(contract.RoleEmployee, old)
	w.kept[staff] = prof(staff)
	return w
}

func profile(userID string, at time.Time) customer.Customer {
	return customer.Customer{
		ID: contract.NewID(), UserID: userID, Address: customer.Address{StreetAddress: "1 Main St", City: "Salem", State: "OR", PostalCode: "97301", Country: "USA"},
		PreferredContactMethod: "email", NotificationPreferences: customer.DefaultNotificationPreferences(),
		CustomerSince: at, CreatedAt: at, UpdatedAt: at,
	}
}

// reconcile runs `migrate reconcile args...` with the system's environment
// (AUTH_URL set to authURL when it is not ""), the ctx given and the
// afterBatch hook.
func (w *reconcileWorld) reconcile(t *testing.T, ctx context.Context, authURL string, afterBatch func(int), args ...string) (int, string, string) {
	t.Helper()
	vars := w.sys.env()
	vars["CUSTOMER_URL"] = w.sys.customerURL
	if authURL != "" {
		vars["AUTH_URL"] = authURL
	}
	var out, errOut strings.Builder
	code := run(ctx, append([]string{"reconcile"}, args...), env{lookup: config.FromMap(vars), stdout: &out, stderr: &errOut, afterBatch: afterBatch})
	return code, out.String(), errOut.String()
}

// withoutListing is the system's auth service as a Django one that did not
// add the user listing: GET /api/auth/users/ without email is a 400 that
// wants the email, as DRF answers a required filter; all else passes.
func (w *reconcileWorld) withoutListing(t *testing.T) string {
	t.Helper()
	target, err := url.Parse(w.sys.authURL)
	testenv.Must(t, err, "auth URL")
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/api/auth/users/" && !r.URL.Query().Has("email") {
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(http.StatusBadRequest)
			_, _ = rw.Write([]byte(`{"email": ["This field is required."]}`))
			return
		}
		proxy.ServeHTTP(rw, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (w *reconcileWorld) report(t *testing.T, args ...string) (int, reconcileReport) {
	t.Helper()
	code, out, errOut := w.reconcile(t, context.Background(), "", nil, append([]string{"--json"}, args...)...)
	var r reconcileReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("reconcile %v: exit %d, not JSON: %v\n%s\n%s", args, code, err, out, errOut)
	}
	return code, r
}

// ghostSet is the report's ghosts as profile id -> user id.
func ghostSet(r reconcileReport) map[string]string {
	m := map[string]string{}
	for _, g := range r.Ghosts.Profiles {
		m[g.ProfileID] = g.UserID
	}
	return m
}

func orphanIDs(r reconcileReport) []string {
	var ids []string
	for _, o := range r.Orphans.Users {
		ids = append(ids, o.UserID)
	}
	slices.Sort(ids)
	return ids
}

// TestReconcileEndToEnd: on a seeded dataset with planted ghosts and
// orphans, the report finds exactly those and changes nothing; a repair
// limited to one profile deletes one; a repair interrupted after its first
// batch is completed by running it again; afterwards no ghost is left, the
// orphans are still reported (never deleted), and nothing else was touched.
func TestReconcileEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end against the real services: not in -short")
	}
	t.Parallel()
	const customers, ghosts, orphans = 17, 5, 3
	w := seedReconcile(t, customers, ghosts, orphans)
	w.sys.batch = 4 // lookups in batches of 4 profiles, across batch boundaries
	ctx := context.Background()
	profiles := customers + 1 + ghosts

	// 1. The report (the default): exactly the planted ones, nothing written.
	code, r := w.report(t)
	if code != exitProblems {
		t.Errorf("report with findings: exit %d, want %d", code, exitProblems)
	}
	if r.Repair || r.ProfilesChecked != profiles || r.Ghosts.Count != ghosts || !maps.Equal(ghostSet(r), w.ghosts) {
		t.Errorf("ghosts: %+v, want %v of %d profiles", r.Ghosts, w.ghosts, profiles)
	}
	if !r.Orphans.Checked || r.Orphans.Count != orphans || !slices.Equal(orphanIDs(r), w.orphans) || r.Orphans.Recent != 1 ||
		r.UsersChecked != customers+orphans+1 {
		t.Errorf("orphans: %+v (users checked %d), want %v and 1 recent", r.Orphans, r.UsersChecked, w.orphans)
	}
	if n, _ := w.store.Count(ctx, customer.Filter{}); n != profiles {
		t.Fatalf("the report wrote: %d profiles, want %d", n, profiles)
	}

	// The users came from the listing, a page of --batch at a time, and
	// only the profiles without a listed customer user were looked up by
	// id: the ghosts and the employee's.
	if r.UserLookups != ghosts+1 {
		t.Errorf("%d users looked up by id, want %d (the ghosts and the employee with a profile)", r.UserLookups, ghosts+1)
	}

	// The text report says the same.
	code, out, errOut := w.reconcile(t, ctx, "", nil)
	if code != exitProblems || !strings.Contains(out, fmt.Sprintf("ghosts: %d", ghosts)) || !strings.Contains(out, fmt.Sprintf("orphans: %d", orphans)) {
		t.Errorf("text report: exit %d\n%s\n%s", code, out, errOut)
	}
	for pid, uid := range w.ghosts {
		if !strings.Contains(out, pid) || !strings.Contains(out, uid) {
			t.Errorf("text report does not name ghost %s (user %s)", pid, uid)
		}
	}

	// Against an auth service without the listing (a Django one), the
	// ghosts are still found exactly, by one lookup per profile; the
	// orphans are not checked and the report says what to do.
	django := w.withoutListing(t)
	code, out, _ = w.reconcile(t, ctx, django, nil)
	if code != exitProblems || !strings.Contains(out, fmt.Sprintf("ghosts: %d", ghosts)) || !strings.Contains(out, "orphans: not checked") ||
		!strings.Contains(out, "Add the listing to the auth service") {
		t.Errorf("report without the listing: exit %d\n%s", code, out)
	}
	code, out, _ = w.reconcile(t, ctx, django, nil, "--json")
	var dr reconcileReport
	if err := json.Unmarshal([]byte(out), &dr); err != nil || code != exitProblems || dr.Orphans.Checked || dr.Orphans.Count != 0 ||
		!maps.Equal(ghostSet(dr), w.ghosts) || dr.ProfilesChecked != profiles || dr.UserLookups != profiles {
		t.Errorf("JSON report without the listing: exit %d %v\n%s", code, err, out)
	}

	// 2. A repair limited to one profile deletes one and says more remain.
	code, r = w.report(t, "--repair", "--limit", "1")
	if code != exitProblems || r.Ghosts.Repaired != 1 || r.Ghosts.Count != ghosts {
		t.Fatalf("repair --limit 1: exit %d, %+v", code, r.Ghosts)
	}
	left := func() int {
		n := 0
		for pid := range w.ghosts {
			if _, err := w.store.ByID(ctx, pid); err == nil {
				n++
			} else if !errors.Is(err, customer.ErrNotFound) {
				t.Fatal(err)
			}
		}
		return n
	}
	if l := left(); l != ghosts-1 {
		t.Fatalf("after repair --limit 1: %d ghosts left", l)
	}

	// 3. A repair interrupted after its first batch of two ...
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	code, out, errOut = w.reconcile(t, ictx, "", func(b int) {
		if b == 1 {
			cancel()
		}
	}, "--repair", "--batch", "2")
	if code != exitFailure || !strings.Contains(errOut, "run it again") {
		t.Fatalf("interrupted repair: exit %d\n%s\n%s", code, out, errOut)
	}
	if l := left(); l != ghosts-3 {
		t.Fatalf("after the interrupted repair: %d ghosts left, want %d", l, ghosts-3)
	}

	// ... is completed by running it again.
	code, r = w.report(t, "--repair", "--batch", "2")
	if code != exitProblems || r.Ghosts.Count != ghosts-3 || r.Ghosts.Repaired != ghosts-3 || r.Orphans.Count != orphans {
		t.Fatalf("the re-run repair: exit %d, %+v %+v", code, r.Ghosts, r.Orphans)
	}
	if l := left(); l != 0 {
		t.Fatalf("after the repair: %d ghosts left", l)
	}

	// 4. What the repair did, and what it never touches.
	mc, _ := testenv.Mongo(t)
	svc := mc.Database(w.sys.customerDB).Collection(custmongo.ServicesCollection)
	for pid := range w.ghosts {
		if n, _ := w.store.CountServices(ctx, pid); n != 0 {
			t.Errorf("ghost %s: %d service records left", pid, n)
		}
	}
	for uid, pid := range w.kept {
		if p, err := w.store.ByUserID(ctx, uid); err != nil || p.ID != pid {
			t.Errorf("kept profile of %s: %+v %v", uid, p, err)
		}
		if n, _ := w.store.CountServices(ctx, pid); n != 1 {
			t.Errorf("kept profile %s: %d service records", pid, n)
		}
	}
	if n, _ := svc.CountDocuments(ctx, map[string]any{}); n != int64(len(w.kept)) {
		t.Errorf("%d service records, want %d", n, len(w.kept))
	}
	tok := w.sys.token(t)
	for _, id := range append(slices.Clone(w.orphans), w.recent, w.employee) {
		if _, err := w.sys.auth.GetUser(ctx, tok, id); err != nil {
			t.Errorf("user %s was touched: %v", id, err)
		}
	}

	// 5. A second run finds no ghost; the orphans are reported again (the
	// repair never deletes a user) ...
	code, r = w.report(t)
	if code != exitProblems || r.Ghosts.Count != 0 || r.ProfilesChecked != customers+1 || !slices.Equal(orphanIDs(r), w.orphans) || r.Orphans.Recent != 1 {
		t.Errorf("second run: exit %d, %+v %+v", code, r.Ghosts, r.Orphans)
	}
	// ... until the operator resolves them (the runbook: a deliberate
	// delete at the auth service, or a profile); then nothing is found.
	// The delete is the operator's, with a client allowed to delete
	// customers (the BFF's here), not the migration's, which never deletes
	// a user.
	deleter, err := authclient.NewServiceTokens(w.sys.auth, systest.BFFClientID, systest.BFFClientSecret).Token(ctx)
	testenv.Must(t, err, "a token that may delete customers")
	for _, id := range w.orphans {
		testenv.Must(t, w.sys.auth.DeleteUser(ctx, deleter, id), "operator deletes orphan %s", id)
	}
	code, r = w.report(t, "--repair")
	if code != exitOK || r.Ghosts.Count != 0 || r.Orphans.Count != 0 || r.Ghosts.Repaired != 0 {
		t.Errorf("after the operator's resolution: exit %d, %+v %+v", code, r.Ghosts, r.Orphans)
	}
	if _, err := w.sys.auth.GetUser(ctx, tok, w.recent); err != nil {
		t.Errorf("the recent user: %v", err)
	}
}
