// Package mongodb is the customer Store on the official MongoDB driver. It
// runs on MongoDB in production and on FerretDB v1 in development and tests,
// so it only uses what both do: unique indexes for anything contended,
// insert-only service records, $set of the fields sent, countDocuments and
// $group with $sum (a $group with $max is tried and, where the server lacks
// it, replaced by one sorted find per customer).
//
// # Stored documents
//
// Collection "customers", one document per profile:
//
//	_id                             string  the profile id (UUID v4, lower case)
//	user_id                         string  the auth user's UUID, lower case; unique index
//	street_address                  string
//	city                            string  index
//	state                           string  index
//	postal_code                     string
//	country                         string  index
//	company_name                    string
//	business_type                   string  "" or one of customer.BusinessTypes; index
//	tax_id                          string
//	emergency_contact_name          string
//	emergency_contact_phone         string
//	emergency_contact_relationship  string
//	preferred_contact_method        string  "email", "phone" or "sms"
//	notification_preferences        document of booleans, e.g. {email: true, sms: false, marketing: false}
//	is_verified                     bool    index
//	customer_since                  date    index
//	created_at                      date    index {created_at: -1, _id: 1} (the listing order)
//	updated_at                      date
//
// Every field is always present. total_services and last_service_date are
// NOT stored: they are derived when reading from the customer's documents in
// collection "customer_services", one per recorded service (insert-only):
//
//	_id            string  the record id (UUID v4)
//	customer_id    string  the profile's _id
//	key            string  "key:<Idempotency-Key>" or "auto:<_id>"; unique index {customer_id: 1, key: 1}
//	service_type   string
//	notes          string
//	performed_at   date    index {customer_id: 1, performed_at: -1}
//	recorded_by    string  user id of whoever recorded it
//	request_hash   string  hex SHA-256 of the request, to tell a retry from a reuse of its key
//	created_at     date
//
// Dates are BSON dates (UTC, millisecond precision). An import of legacy
// profiles writes customerDoc values (document.go) with upserts keyed by
// user_id, and a legacy service history as serviceDoc records with keys of
// its own (e.g. "legacy:<n>") so a re-run inserts nothing twice.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/customer"
)

// Collection names.
const (
	CustomersCollection = "customers"
	ServicesCollection  = "customer_services"
)

// lastDateLookups bounds the concurrent finds of the $max fallback.
const lastDateLookups = 8

// Store is the customer.Store on a MongoDB database.
type Store struct {
	customers *mongo.Collection
	services  *mongo.Collection
	// noGroupMax is set once the server has answered that $group lacks $max.
	noGroupMax atomic.Bool
}

var _ customer.Store = (*Store)(nil)

// New returns the store on db and creates its indexes.
func New(ctx context.Context, db *mongo.Database) (*Store, error) {
	s := &Store{customers: db.Collection(CustomersCollection), services: db.Collection(ServicesCollection)}
	if err := s.ensureIndexes(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// ensureIndexes creates the indexes one createIndexes command each:
// FerretDB v1 drops the connection when one command names several indexes
// that all exist already, which is the case at every restart.
func (s *Store) ensureIndexes(ctx context.Context) error {
	asc := func(k string) mongo.IndexModel { return mongo.IndexModel{Keys: bson.D{{Key: k, Value: 1}}} }
	for _, ix := range []struct {
		coll  *mongo.Collection
		model mongo.IndexModel
	}{
		{s.customers, mongo.IndexModel{Keys: bson.D{{Key: "user_id", Value: 1}}, Options: options.Index().SetUnique(true).SetName("user_id_unique")}},
		{s.customers, asc("city")},
		{s.customers, asc("state")},
		{s.customers, asc("country")},
		{s.customers, asc("is_verified")},
		{s.customers, asc("business_type")},
		{s.customers, asc("customer_since")},
		{s.customers, mongo.IndexModel{Keys: bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: 1}}}},
		{s.services, mongo.IndexModel{Keys: bson.D{{Key: "customer_id", Value: 1}, {Key: "key", Value: 1}}, Options: options.Index().SetUnique(true).SetName("customer_key_unique")}},
		{s.services, mongo.IndexModel{Keys: bson.D{{Key: "customer_id", Value: 1}, {Key: "performed_at", Value: -1}}}},
	} {
		if _, err := ix.coll.Indexes().CreateOne(ctx, ix.model); err != nil {
			return fmt.Errorf("%s index: %w", ix.coll.Name(), err)
		}
	}
	return nil
}

// Create inserts a profile; a second profile of a user is ErrProfileExists.
func (s *Store) Create(ctx context.Context, c customer.Customer) error {
	if _, err := s.customers.InsertOne(ctx, toCustomerDoc(c)); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return customer.ErrProfileExists
		}
		return fmt.Errorf("insert customer: %w", err)
	}
	return nil
}

// ByID reads a profile by id.
func (s *Store) ByID(ctx context.Context, id string) (customer.Customer, error) {
	return s.one(ctx, bson.D{{Key: "_id", Value: id}})
}

// ByUserID reads a user's profile.
func (s *Store) ByUserID(ctx context.Context, userID string) (customer.Customer, error) {
	return s.one(ctx, bson.D{{Key: "user_id", Value: userID}})
}

func (s *Store) one(ctx context.Context, filter bson.D) (customer.Customer, error) {
	var d customerDoc
	if err := s.customers.FindOne(ctx, filter).Decode(&d); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return customer.Customer{}, customer.ErrNotFound
		}
		return customer.Customer{}, fmt.Errorf("find customer: %w", err)
	}
	cs := []customer.Customer{fromCustomerDoc(d)}
	if err := s.addServiceFigures(ctx, cs); err != nil {
		return customer.Customer{}, err
	}
	return cs[0], nil
}

// Update $sets the fields ch sends and updated_at, never replacing the
// document, and returns the profile as stored afterwards.
func (s *Store) Update(ctx context.Context, c customer.Customer, ch customer.Changes, now time.Time) (customer.Customer, error) {
	res, err := s.customers.UpdateOne(ctx, bson.D{{Key: "_id", Value: c.ID}}, bson.D{{Key: "$set", Value: setOf(ch, now)}})
	if err != nil {
		return customer.Customer{}, fmt.Errorf("update customer: %w", err)
	}
	if res.MatchedCount == 0 {
		return customer.Customer{}, customer.ErrNotFound
	}
	return s.ByID(ctx, c.ID)
}

// Delete removes a profile's service records, then the profile.
func (s *Store) Delete(ctx context.Context, c customer.Customer) error {
	id := c.ID
	// The records first: a delete that fails between the two leaves the
	// profile, so a retry (the client's, or the erasure cascade's, which
	// finds the records through the profile) removes both.
	if _, err := s.services.DeleteMany(ctx, bson.D{{Key: "customer_id", Value: id}}); err != nil {
		return fmt.Errorf("delete service records: %w", err)
	}
	res, err := s.customers.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("delete customer: %w", err)
	}
	if res.DeletedCount == 0 {
		return customer.ErrNotFound
	}
	return nil
}

// filterOf is the query of a listing filter. Search terms are matched
// literally (regex-escaped), case-insensitively.
func filterOf(f customer.Filter) bson.D {
	q := bson.D{}
	eq := func(field, v string) {
		if v != "" {
			q = append(q, bson.E{Key: field, Value: v})
		}
	}
	eq("user_id", f.UserID)
	eq("city", f.City)
	eq("state", f.State)
	eq("country", f.Country)
	eq("business_type", f.BusinessType)
	if f.IsVerified != nil {
		q = append(q, bson.E{Key: "is_verified", Value: *f.IsVerified})
	}
	if f.Search != "" {
		re := bson.D{{Key: "$regex", Value: regexp.QuoteMeta(f.Search)}, {Key: "$options", Value: "i"}}
		or := bson.A{}
		for _, field := range []string{"company_name", "street_address", "city", "state", "postal_code"} {
			or = append(or, bson.D{{Key: field, Value: re}})
		}
		q = append(q, bson.E{Key: "$or", Value: or})
	}
	return q
}

// Count counts the profiles matching f.
func (s *Store) Count(ctx context.Context, f customer.Filter) (int, error) {
	n, err := s.customers.CountDocuments(ctx, filterOf(f))
	if err != nil {
		return 0, fmt.Errorf("count customers: %w", err)
	}
	return int(n), nil
}

// List reads one page of the profiles matching f, newest first.
func (s *Store) List(ctx context.Context, f customer.Filter, offset, limit int) ([]customer.Customer, error) {
	opts := options.Find().
		SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: 1}}).
		SetSkip(int64(offset)).
		SetLimit(int64(limit))
	cur, err := s.customers.Find(ctx, filterOf(f), opts)
	if err != nil {
		return nil, fmt.Errorf("list customers: %w", err)
	}
	var docs []customerDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list customers: %w", err)
	}
	cs := make([]customer.Customer, len(docs))
	for i, d := range docs {
		cs[i] = fromCustomerDoc(d)
	}
	if err := s.addServiceFigures(ctx, cs); err != nil {
		return nil, err
	}
	return cs, nil
}

// figures are the derived service figures of one customer.
type figures struct {
	count int
	last  *time.Time
}

// addServiceFigures sets TotalServices and LastServiceDate of cs from their
// service records, computed by the database.
func (s *Store) addServiceFigures(ctx context.Context, cs []customer.Customer) error {
	if len(cs) == 0 {
		return nil
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	figs, err := s.figures(ctx, ids)
	if err != nil {
		return err
	}
	for i := range cs {
		f := figs[cs[i].ID]
		cs[i].TotalServices = f.count
		cs[i].LastServiceDate = f.last
	}
	return nil
}

// figures groups the service records of ids: the count and the latest
// performed_at per customer, with $max where the server has it.
func (s *Store) figures(ctx context.Context, ids []string) (map[string]figures, error) {
	match := bson.D{{Key: "$match", Value: bson.D{{Key: "customer_id", Value: bson.D{{Key: "$in", Value: ids}}}}}}
	acc := bson.D{{Key: "_id", Value: "$customer_id"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}
	withMax := !s.noGroupMax.Load()
	if withMax {
		acc = append(acc, bson.E{Key: "last", Value: bson.D{{Key: "$max", Value: "$performed_at"}}})
	}
	rows, err := s.group(ctx, mongo.Pipeline{match, {{Key: "$group", Value: acc}}})
	if err != nil && withMax && isNotImplemented(err) {
		s.noGroupMax.Store(true)
		withMax = false
		acc = acc[:2]
		rows, err = s.group(ctx, mongo.Pipeline{match, {{Key: "$group", Value: acc}}})
	}
	if err != nil {
		return nil, fmt.Errorf("service figures: %w", err)
	}
	out := make(map[string]figures, len(rows))
	for _, r := range rows {
		f := figures{count: int(r.N)}
		if withMax && r.Last != nil {
			t := r.Last.UTC()
			f.last = &t
		}
		out[r.ID] = f
	}
	if !withMax {
		if err := s.lastDates(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type groupRow struct {
	ID   string     `bson:"_id"`
	N    int64      `bson:"n"`
	Last *time.Time `bson:"last"`
}

func (s *Store) group(ctx context.Context, p mongo.Pipeline) ([]groupRow, error) {
	cur, err := s.services.Aggregate(ctx, p)
	if err != nil {
		return nil, err
	}
	var rows []groupRow
	if err := cur.All(ctx, &rows); err != nil {
		return nil, err
	}
	return rows, nil
}

// lastDates finds the latest record of each customer that has any, a few
// at a time (for servers whose $group lacks $max).
func (s *Store) lastDates(ctx context.Context, figs map[string]figures) error {
	var ids []string
	for id, f := range figs {
		if f.count > 0 {
			ids = append(ids, id)
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		dates = make(map[string]time.Time, len(ids))
		sem   = make(chan struct{}, lastDateLookups)
	)
	opts := options.FindOne().
		SetSort(bson.D{{Key: "performed_at", Value: -1}}).
		SetProjection(bson.D{{Key: "performed_at", Value: 1}})
	for _, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var d struct {
				PerformedAt time.Time `bson:"performed_at"`
			}
			err := s.services.FindOne(ctx, bson.D{{Key: "customer_id", Value: id}}, opts).Decode(&d)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, mongo.ErrNoDocuments):
			case err != nil:
				errs = append(errs, err)
			default:
				dates[id] = d.PerformedAt.UTC()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("last service dates: %w", errors.Join(errs...))
	}
	for id, t := range dates {
		f := figs[id]
		f.last = &t
		figs[id] = f
	}
	return nil
}

// isNotImplemented reports a server's "not implemented" answer (FerretDB
// code 238) or an unknown group operator (MongoDB code 15952).
func isNotImplemented(err error) bool {
	if se, ok := errors.AsType[mongo.ServerError](err); ok {
		return se.HasErrorCode(238) || se.HasErrorCode(15952)
	}
	return false
}

// AddService inserts a service record under key; when the customer already
// has a record under key, that one is returned with created false.
func (s *Store) AddService(ctx context.Context, _ customer.Customer, r customer.ServiceRecord, key string) (customer.ServiceRecord, bool, error) {
	_, err := s.services.InsertOne(ctx, toServiceDoc(r, key))
	if err == nil {
		return r, true, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return customer.ServiceRecord{}, false, fmt.Errorf("insert service record: %w", err)
	}
	var d serviceDoc
	if err := s.services.FindOne(ctx, bson.D{{Key: "customer_id", Value: r.CustomerID}, {Key: "key", Value: key}}).Decode(&d); err != nil {
		return customer.ServiceRecord{}, false, fmt.Errorf("find service record by key: %w", err)
	}
	return fromServiceDoc(d), false, nil
}

// CountServices counts a customer's service records.
func (s *Store) CountServices(ctx context.Context, customerID string) (int, error) {
	n, err := s.services.CountDocuments(ctx, bson.D{{Key: "customer_id", Value: customerID}})
	if err != nil {
		return 0, fmt.Errorf("count service records: %w", err)
	}
	return int(n), nil
}

// Services reads one page of a customer's service records, newest first.
func (s *Store) Services(ctx context.Context, customerID string, offset, limit int) ([]customer.ServiceRecord, error) {
	opts := options.Find().
		SetSort(bson.D{{Key: "performed_at", Value: -1}, {Key: "created_at", Value: -1}, {Key: "_id", Value: 1}}).
		SetSkip(int64(offset)).
		SetLimit(int64(limit))
	cur, err := s.services.Find(ctx, bson.D{{Key: "customer_id", Value: customerID}}, opts)
	if err != nil {
		return nil, fmt.Errorf("list service records: %w", err)
	}
	var docs []serviceDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list service records: %w", err)
	}
	out := make([]customer.ServiceRecord, len(docs))
	for i, d := range docs {
		out[i] = fromServiceDoc(d)
	}
	return out, nil
}

// Stats computes the staff's figures with one countDocuments per figure and
// one $group for the breakdown by country.
func (s *Store) Stats(ctx context.Context, since time.Time) (customer.Stats, error) {
	var st customer.Stats
	counts := []struct {
		dst    *int
		coll   *mongo.Collection
		filter bson.D
	}{
		{&st.TotalCustomers, s.customers, bson.D{}},
		{&st.VerifiedCustomers, s.customers, bson.D{{Key: "is_verified", Value: true}}},
		{&st.BusinessCustomers, s.customers, bson.D{{Key: "business_type", Value: bson.D{{Key: "$nin", Value: bson.A{"", "individual"}}}}}},
		{&st.NewLast30Days, s.customers, bson.D{{Key: "customer_since", Value: bson.D{{Key: "$gte", Value: since.UTC()}}}}},
		{&st.TotalServices, s.services, bson.D{}},
	}
	for _, c := range counts {
		n, err := c.coll.CountDocuments(ctx, c.filter)
		if err != nil {
			return customer.Stats{}, fmt.Errorf("stats: %w", err)
		}
		*c.dst = int(n)
	}
	cur, err := s.customers.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$country"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
	})
	if err != nil {
		return customer.Stats{}, fmt.Errorf("stats by country: %w", err)
	}
	var rows []struct {
		Country string `bson:"_id"`
		N       int64  `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return customer.Stats{}, fmt.Errorf("stats by country: %w", err)
	}
	st.CustomersByCountry = make(map[string]int, len(rows))
	for _, r := range rows {
		st.CustomersByCountry[r.Country] += int(r.N)
	}
	return st, nil
}
