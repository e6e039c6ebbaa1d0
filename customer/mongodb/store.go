// Package mongodb is the customer Store on the official MongoDB driver. It
// runs on MongoDB in production and on FerretDB v1 in development and tests,
// so it only uses what both do: unique keys (an insert that fails with a
// duplicate key) for anything contended, insert-only service records, $set
// of the fields sent. Every lookup of a hot path is a lone {_id: value}
// equality, the only filter FerretDB v1 answers without reading the whole
// collection (docs/indexes.md lists each query and its index).
//
// # Stored documents
//
// Collection "customers", one document per profile:
//
//	_id                             string  the profile id: customer.ProfileID(user_id) (UUID v5), or
//	                                        the random UUID v4 of a profile created before it (a "legacy" id)
//	user_id                         string  the auth user's UUID, lower case; unique index
//	service_series                  string  names the profile's service history (absent: the _id)
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
// Every field but service_series is always present. A user's profile is
// found by _id: ProfileID(user_id) first, then, on a miss, through
// collection "customer_aliases", one document {_id: user_id, customer_id}
// per profile whose _id is a legacy id (written by Create and backfilled by
// New for profiles that have none).
//
// total_services and last_service_date are NOT stored on the profile: they
// are read from the customer's service records in collection
// "customer_services", one insert-only document per recorded service, in
// numbered slots of the profile's series (records.go):
//
//	_id                string  "<series>/<n>", n = 1, 2, 3 ... without gaps
//	customer_id        string  the profile's _id
//	series             string
//	n                  int
//	key                string  "<series>/key:<Idempotency-Key>", "<series>/auto:<record id>" or
//	                           "<series>/<key of a converted record>"; unique index {customer_id: 1, key: 1}
//	key_doc            bool    a key document names the record (see below)
//	record_id          string  the record's id (UUID v4)
//	service_type       string
//	notes              string
//	performed_at       date    index {customer_id: 1, performed_at: -1} (kept for replicas of the previous version)
//	recorded_by        string  user id of whoever recorded it
//	request_hash       string  hex SHA-256 of the request, to tell a retry from a reuse of its key
//	created_at         date
//	last_performed_at  date    the latest performed_at of slots 1..n (the running max)
//	in_order           bool    performed_at never decreased over slots 1..n
//
// The count of a series is its highest slot, found by probing slots by _id
// from the hint {_id: series, n} in "customer_service_hints"; a request with
// an Idempotency-Key first inserts {_id: "<series>#key:<key>", from} into
// "customer_service_keys". Records of the previous shape (no series: one
// document per record with a random _id) are converted by New.
//
// Dates are BSON dates (UTC, millisecond precision). An import of legacy
// profiles writes customerDoc values (document.go) with upserts keyed by
// _id.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
)

// Collection names.
const (
	CustomersCollection    = "customers"
	AliasesCollection      = "customer_aliases"
	ServicesCollection     = "customer_services"
	ServiceKeysCollection  = "customer_service_keys"
	ServiceHintsCollection = "customer_service_hints"
)

// lookups bounds the concurrent lookups of one call (the figures of a
// listed page, the records of a listing, the profiles of an import chunk).
const lookups = 8

// Store is the customer.Store on a MongoDB database.
type Store struct {
	customers *mongo.Collection
	aliases   *mongo.Collection
	services  *mongo.Collection
	keys      *mongo.Collection
	hints     *mongo.Collection
	stats     *mongo.Collection // the staff's figures (figures.go)
	pending   *mongo.Collection // the intents of the writes in flight (pending.go)
	fig       figuresState
	now       func() time.Time
	hook      func(step string, after bool) error // tests: see at
	upgraded  UpgradeResult                       // what New's Upgrade did
}

var _ customer.Store = (*Store)(nil)

// New returns the store on db: it creates the indexes and brings data of
// the previous shape up to date (Upgrade), which is idempotent and safe
// while other replicas serve.
func New(ctx context.Context, db *mongo.Database) (*Store, error) {
	s := &Store{
		customers: db.Collection(CustomersCollection),
		aliases:   db.Collection(AliasesCollection),
		services:  db.Collection(ServicesCollection),
		keys:      db.Collection(ServiceKeysCollection),
		hints:     db.Collection(ServiceHintsCollection),
		stats:     db.Collection(StatsCollection),
		pending:   db.Collection(PendingCollection),
		now:       time.Now,
	}
	if err := s.ensureIndexes(ctx); err != nil {
		return nil, err
	}
	up, err := s.Upgrade(ctx)
	if err != nil {
		return nil, err
	}
	s.upgraded = up
	if err := s.countFirst(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// countFirst counts the figures when there are none yet (a new database,
// the first start of this version), unless writes are in flight. Figures
// that are there but not exact (after an import) are left to the
// reconciler (Maintain): a start does not read every profile again.
func (s *Store) countFirst(ctx context.Context) error {
	c, err := s.figures(ctx)
	if err != nil || c != (current{}) {
		return err
	}
	if _, err := s.Recount(ctx, s.now()); err != nil && !errors.Is(err, ErrRecountBusy) {
		return err
	}
	return nil
}

// Upgraded returns what New's Upgrade did (for the start's log).
func (s *Store) Upgraded() UpgradeResult { return s.upgraded }

// ensureIndexes creates the indexes one createIndexes command each:
// FerretDB v1 drops the connection when one command names several indexes
// that all exist already, which is the case at every restart. The two
// indexes of customer_services serve only the replicas of the previous
// version during a rolling upgrade (this version reads records by _id).
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
		{s.stats, mongo.IndexModel{Keys: bson.D{{Key: "change", Value: 1}}, Options: options.Index().SetUnique(true).SetName("change_unique")}},
		{s.stats, mongo.IndexModel{Keys: bson.D{{Key: "stripe", Value: 1}, {Key: "n", Value: 1}}}},
		{s.pending, asc("expires")},
		{s.pending, mongo.IndexModel{Keys: bson.D{{Key: "series", Value: 1}, {Key: "op", Value: 1}}}},
	} {
		if _, err := ix.coll.Indexes().CreateOne(ctx, ix.model); err != nil {
			return fmt.Errorf("%s index: %w", ix.coll.Name(), err)
		}
	}
	return nil
}

// byID is the filter of a lone _id.
func byID(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }

// Create inserts a profile and counts it, under its intent (pending.go);
// a second profile of a user is ErrProfileExists. A profile whose id is
// not ProfileID(user id) (an import's, a test's) gets its alias after it
// is inserted. The profile gets a new service series.
func (s *Store) Create(ctx context.Context, c customer.Customer) error {
	d := toCustomerDoc(c)
	if d.ServiceSeries == "" {
		d.ServiceSeries = contract.NewID()
	}
	k := keyOf(d)
	p := pendingDoc{ID: c.ID, Change: opCreate + "/" + d.ServiceSeries, Op: opCreate, CustomerID: c.ID, UserID: c.UserID, Series: d.ServiceSeries, Planned: true, Key: &k}
	if err := s.lock(ctx, &p); err != nil {
		return err
	}
	ctx, cancel := s.writing(ctx, p)
	defer cancel()
	if err := s.at("profile", func() (err error) { _, err = s.customers.InsertOne(ctx, d); return err }); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			s.release(ctx, p)
			s.healAlias(ctx, c.UserID)
			return customer.ErrProfileExists
		}
		return fmt.Errorf("insert customer: %w", err) // the intent finds out whether it was
	}
	if err := s.countChange(ctx, change{id: p.Change, add: &k}, s.now()); err != nil {
		return err
	}
	if c.ID != customer.ProfileID(c.UserID) {
		if err := s.at("alias", func() error { return s.putAlias(ctx, c.UserID, c.ID) }); err != nil {
			return err
		}
	}
	s.release(ctx, p)
	return nil
}

// ByID reads a profile by id.
func (s *Store) ByID(ctx context.Context, id string) (customer.Customer, error) {
	d, err := s.profileDoc(ctx, id)
	if err != nil {
		return customer.Customer{}, err
	}
	return s.withFigures(ctx, d)
}

// ByUserID reads a user's profile: by its derived id, else through the
// user's alias (a profile with a legacy id): one to three lookups by _id.
func (s *Store) ByUserID(ctx context.Context, userID string) (customer.Customer, error) {
	d, err := s.resolve(ctx, userID)
	if err != nil {
		return customer.Customer{}, err
	}
	return s.withFigures(ctx, d)
}

// profileDoc reads one profile document by _id.
func (s *Store) profileDoc(ctx context.Context, id string) (customerDoc, error) {
	var d customerDoc
	if err := s.customers.FindOne(ctx, byID(id)).Decode(&d); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return customerDoc{}, customer.ErrNotFound
		}
		return customerDoc{}, fmt.Errorf("find customer: %w", err)
	}
	return d, nil
}

// aliasDoc names the profile of a user whose profile id is not derived
// from the user id.
type aliasDoc struct {
	UserID     string `bson:"_id"`
	CustomerID string `bson:"customer_id"`
}

// resolve finds the profile document of a user by _id lookups only: the
// derived id, then the alias. A profile with a legacy id and no alias (one
// an older version created after this one's start) is not found until the
// next start's backfill or healAlias.
func (s *Store) resolve(ctx context.Context, userID string) (customerDoc, error) {
	d, err := s.profileDoc(ctx, customer.ProfileID(userID))
	switch {
	case err == nil && d.UserID == userID:
		return d, nil
	case err != nil && !errors.Is(err, customer.ErrNotFound):
		return customerDoc{}, err
	}
	var a aliasDoc
	if err := s.aliases.FindOne(ctx, byID(userID)).Decode(&a); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return customerDoc{}, customer.ErrNotFound
		}
		return customerDoc{}, fmt.Errorf("find customer alias: %w", err)
	}
	d, err = s.profileDoc(ctx, a.CustomerID)
	if err != nil {
		return customerDoc{}, err
	}
	if d.UserID != userID { // a stale alias
		return customerDoc{}, customer.ErrNotFound
	}
	return d, nil
}

// putAlias writes the alias of a user's profile (an upsert by _id; two
// writers of one alias write the same thing, so a lost race is retried
// once and otherwise ignored).
func (s *Store) putAlias(ctx context.Context, userID, customerID string) error {
	var err error
	for range 2 {
		_, err = s.aliases.ReplaceOne(ctx, byID(userID), aliasDoc{UserID: userID, CustomerID: customerID}, options.Replace().SetUpsert(true))
		if err == nil || !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("write customer alias: %w", err)
	}
	return nil
}

// healAlias runs when a user's profile could not be created because one
// exists: if the _id lookups do not find it (a profile with a legacy id
// that has no alias yet, written by a replica of the previous version), it
// is found by user_id, a scan on FerretDB but only on this rare path, and
// given its alias, so the user sees the profile the create refused over.
// Best effort: a failure leaves it to the next start's backfill.
func (s *Store) healAlias(ctx context.Context, userID string) {
	if _, err := s.resolve(ctx, userID); !errors.Is(err, customer.ErrNotFound) {
		return
	}
	var d struct {
		ID string `bson:"_id"`
	}
	err := s.customers.FindOne(ctx, bson.D{{Key: "user_id", Value: userID}}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&d)
	if err == nil && d.ID != customer.ProfileID(userID) {
		_ = s.putAlias(ctx, userID, d.ID)
	}
}

// Update $sets the fields ch sends and updated_at, never replacing the
// document, and returns the profile as stored afterwards. It holds the
// profile's intent (pending.go). When ch changes a counted field, it reads
// the profile's key and records it in the intent (the plan), counts the
// key's change, then writes; otherwise the intent is its plan and it
// writes at once.
func (s *Store) Update(ctx context.Context, c customer.Customer, ch customer.Changes, now time.Time) (customer.Customer, error) {
	set := bson.M(setOf(ch, now))
	counted := ch.Country != nil || ch.IsVerified != nil || ch.BusinessType != nil
	p := pendingDoc{ID: c.ID, Change: newChange(opUpdate), Op: opUpdate, CustomerID: c.ID, Set: set, Planned: !counted}
	if err := s.lock(ctx, &p); err != nil {
		return customer.Customer{}, err
	}
	wctx, cancel := s.writing(ctx, p)
	defer cancel()
	if counted {
		d, err := s.profileDoc(wctx, c.ID)
		if err != nil {
			s.release(ctx, p)
			return customer.Customer{}, err
		}
		k := keyOf(d)
		p.Key = &k
		if err := s.plan(wctx, &p); err != nil {
			return customer.Customer{}, err
		}
	}
	found, err := s.applyUpdate(wctx, p, now)
	if err != nil {
		return customer.Customer{}, err
	}
	s.release(ctx, p)
	if !found {
		return customer.Customer{}, customer.ErrNotFound
	}
	return s.ByID(ctx, c.ID)
}

// Delete removes a profile, its service records and its alias, and counts
// it, under its intent (pending.go): it reads the profile and its record
// count, waits for the records in flight, records both, counts the
// deletion, then deletes (applyDelete). The records go first: a delete
// that stops between the two leaves the profile, and the intent's
// roll-forward (or a retry, the erasure cascade's) finishes it. The
// profile's series dies with it: a profile created again for the user
// starts a new one, so a record inserted by a request that raced this
// delete stays out of its count.
func (s *Store) Delete(ctx context.Context, c customer.Customer) error {
	p := pendingDoc{ID: c.ID, Change: newChange(opDelete), Op: opDelete, CustomerID: c.ID}
	if err := s.lock(ctx, &p); err != nil {
		return err
	}
	err := func() error {
		d, err := s.profileDoc(ctx, c.ID)
		if err != nil {
			return err
		}
		// The records in flight land first (so they are deleted too); the
		// count is read, then any record that was inserted before it is
		// waited for, so each is counted before the delete takes it away.
		// Each wait is shorter than the lease, which is renewed after it.
		settle := func() error {
			if err := s.awaitServices(ctx, d.series()); err != nil {
				return err
			}
			return s.renew(ctx, &p)
		}
		if err := settle(); err != nil {
			return err
		}
		n, _, err := s.count(ctx, d.series())
		if err != nil {
			return err
		}
		if err := settle(); err != nil {
			return err
		}
		k := keyOf(d)
		p.Key, p.Series, p.UserID, p.Records = &k, d.series(), d.UserID, n
		return nil
	}()
	if err != nil {
		s.release(ctx, p)
		return err
	}
	ctx, cancel := s.writing(ctx, p)
	defer cancel()
	if err := s.plan(ctx, &p); err != nil {
		return err
	}
	if err := s.applyDelete(ctx, p, s.now(), false); err != nil {
		return err
	}
	s.release(ctx, p)
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

// Count counts the profiles matching f: without a filter, the counters'
// total when they are exact.
func (s *Store) Count(ctx context.Context, f customer.Filter) (int, error) {
	if f == (customer.Filter{}) {
		c, err := s.figures(ctx)
		if err != nil {
			return 0, fmt.Errorf("count customers: %w", err)
		}
		if c.exact() {
			return int(c.sum().customers), nil
		}
	}
	n, err := s.customers.CountDocuments(ctx, filterOf(f))
	if err != nil {
		return 0, fmt.Errorf("count customers: %w", err)
	}
	return int(n), nil
}

// List reads one page of the profiles matching f, newest first, each with
// its service figures (a few lookups by _id per profile, a few profiles at
// a time).
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
	err = each(ctx, len(docs), func(ctx context.Context, i int) error {
		var err error
		cs[i], err = s.withFigures(ctx, docs[i])
		return err
	})
	if err != nil {
		return nil, err
	}
	return cs, nil
}

// Stats returns the staff's figures from the last slot of the counters
// (figures.go): a few lookups by _id, whatever the number of profiles.
// While the counters are not exact (before the first recount, during an
// import) they are counted from the collections instead.
func (s *Store) Stats(ctx context.Context, since time.Time) (customer.Stats, error) {
	c, err := s.figures(ctx)
	if err != nil {
		return customer.Stats{}, fmt.Errorf("stats: %w", err)
	}
	if c.exact() {
		return c.sum().figures(s.now()).stats(since), nil
	}
	f, err := s.scanFigures(ctx, s.now())
	if err != nil {
		return customer.Stats{}, fmt.Errorf("stats: %w", err)
	}
	return f.stats(since), nil
}
