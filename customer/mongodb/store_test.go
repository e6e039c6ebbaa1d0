package mongodb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func newStore(t *testing.T) (*Store, *mongo.Database) {
	t.Helper()
	_, db := testenv.Mongo(t)
	s, err := New(context.Background(), db)
	testenv.Must(t, err, "new store")
	return s, db
}

var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func profile(userID string, at time.Time) customer.Customer {
	return customer.Customer{
		ID:                      contract.NewID(),
		UserID:                  userID,
		Address:                 customer.Address{StreetAddress: "1 Main St", City: "Springfield", State: "IL", PostalCode: "62701", Country: "USA"},
		PreferredContactMethod:  "email",
		NotificationPreferences: customer.DefaultNotificationPreferences(),
		CustomerSince:           at,
		CreatedAt:               at,
		UpdatedAt:               at,
	}
}

func TestCreateAndReadBack(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	c := profile(contract.NewID(), base)
	c.CompanyName = "Acme"
	c.EmergencyContact = customer.EmergencyContact{Name: "Ann", Phone: "+1 555 0100", Relationship: "sister"}
	testenv.Must(t, s.Create(ctx, c), "create")

	got, err := s.ByID(ctx, c.ID)
	testenv.Must(t, err, "by id")
	if got.CompanyName != "Acme" || got.EmergencyContact != c.EmergencyContact || !got.CreatedAt.Equal(base) || got.TotalServices != 0 || got.LastServiceDate != nil {
		t.Fatalf("read back %+v", got)
	}
	if got2, err := s.ByUserID(ctx, c.UserID); err != nil || got2.ID != c.ID {
		t.Fatalf("by user id: %v %+v", err, got2)
	}
	if _, err := s.ByID(ctx, contract.NewID()); !errors.Is(err, customer.ErrNotFound) {
		t.Fatalf("missing id: %v", err)
	}
	if _, err := s.ByUserID(ctx, contract.NewID()); !errors.Is(err, customer.ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}

	// The stored shape documented in the package comment.
	raw, err := db.Collection(CustomersCollection).FindOne(ctx, bson.D{{Key: "_id", Value: c.ID}}).Raw()
	testenv.Must(t, err, "raw")
	want := map[string]bsontype.Type{
		"_id": bson.TypeString, "user_id": bson.TypeString, "city": bson.TypeString, "notification_preferences": bson.TypeEmbeddedDocument,
		"is_verified": bson.TypeBoolean, "customer_since": bson.TypeDateTime, "created_at": bson.TypeDateTime, "updated_at": bson.TypeDateTime,
	}
	for k, typ := range want {
		if v, err := raw.LookupErr(k); err != nil || v.Type != typ {
			t.Errorf("stored %s: %v (type %v), want %v", k, err, v.Type, typ)
		}
	}
	for _, derived := range []string{"total_services", "last_service_date"} {
		if _, err := raw.LookupErr(derived); err == nil {
			t.Errorf("%s is stored; it must be derived", derived)
		}
	}
}

// TestNewOnExistingDatabase: a restart finds its indexes in place.
func TestNewOnExistingDatabase(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	testenv.Must(t, s.Create(ctx, profile(contract.NewID(), base)), "create")
	for range 2 {
		again, err := New(ctx, db)
		testenv.Must(t, err, "new on an existing database")
		if n, err := again.Count(ctx, customer.Filter{}); err != nil || n != 1 {
			t.Fatalf("count %d, %v", n, err)
		}
	}
}

func TestConcurrentCreateOneWinner(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	user := contract.NewID()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Create(ctx, profile(user, base)) })
	}
	wg.Wait()
	ok, dup := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, customer.ErrProfileExists):
			dup++
		default:
			t.Errorf("create: %v", err)
		}
	}
	n, err := db.Collection(CustomersCollection).CountDocuments(ctx, bson.D{{Key: "user_id", Value: user}})
	testenv.Must(t, err, "count")
	if ok != 1 || dup != 19 || n != 1 {
		t.Fatalf("ok=%d dup=%d docs=%d, want 1, 19, 1", ok, dup, n)
	}
}

func TestUpdateSetsOnlyFieldsSent(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	c := profile(contract.NewID(), base)
	c.CompanyName = "Keep Me"
	testenv.Must(t, s.Create(ctx, c), "create")

	city, later := "Shelbyville", base.Add(time.Hour)
	got, err := s.Update(ctx, c, customer.Changes{City: &city, NotificationPreferences: map[string]bool{"sms": true}}, later)
	testenv.Must(t, err, "update")
	if got.City != city || got.CompanyName != "Keep Me" || got.StreetAddress != c.StreetAddress || !got.UpdatedAt.Equal(later) || !got.CreatedAt.Equal(base) {
		t.Fatalf("after update: %+v", got)
	}
	if len(got.NotificationPreferences) != 1 || !got.NotificationPreferences["sms"] {
		t.Fatalf("preferences: %v", got.NotificationPreferences)
	}
	if _, err := s.Update(ctx, customer.Customer{ID: contract.NewID()}, customer.Changes{City: &city}, later); !errors.Is(err, customer.ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
}

func TestServiceRecordsConcurrentAndIdempotent(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	c := profile(contract.NewID(), base)
	testenv.Must(t, s.Create(ctx, c), "create")

	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Go(func() {
			r := customer.ServiceRecord{ID: contract.NewID(), CustomerID: c.ID, PerformedAt: base.Add(time.Duration(i) * time.Minute), CreatedAt: base}
			_, created, err := s.AddService(ctx, c, r, "auto:"+r.ID)
			if err == nil && !created {
				err = fmt.Errorf("record %d not created", i)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	testenv.Must(t, errors.Join(errs...), "add services")

	got, err := s.ByID(ctx, c.ID)
	testenv.Must(t, err, "by id")
	if got.TotalServices != 50 || got.LastServiceDate == nil || !got.LastServiceDate.Equal(base.Add(49*time.Minute)) {
		t.Fatalf("total=%d last=%v", got.TotalServices, got.LastServiceDate)
	}

	first := customer.ServiceRecord{ID: contract.NewID(), CustomerID: c.ID, PerformedAt: base, CreatedAt: base, RequestHash: "h1"}
	r1, created1, err := s.AddService(ctx, c, first, "key:abc")
	testenv.Must(t, err, "keyed")
	retry := first
	retry.ID = contract.NewID()
	r2, created2, err := s.AddService(ctx, c, retry, "key:abc")
	testenv.Must(t, err, "retry")
	if !created1 || created2 || r2.ID != r1.ID || r2.RequestHash != "h1" {
		t.Fatalf("retry: created %v/%v ids %s/%s", created1, created2, r1.ID, r2.ID)
	}
	// The same key on another customer is another record.
	other := profile(contract.NewID(), base)
	testenv.Must(t, s.Create(ctx, other), "create other")
	if _, created, err := s.AddService(ctx, other, customer.ServiceRecord{ID: contract.NewID(), CustomerID: other.ID, PerformedAt: base, CreatedAt: base}, "key:abc"); err != nil || !created {
		t.Fatalf("same key, other customer: %v created=%v", err, created)
	}
	if n, _ := s.CountServices(ctx, c.ID); n != 51 {
		t.Fatalf("records = %d, want 51", n)
	}
	page, err := s.Services(ctx, c.ID, 0, 3)
	testenv.Must(t, err, "services")
	if len(page) != 3 || !page[0].PerformedAt.Equal(base.Add(49*time.Minute)) || !page[1].PerformedAt.Equal(base.Add(48*time.Minute)) {
		t.Fatalf("newest first: %+v", page)
	}

	testenv.Must(t, s.Delete(ctx, c), "delete")
	if n, _ := db.Collection(ServicesCollection).CountDocuments(ctx, bson.D{{Key: "customer_id", Value: c.ID}}); n != 0 {
		t.Fatalf("%d service records left after delete", n)
	}
	if err := s.Delete(ctx, c); !errors.Is(err, customer.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestListFiltersSearchAndStats(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	seed := []struct {
		city, state, country, company, business, postal string
		verified                                        bool
		age                                             time.Duration
	}{
		{"Springfield", "IL", "USA", "Acme (Holdings)", "llc", "62701", true, 1},
		{"Springfield", "MA", "USA", "", "individual", "01101", false, 2},
		{"Boston", "MA", "USA", "Beacon Corp", "corporation", "02108", true, 3},
		{"Toronto", "ON", "Canada", "Maple.Co", "", "M5H 2N2", false, 40 * 24},
		{"Paris", "", "France", "acme europe", "nonprofit", "75001", false, 50 * 24},
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	ids := make([]string, len(seed))
	for i, p := range seed {
		c := profile(contract.NewID(), now.Add(-p.age*time.Hour))
		c.City, c.State, c.Country, c.CompanyName, c.BusinessType, c.PostalCode, c.IsVerified = p.city, p.state, p.country, p.company, p.business, p.postal, p.verified
		testenv.Must(t, s.Create(ctx, c), "seed")
		ids[i] = c.ID
	}
	for i := range 3 {
		_, _, err := s.AddService(ctx, customer.Customer{ID: ids[0]}, customer.ServiceRecord{ID: contract.NewID(), CustomerID: ids[0], PerformedAt: now, CreatedAt: now}, fmt.Sprint("auto:", i))
		testenv.Must(t, err, "service")
	}
	yes, no := true, false
	for _, tc := range []struct {
		name string
		f    customer.Filter
		want []int // seed indexes, newest first
	}{
		{"all", customer.Filter{}, []int{0, 1, 2, 3, 4}},
		{"city", customer.Filter{City: "Springfield"}, []int{0, 1}},
		{"state", customer.Filter{State: "MA"}, []int{1, 2}},
		{"country", customer.Filter{Country: "Canada"}, []int{3}},
		{"verified", customer.Filter{IsVerified: &yes}, []int{0, 2}},
		{"not verified", customer.Filter{IsVerified: &no}, []int{1, 3, 4}},
		{"business type", customer.Filter{BusinessType: "llc"}, []int{0}},
		{"search company case-insensitive", customer.Filter{Search: "ACME"}, []int{0, 4}},
		{"search regex chars are literal", customer.Filter{Search: "(holdings)"}, []int{0}},
		{"search dot is literal", customer.Filter{Search: "e.c"}, []int{3}},
		{"search wildcard finds nothing", customer.Filter{Search: ".*"}, nil},
		{"search postal code", customer.Filter{Search: "0210"}, []int{2}},
		{"search street", customer.Filter{Search: "main st"}, []int{0, 1, 2, 3, 4}},
		{"combined", customer.Filter{City: "Springfield", IsVerified: &yes}, []int{0}},
		{"own only", customer.Filter{UserID: "nobody"}, nil},
	} {
		n, err := s.Count(ctx, tc.f)
		testenv.Must(t, err, "count %s", tc.name)
		got, err := s.List(ctx, tc.f, 0, 100)
		testenv.Must(t, err, "list %s", tc.name)
		if n != len(tc.want) || len(got) != len(tc.want) {
			t.Errorf("%s: count %d, %d listed, want %d", tc.name, n, len(got), len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if got[i].ID != ids[w] {
				t.Errorf("%s: item %d is %s, want seed %d", tc.name, i, got[i].City, w)
			}
		}
	}
	page, err := s.List(ctx, customer.Filter{}, 1, 2)
	testenv.Must(t, err, "page")
	if len(page) != 2 || page[0].ID != ids[1] || page[1].ID != ids[2] {
		t.Fatalf("offset page wrong")
	}
	if page, _ := s.List(ctx, customer.Filter{City: "Springfield"}, 0, 10); page[0].TotalServices != 3 || page[0].LastServiceDate == nil || !page[0].LastServiceDate.Equal(now) || page[1].TotalServices != 0 {
		t.Fatalf("figures in list: %+v", page)
	}

	st, err := s.Stats(ctx, now.Add(-30*24*time.Hour))
	testenv.Must(t, err, "stats")
	if st.TotalCustomers != 5 || st.VerifiedCustomers != 2 || st.BusinessCustomers != 3 || st.TotalServices != 3 || st.NewLast30Days != 3 {
		t.Fatalf("stats %+v", st)
	}
	if len(st.CustomersByCountry) != 3 || st.CustomersByCountry["USA"] != 3 || st.CustomersByCountry["Canada"] != 1 || st.CustomersByCountry["France"] != 1 {
		t.Fatalf("by country %v", st.CustomersByCountry)
	}
}
