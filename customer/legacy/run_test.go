package legacy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
)

// fakeDirectory is an in-memory auth service.
type fakeDirectory struct {
	mu          sync.Mutex
	byEmail     map[string]User
	calls       map[string]int
	idCalls     int
	inflight    int
	maxInflight int
	created     int
	reject      map[string]bool // emails the service refuses to create
	findErr     error
}

var (
	_ Directory   = (*fakeDirectory)(nil)
	_ UserCreator = (*fakeDirectory)(nil)
)

func newFakeDirectory(emails ...string) *fakeDirectory {
	d := &fakeDirectory{byEmail: map[string]User{}, calls: map[string]int{}, reject: map[string]bool{}}
	for _, e := range emails {
		d.add(e)
	}
	return d
}

func (d *fakeDirectory) add(email string) User {
	u := User{ID: contract.NewID(), Email: contract.NormalizeEmail(email)}
	d.byEmail[u.Email] = u
	return u
}

func (d *fakeDirectory) FindUserByEmail(ctx context.Context, email string) (User, bool, error) {
	d.mu.Lock()
	d.calls[email]++
	d.inflight++
	d.maxInflight = max(d.maxInflight, d.inflight)
	err := d.findErr
	d.mu.Unlock()
	time.Sleep(time.Millisecond) // let concurrent lookups overlap
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inflight--
	if err != nil {
		return User{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return User{}, false, err
	}
	u, ok := d.byEmail[contract.NormalizeEmail(email)]
	return u, ok, nil
}

func (d *fakeDirectory) UserByID(_ context.Context, id string) (User, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.idCalls++
	for _, u := range d.byEmail {
		if u.ID == id {
			return u, true, nil
		}
	}
	return User{}, false, nil
}

func (d *fakeDirectory) CreateUser(_ context.Context, nu NewUser) (User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := contract.NormalizeEmail(nu.Email)
	if d.reject[e] {
		return User{}, fmt.Errorf("%w: phone_number: Enter a valid phone number.", ErrUserRejected)
	}
	if _, ok := d.byEmail[e]; ok {
		return User{}, fmt.Errorf("%w", ErrUserExists)
	}
	d.created++
	return d.add(e), nil
}

// fakeStore is an in-memory customer store with the upsert semantics of
// the Mongo one.
type fakeStore struct {
	mu       sync.Mutex
	byUser   map[string]customer.Customer
	upserts  int
	failUser map[string]bool
}

var (
	_ ProfileWriter = (*fakeStore)(nil)
	_ ProfileReader = (*fakeStore)(nil)
)

func newFakeStore() *fakeStore {
	return &fakeStore{byUser: map[string]customer.Customer{}, failUser: map[string]bool{}}
}

func (s *fakeStore) UpsertProfiles(_ context.Context, ps []customer.Customer, now time.Time) ([]WriteResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]WriteResult, len(ps))
	for i, p := range ps {
		s.upserts++
		if s.failUser[p.UserID] {
			out[i].Err = errors.New("write failed")
			continue
		}
		old, ok := s.byUser[p.UserID]
		if !ok {
			p.ID, p.CreatedAt = contract.NewID(), now
			p.UpdatedAt = now
			s.byUser[p.UserID] = p
			out[i].Inserted = true
			continue
		}
		// $set of the migrated fields only.
		old.Address, old.CompanyName, old.BusinessType, old.TaxID = p.Address, p.CompanyName, p.BusinessType, p.TaxID
		old.EmergencyContact, old.IsVerified, old.UpdatedAt = p.EmergencyContact, p.IsVerified, now
		s.byUser[p.UserID] = old
	}
	return out, nil
}

func (s *fakeStore) ProfilesByUserIDs(_ context.Context, ids []string) (map[string]customer.Customer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]customer.Customer{}
	for _, id := range ids {
		if c, ok := s.byUser[id]; ok {
			out[id] = c
		}
	}
	return out, nil
}

func (s *fakeStore) EachProfileUserID(_ context.Context, fn func(string) error) error {
	s.mu.Lock()
	ids := make([]string, 0, len(s.byUser))
	for id := range s.byUser {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) DuplicateUserIDs(context.Context) ([]string, error) { return nil, nil }

// dumpdata renders records as a dumpdata export.
func dumpdata(t *testing.T, fields ...map[string]any) string {
	t.Helper()
	objs := make([]map[string]any, len(fields))
	for i, f := range fields {
		objs[i] = map[string]any{"model": Model, "pk": i + 1, "fields": f}
	}
	b, err := json.Marshal(objs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func reader(t *testing.T, s string) *Reader {
	t.Helper()
	r, err := NewReader(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func rec(email, address string, more ...any) map[string]any {
	m := map[string]any{"email": email, "address": address, "first_name": "F", "last_name": "L",
		"is_verified": false, "customer_since": "2018-01-02T03:04:05Z"}
	for i := 0; i+1 < len(more); i += 2 {
		m[more[i].(string)] = more[i+1]
	}
	return m
}

const goodAddr = "1 Main St, Portland, OR 97201"

func plan(t *testing.T, in string, dir Directory, o Options) ([]Entry, Summary) {
	t.Helper()
	var es []Entry
	sum, err := Plan(context.Background(), reader(t, in), dir, o, func(e Entry) error { es = append(es, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return es, sum
}

func codes(e Entry) string {
	var cs []string
	for _, p := range e.Problems {
		s := string(p.Code)
		if p.Blocking {
			s += "!"
		}
		cs = append(cs, s)
	}
	return strings.Join(cs, ",")
}

func TestPlanClassifies(t *testing.T) {
	t.Parallel()
	dir := newFakeDirectory("a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com", "f@example.com", "g@example.com", "h@example.com")
	in := dumpdata(t,
		rec("A@Example.com ", goodAddr, "user_id", 1, "company_name", "Acme", "is_verified", true), // 1 ok
		rec("missing@example.com", goodAddr),                                          // 2 no user
		rec("b@example.com", "1 Main St, Portland, OR"),                               // 3 partial
		rec("c@example.com", "10 Downing St, London, UK"),                             // 4 foreign
		rec("d@example.com", ""),                                                      // 5 empty
		rec("not-an-email", goodAddr),                                                 // 6 invalid email
		rec("a@example.com", goodAddr),                                                // 7 duplicate of 1
		rec("e@example.com", goodAddr, "business_type", "empire"),                     // 8 invalid field
		rec("f@example.com", goodAddr, "user_id", 1),                                  // 9 same legacy user as 1
		rec("b@example.com", goodAddr),                                                // 10 b again: 3 did not claim
		rec("g@example.com", goodAddr, "is_verified", "perhaps"),                      // 11 unreadable field
		rec("h@example.com", strings.Repeat("9 Long Rd ", 30)+", Portland, OR 97201"), // 12 street too long
	)
	want := []struct {
		action Action
		codes  string
	}{
		{ActionMigrate, ""},
		{ActionSkip, "no_auth_user!"},
		{ActionSkip, "address_partial!"},
		{ActionSkip, "address_foreign!"},
		{ActionSkip, "address_empty!"},
		{ActionSkip, "invalid_field!"},
		{ActionSkip, "duplicate_user!"},
		{ActionSkip, "invalid_field!"},
		{ActionSkip, "duplicate_user!"},
		{ActionMigrate, ""},
		{ActionSkip, "invalid_field!"},
		{ActionSkip, "invalid_field!"},
	}
	es, sum := plan(t, in, dir, Options{BatchSize: 5})
	if len(es) != len(want) {
		t.Fatalf("%d entries", len(es))
	}
	for i, w := range want {
		if es[i].Action != w.action || codes(es[i]) != w.codes {
			t.Errorf("record %d: %s %s, want %s %s (%+v)", i+1, es[i].Action, codes(es[i]), w.action, w.codes, es[i].Problems)
		}
	}
	if es[0].UserID != dir.byEmail["a@example.com"].ID || es[0].Email != "a@example.com" || es[6].DuplicateOf != "pk 1" {
		t.Errorf("first %+v / duplicate of %q", es[0], es[6].DuplicateOf)
	}
	p := es[0].Profile()
	if p.UserID != es[0].UserID || p.City != "Portland" || p.State != "OR" || p.PostalCode != "97201" || p.Country != "USA" ||
		p.CompanyName != "Acme" || !p.IsVerified || !p.CustomerSince.Equal(time.Date(2018, 1, 2, 3, 4, 5, 0, time.UTC)) ||
		p.PreferredContactMethod != "email" || !p.NotificationPreferences["email"] {
		t.Errorf("profile %+v", p)
	}
	if sum.Records != 12 || sum.Migrate != 2 || sum.Skip != 10 || sum.Problems[ProblemInvalidField] != 4 || sum.Addresses[AddressParsed] != 9 {
		t.Errorf("summary %+v", sum)
	}

	// Accepting partial addresses and creating users changes those records only.
	es, _ = plan(t, in, dir, Options{AcceptPartialAddress: true, CreateMissingUsers: true})
	for i, w := range []Action{ActionMigrate, ActionCreateUser, ActionMigrate, ActionMigrate, ActionMigrate, ActionSkip, ActionSkip, ActionSkip, ActionSkip, ActionSkip} {
		if es[i].Action != w {
			t.Errorf("accepting: record %d: %s, want %s (%s)", i+1, es[i].Action, w, codes(es[i]))
		}
	}
	if es[3].Profile().StreetAddress != "10 Downing St, London, UK" || es[3].Profile().Country != "United Kingdom" {
		t.Errorf("foreign profile %+v", es[3].Profile())
	}
	if es[9].DuplicateOf != "pk 3" {
		t.Errorf("with partial addresses accepted, record 3 claims b@: %+v", es[9])
	}
}

func TestPlanLookupsAreCachedAndBounded(t *testing.T) {
	t.Parallel()
	var emails []string
	var fields []map[string]any
	for i := range 200 {
		e := fmt.Sprintf("u%d@example.com", i%50)
		emails = append(emails, e)
		fields = append(fields, rec(strings.ToUpper(e), goodAddr))
	}
	dir := newFakeDirectory(emails[:40]...)
	_, sum := plan(t, dumpdata(t, fields...), dir, Options{BatchSize: 64, Lookups: 3})
	for e, n := range dir.calls {
		if n != 1 {
			t.Errorf("%s looked up %d times", e, n)
		}
	}
	if len(dir.calls) != 50 || dir.maxInflight > 3 || dir.maxInflight < 2 {
		t.Errorf("%d emails looked up, at most %d at once", len(dir.calls), dir.maxInflight)
	}
	if sum.Migrate != 40 || sum.Problems[ProblemDuplicateUser] != 120 || sum.Problems[ProblemNoAuthUser] != 40 {
		t.Errorf("summary %+v", sum)
	}
}

func TestPlanStopsWhenTheDirectoryFails(t *testing.T) {
	t.Parallel()
	dir := newFakeDirectory()
	dir.findErr = errors.New("auth service unavailable")
	_, err := Plan(context.Background(), reader(t, dumpdata(t, rec("a@example.com", goodAddr))), dir, Options{}, func(Entry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("err = %v", err)
	}
}

// generated makes n records over users of which every 7th has no auth
// user, every 11th a partial address and every 13th repeats an earlier email.
func generated(t *testing.T, n int) (string, *fakeDirectory) {
	t.Helper()
	dir := newFakeDirectory()
	var fields []map[string]any
	for i := range n {
		email := fmt.Sprintf("user%d@example.com", i)
		if i%13 == 12 {
			email = fmt.Sprintf("user%d@example.com", i-5)
		}
		if i%7 != 3 {
			dir.add(email)
		}
		addr := fmt.Sprintf("%d Main St, Portland, OR 97%03d", i+1, i%1000)
		if i%11 == 5 {
			addr = fmt.Sprintf("%d Main St Portland", i+1)
		}
		fields = append(fields, rec(email, addr, "phone", "555-0100", "is_verified", i%2 == 0, "company_name", fmt.Sprintf("Co %d", i)))
	}
	return dumpdata(t, fields...), dir
}

func TestApplyInterruptedAndRerun(t *testing.T) {
	t.Parallel()
	in, dir := generated(t, 120)
	want, planned := plan(t, in, dir, Options{CreateMissingUsers: true})
	store := newFakeStore()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var applied []Entry
	sum, err := Apply(ctx, reader(t, in), dir, dir, store, Options{BatchSize: 10, CreateMissingUsers: true, AfterBatch: func(b int) {
		if b == 3 {
			cancel()
		}
	}}, func(e Entry) error { applied = append(applied, e); return nil })
	if !errors.Is(err, context.Canceled) || !sum.Interrupted || sum.Batches != 3 || len(applied) != 30 {
		t.Fatalf("interrupted run: err %v, summary %+v, %d entries", err, sum, len(applied))
	}
	if n := len(store.byUser); n != sum.Inserted || n == 0 {
		t.Fatalf("%d profiles after the interrupted run, %d inserted", n, sum.Inserted)
	}

	for run := range 2 {
		applied = applied[:0]
		sum, err = Apply(context.Background(), reader(t, in), dir, dir, store, Options{BatchSize: 10, CreateMissingUsers: true}, func(e Entry) error { applied = append(applied, e); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if sum.Migrate+sum.CreateUser != planned.Migrate+planned.CreateUser || sum.Skip != planned.Skip || sum.Failed != 0 {
			t.Fatalf("run %d: summary %+v, planned %+v", run, sum, planned)
		}
		if run == 1 && (sum.Inserted != 0 || sum.UsersCreated != 0 || sum.Updated != planned.Migrate+planned.CreateUser) {
			t.Fatalf("the third run wrote anew: %+v", sum)
		}
	}
	// Exactly the plan's profiles, with the plan's content.
	written := 0
	for i, e := range want {
		if e.Action == ActionSkip {
			if applied[i].Outcome != OutcomeSkipped {
				t.Errorf("record %d skipped by the plan has outcome %s", i+1, applied[i].Outcome)
			}
			continue
		}
		written++
		id := applied[i].UserID
		got, ok := store.byUser[id]
		if !ok {
			t.Errorf("record %d: no profile", i+1)
			continue
		}
		w := e.Profile()
		w.UserID = id
		if d := Differences(w, got); len(d) > 0 {
			t.Errorf("record %d: %v", i+1, d)
		}
	}
	if len(store.byUser) != written {
		t.Errorf("%d profiles, the plan writes %d", len(store.byUser), written)
	}
	if dir.created != planned.CreateUser {
		t.Errorf("%d users created, planned %d", dir.created, planned.CreateUser)
	}

	before := maps.Clone(dir.calls)
	v, err := Verify(context.Background(), reader(t, in), dir, store, Options{})
	if err != nil || !v.OK() || v.Expected != written || v.Records != 120 || v.TotalProfiles != written {
		t.Fatalf("verify: %v %+v", err, v)
	}
	// The users of the profiles were looked up by id, not again by email.
	for id := range store.byUser {
		for e, u := range dir.byEmail {
			if u.ID == id && dir.calls[e] != before[e] {
				t.Errorf("verify looked %s up by email again", e)
			}
		}
	}
	if dir.idCalls != written {
		t.Errorf("%d lookups by id for %d profiles", dir.idCalls, written)
	}

	// Verify notices what went wrong since.
	var some []string
	for id := range store.byUser {
		some = append(some, id)
	}
	slices.Sort(some)
	changed := store.byUser[some[0]]
	changed.City = "Elsewhere"
	store.byUser[some[0]] = changed
	delete(store.byUser, some[1])
	orphan := contract.NewID()
	store.byUser[orphan] = customer.Customer{UserID: orphan}
	v, err = Verify(context.Background(), reader(t, in), dir, store, Options{})
	if err != nil || v.OK() || v.Mismatched != 1 || v.Missing != 1 || v.OrphanUsers != 1 || v.OrphanList[0].UserID != orphan {
		t.Fatalf("verify after damage: %v %+v", err, v)
	}
	if !strings.Contains(v.MismatchList[0].Detail, "Elsewhere") {
		t.Errorf("mismatch detail %q", v.MismatchList[0].Detail)
	}
}

func TestApplyReportsFailuresPerRecord(t *testing.T) {
	t.Parallel()
	dir := newFakeDirectory("a@example.com", "b@example.com")
	dir.reject["new@example.com"] = true
	store := newFakeStore()
	store.failUser[dir.byEmail["b@example.com"].ID] = true
	in := dumpdata(t, rec("a@example.com", goodAddr), rec("b@example.com", goodAddr), rec("new@example.com", goodAddr), rec("new2@example.com", goodAddr))
	var es []Entry
	sum, err := Apply(context.Background(), reader(t, in), dir, dir, store, Options{CreateMissingUsers: true}, func(e Entry) error { es = append(es, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	got := []Outcome{es[0].Outcome, es[1].Outcome, es[2].Outcome, es[3].Outcome}
	if !slices.Equal(got, []Outcome{OutcomeInserted, OutcomeFailed, OutcomeFailed, OutcomeInserted}) {
		t.Fatalf("outcomes %v", got)
	}
	if !strings.Contains(es[2].Error, "phone_number") || es[3].UserID == "" || !es[3].UserCreated {
		t.Errorf("entries %+v / %+v", es[2], es[3])
	}
	if sum.Failed != 2 || sum.Inserted != 2 || sum.UsersCreated != 1 {
		t.Errorf("summary %+v", sum)
	}
	if _, ok := store.byUser[dir.byEmail["new2@example.com"].ID]; !ok {
		t.Error("the created user has no profile")
	}
}

func TestReportRoundTrip(t *testing.T) {
	t.Parallel()
	dir := newFakeDirectory("a@example.com")
	in := dumpdata(t, rec("a@example.com", goodAddr), rec("b@example.com", "nowhere"))
	var buf strings.Builder
	h := ReportHeader{Command: "plan", Input: "in.json", Format: FormatDumpdata, GeneratedAt: time.Unix(0, 0).UTC()}
	rw, err := NewReportWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Plan(context.Background(), reader(t, in), dir, Options{}, rw.Entry)
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(sum); err != nil {
		t.Fatal(err)
	}
	rep, err := ReadReport(strings.NewReader(buf.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if rep.Command != "plan" || len(rep.Entries) != 2 || rep.Summary.Records != 2 || rep.Entries[1].Problems[0].Code != ProblemAddressUnknown ||
		rep.Entries[0].Address.City != "Portland" || rep.Entries[0].UserID != dir.byEmail["a@example.com"].ID {
		t.Errorf("report %+v", rep)
	}
	text := sum.Text("plan")
	for _, s := range []string{"2 customer records", "skip (see problems):          1", "address_unparsed", "no_auth_user"} {
		if !strings.Contains(text, s) {
			t.Errorf("summary text lacks %q:\n%s", s, text)
		}
	}
}
