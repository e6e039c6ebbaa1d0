package mongodb

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/mongodb"
)

// The staff's figures (Stats) are counters kept in collection
// "customer_stats" as numbered slots, like a series of service records,
// in a few stripes: slot n of stripe k is the document {_id: "<k>/<n>"},
// inserted once and never changed, holding that stripe's figures after
// its n-th change. A change of the figures (a profile created, changed,
// deleted; a service recorded) goes to the stripe its id hashes to: it
// reads that stripe's last slot n and inserts slot n+1 = slot n + the
// change; a duplicate key means another change took n+1 first, and it
// starts again from there. The figures are the sum of the stripes' last
// slots. So they are exact under any concurrency, every read is by _id,
// reading them costs a few lookups whatever the number of profiles, and
// concurrent writers contend for a slot only within a stripe.
//
// Each slot names its change (unique index on change), so a change that
// is applied again (a retry, a recovery) is counted once: its insert fails
// on the change's index, and the slot it would have followed is still the
// last, or the change is found in a slot after it.
//
// A change's figures and its profile write are two writes: the profile
// write goes under an intent in "customer_stats_pending" (pending.go)
// that is the profile's lock and the record to finish the change from if
// the writer stops half-way. The figures are also recounted from the
// collections (Recount): at the first start, after an import, and each
// hour as a check, which corrects and reports any difference.

// StatsCollection and PendingCollection hold the staff's figures and the
// intents of the changes in flight.
const (
	StatsCollection   = "customer_stats"
	PendingCollection = "customer_stats_pending"
)

// sinceWindow is how far back the figures keep the profiles per hour of
// customer_since: the 30 days of new_last_30_days, and a day to spare for
// clocks and the hour the window starts in.
const sinceWindow = 31 * 24 * time.Hour

// stripes is the number of stripes: a read of the figures reads each
// stripe's last slot (at once), and concurrent changes contend for a slot
// only when they hash to the same stripe.
const stripes = 8

// keepSlots and keepFor bound the sweep of old slots: a slot is deleted
// only when it is both this many slots behind the last and this old, so a
// change recovered or retried later than that is the only one that could
// be counted twice (and the hourly recount would correct it).
const (
	keepSlots = 200
	keepFor   = time.Hour
)

// profileKey is what one profile adds to the figures.
type profileKey struct {
	Country  string `bson:"country"`
	Verified bool   `bson:"verified"`
	Business bool   `bson:"business"`
	Hour     int64  `bson:"hour"` // customer_since in hours since the Unix epoch
}

// keyOf is the key of a stored profile. A business is a profile whose
// business_type is neither empty nor "individual".
func keyOf(d customerDoc) profileKey {
	return profileKey{
		Country:  d.Country,
		Verified: d.IsVerified,
		Business: isBusiness(d.BusinessType),
		Hour:     hourOf(d.CustomerSince),
	}
}

func isBusiness(t string) bool { return t != "" && t != "individual" }

func hourOf(t time.Time) int64 { return t.UTC().Truncate(time.Hour).Unix() / 3600 }

// with is k after the $set of an update.
func (k profileKey) with(set bson.M) profileKey {
	if v, ok := set["country"].(string); ok {
		k.Country = v
	}
	if v, ok := set["is_verified"].(bool); ok {
		k.Verified = v
	}
	if v, ok := set["business_type"].(string); ok {
		k.Business = isBusiness(v)
	}
	return k
}

// figures are the counters of a slot. Countries and hours are kept as
// parallel arrays (a country is user input, never a field name).
type figures struct {
	Customers int64    `bson:"customers"`
	Verified  int64    `bson:"verified"`
	Business  int64    `bson:"business"`
	Services  int64    `bson:"services"`
	Countries []string `bson:"countries"`
	CountryN  []int64  `bson:"country_n"`
	Hours     []int64  `bson:"hours"` // hours of customer_since, ascending, within sinceWindow
	HourN     []int64  `bson:"hour_n"`
}

// tally is figures in maps, to change them.
type tally struct {
	customers, verified, business, services int64
	countries                               map[string]int64
	hours                                   map[int64]int64
}

func (f figures) tally() tally {
	t := tally{customers: f.Customers, verified: f.Verified, business: f.Business, services: f.Services,
		countries: make(map[string]int64, len(f.Countries)), hours: make(map[int64]int64, len(f.Hours))}
	for i, c := range f.Countries {
		if i < len(f.CountryN) {
			t.countries[c] = f.CountryN[i]
		}
	}
	for i, h := range f.Hours {
		if i < len(f.HourN) {
			t.hours[h] = f.HourN[i]
		}
	}
	return t
}

// count adds k once (sign 1) or takes it away (sign -1).
func (t *tally) count(k profileKey, sign int64) {
	t.customers += sign
	if k.Verified {
		t.verified += sign
	}
	if k.Business {
		t.business += sign
	}
	t.countries[k.Country] += sign
	t.hours[k.Hour] += sign
}

// add adds u to t (sign 1) or takes it away (sign -1).
func (t *tally) add(u tally, sign int64) {
	t.customers += sign * u.customers
	t.verified += sign * u.verified
	t.business += sign * u.business
	t.services += sign * u.services
	for c, n := range u.countries {
		t.countries[c] += sign * n
	}
	for h, n := range u.hours {
		t.hours[h] += sign * n
	}
}

// figures returns t with the hours before now's window dropped, the
// countries and hours without a profile left out, both sorted.
func (t tally) figures(now time.Time) figures {
	f := figures{Customers: t.customers, Verified: t.verified, Business: t.business, Services: t.services,
		Countries: []string{}, CountryN: []int64{}, Hours: []int64{}, HourN: []int64{}}
	for _, c := range slices.Sorted(maps.Keys(t.countries)) {
		if n := t.countries[c]; n != 0 {
			f.Countries, f.CountryN = append(f.Countries, c), append(f.CountryN, n)
		}
	}
	from := hourOf(now.Add(-sinceWindow))
	hours := make([]int64, 0, len(t.hours))
	for h, n := range t.hours {
		if h >= from && n != 0 {
			hours = append(hours, h)
		}
	}
	slices.Sort(hours)
	for _, h := range hours {
		f.Hours, f.HourN = append(f.Hours, h), append(f.HourN, t.hours[h])
	}
	return f
}

// equal reports whether f and g are the same figures within now's window.
func (f figures) equal(g figures, now time.Time) bool {
	a, b := f.tally().figures(now), g.tally().figures(now)
	return a.Customers == b.Customers && a.Verified == b.Verified && a.Business == b.Business && a.Services == b.Services &&
		slices.Equal(a.Countries, b.Countries) && slices.Equal(a.CountryN, b.CountryN) &&
		slices.Equal(a.Hours, b.Hours) && slices.Equal(a.HourN, b.HourN)
}

// stats are the figures as the staff see them, new_last_30_days counting
// the profiles whose customer_since is in since's hour or later.
func (f figures) stats(since time.Time) customer.Stats {
	st := customer.Stats{
		TotalCustomers:     int(f.Customers),
		VerifiedCustomers:  int(f.Verified),
		BusinessCustomers:  int(f.Business),
		TotalServices:      int(f.Services),
		CustomersByCountry: make(map[string]int, len(f.Countries)),
	}
	for i, c := range f.Countries {
		if i < len(f.CountryN) {
			st.CustomersByCountry[c] = int(f.CountryN[i])
		}
	}
	from := hourOf(since)
	for i, h := range f.Hours {
		if h >= from && i < len(f.HourN) {
			st.NewLast30Days += int(f.HourN[i])
		}
	}
	return st
}

// change is what one change does to the figures.
type change struct {
	id       string      // unique: the figures count it once
	remove   *profileKey // a profile counted no more (deleted, or before an update)
	add      *profileKey // a profile counted (created, or after an update)
	services int64       // service records added (negative: deleted)
}

// none reports whether c changes no figure.
func (c change) none() bool {
	return c.services == 0 && (c.add == nil) == (c.remove == nil) && (c.add == nil || *c.add == *c.remove)
}

// figuresDoc is a slot of the figures.
type figuresDoc struct {
	ID      string    `bson:"_id"` // "<stripe>/<n>"
	Stripe  int       `bson:"stripe"`
	N       int64     `bson:"n"`
	Change  string    `bson:"change"`
	Exact   bool      `bson:"exact"` // stripe 0 only: the sum is a recount's plus changes since
	At      time.Time `bson:"at"`
	Figures figures   `bson:"figures"`
}

// headDoc is where a stripe's last slot was last seen (_id "head/<k>"): a
// slot that is never swept (the sweep keeps keepSlots behind it).
type headDoc struct {
	ID   string `bson:"_id"`
	Head int64  `bson:"head"`
}

func headID(k int) string { return "head/" + strconv.Itoa(k) }

// figuresState is the store's state of the figures: the last slot of each
// stripe this replica saw. A slot never changes, so the only question
// about it is whether it is still the last: a count tries the next slot
// after it at once (the insert says), and a lookup starts from it.
type figuresState struct {
	last [stripes]atomic.Pointer[figuresDoc]
}

// fresh is the last slot of stripe k this replica saw, when it is recent
// enough that the slots after it cannot have been swept (half of keepFor:
// the sweep deletes only slots older than keepFor); nil otherwise.
func (s *Store) fresh(k int) *figuresDoc {
	d := s.fig.last[k].Load()
	if d == nil || d.At.Before(s.now().Add(-keepFor/2)) {
		return nil
	}
	return d
}

func slotName(k int, n int64) string { return strconv.Itoa(k) + "/" + strconv.FormatInt(n, 10) }

// stripeOf is the stripe of a change.
func stripeOf(id string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % stripes)
}

func (s *Store) figureSlot(ctx context.Context, k int, n int64) (*figuresDoc, error) {
	if n <= 0 {
		return nil, nil
	}
	d, err := mongodb.FindByID[figuresDoc](ctx, s.stats, slotName(k, n))
	if err != nil {
		return nil, fmt.Errorf("read the figures: %w", err)
	}
	return d, nil
}

// current is the figures: the last slot of each stripe.
type current [stripes]*figuresDoc

// exact reports whether the sum is exact (stripe 0 says).
func (c current) exact() bool { return c[0] != nil && c[0].Exact }

// sum adds up the stripes.
func (c current) sum() tally {
	t := figures{}.tally()
	for _, d := range c {
		if d != nil {
			t.add(d.Figures.tally(), 1)
		}
	}
	return t
}

// same reports whether c and d have the same last slots.
func (c current) same(d current) bool {
	for k := range c {
		if slotN(c[k]) != slotN(d[k]) {
			return false
		}
	}
	return true
}

// figures reads the last slot of every stripe, at once.
func (s *Store) figures(ctx context.Context) (current, error) {
	var c current
	err := each(ctx, stripes, func(ctx context.Context, k int) (err error) {
		c[k], err = s.head(ctx, k)
		return err
	})
	return c, err
}

// head finds the last slot of stripe k (nil: none yet): from the last
// one this replica saw (else the stored head), it and the next read
// together settle it in the common case; otherwise a galloping search.
func (s *Store) head(ctx context.Context, k int) (*figuresDoc, error) {
	var from int64
	if d := s.fresh(k); d != nil {
		from = d.N
	} else {
		h, err := mongodb.FindByID[headDoc](ctx, s.stats, headID(k))
		if err != nil {
			return nil, fmt.Errorf("read the figures' head: %w", err)
		}
		if h != nil {
			from = h.Head
		}
	}
	_, d, found, err := mongodb.LastFrom(from, func(n int64) (*figuresDoc, error) { return s.figureSlot(ctx, k, n) })
	if err != nil {
		return nil, err
	}
	if !found { // swept: never start the stripe again from nothing
		return nil, fmt.Errorf("read the figures: slot %s is missing", slotName(k, from))
	}
	s.saw(d)
	return d, nil
}

// saw records the slot d (nil: none) as the last this replica saw of its
// stripe, unless it saw a later one.
func (s *Store) saw(d *figuresDoc) {
	if d == nil {
		return
	}
	for {
		seen := s.fig.last[d.Stripe].Load()
		if seen != nil && seen.N >= d.N || s.fig.last[d.Stripe].CompareAndSwap(seen, d) {
			return
		}
	}
}

// countChange adds c to the figures, once however often it is called
// with c.id. A change that changes nothing inserts nothing.
func (s *Store) countChange(ctx context.Context, c change, now time.Time) error {
	if c.none() {
		return nil
	}
	return s.appendFigures(ctx, stripeOf(c.id), c.id, now, func(prev *figuresDoc) (figures, bool) {
		var t tally
		exact := false
		if prev != nil {
			t, exact = prev.Figures.tally(), prev.Exact
		} else {
			t = figures{}.tally()
		}
		if c.remove != nil {
			t.count(*c.remove, -1)
		}
		if c.add != nil {
			t.count(*c.add, 1)
		}
		t.services += c.services
		return t.figures(now), exact
	})
}

// markInexact marks the figures not exact (a write that does not count,
// such as an import, follows or just ended); the next recount makes them
// exact again.
func (s *Store) markInexact(ctx context.Context, why string) error {
	return s.appendFigures(ctx, 0, newChange(why), s.now(), func(prev *figuresDoc) (figures, bool) {
		if prev == nil {
			return figures{}.tally().figures(s.now()), false
		}
		return prev.Figures, false
	})
}

// appendFigures inserts the slot after the last one of stripe k, with the
// figures next computes from it, under the unique change id: one insert
// when the last slot this replica saw is still the last; otherwise the
// slot it met, then a search for the last one, and another insert.
func (s *Store) appendFigures(ctx context.Context, k int, id string, now time.Time, next func(prev *figuresDoc) (figures, bool)) error {
	prev := s.fresh(k)
	if prev == nil {
		var err error
		if prev, err = s.head(ctx, k); err != nil {
			return err
		}
	}
	for {
		n := int64(1)
		if prev != nil {
			if prev.Change == id {
				return nil
			}
			n = prev.N + 1
		}
		f, exact := next(prev)
		d := figuresDoc{ID: slotName(k, n), Stripe: k, N: n, Change: id, Exact: exact && k == 0, At: s.now().UTC().Truncate(time.Millisecond), Figures: f}
		err := s.at("count", func() (err error) { _, err = s.stats.InsertOne(ctx, d); return err })
		if err == nil {
			s.saw(&d)
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("count the change: %w", err)
		}
		got, err := s.figureSlot(ctx, k, n)
		if err != nil {
			return err
		}
		if got == nil { // the slot is free: the change is counted already, in an earlier slot
			return nil
		}
		if got.Change == id {
			return nil
		}
		// Others counted since the last slot this replica saw: find the
		// last from this one (a galloping search when they are many).
		s.saw(got)
		if prev, err = s.head(ctx, k); err != nil {
			return err
		}
	}
}

// ErrRecountBusy is Recount's answer when changes were in flight or the
// figures moved while it read the collections: it tries again later.
var ErrRecountBusy = errors.New("the figures changed during the recount")

// Recount counts the figures from the collections (a read of every
// profile and a count of the service records) and, when the stripes' sum
// differs, or is not exact, inserts in stripe 0 what makes the sum equal
// the count. It is exact only when no change was in flight: it refuses
// (ErrRecountBusy) when an intent is pending before or after the read, or
// a stripe moved during it. It returns the figures it replaced when they
// were exact and differed (nil otherwise), for the caller to report.
func (s *Store) Recount(ctx context.Context, now time.Time) (corrected *customer.Stats, err error) {
	busy := func() error { // ErrRecountBusy while an intent is pending
		n, err := s.pending.CountDocuments(ctx, bson.D{})
		if err == nil && n > 0 {
			return ErrRecountBusy
		}
		return err
	}
	// The figures first, then no intent: a write counted before the read
	// of the figures either ended before that check, or is seen by it.
	before, err := s.figures(ctx)
	if err != nil {
		return nil, err
	}
	if err := busy(); err != nil {
		return nil, err
	}
	s.stage("recount: checked")
	counted, err := s.scanFigures(ctx, now)
	if err != nil {
		return nil, err
	}
	s.stage("recount: read")
	if err := busy(); err != nil {
		return nil, err
	}
	after, err := s.figures(ctx)
	if err != nil {
		return nil, err
	}
	if !after.same(before) {
		return nil, ErrRecountBusy
	}
	had := before.sum().figures(now)
	if before.exact() && had.equal(counted, now) {
		return nil, nil
	}
	// Stripe 0 takes the count less the other stripes.
	t := counted.tally()
	for k := 1; k < stripes; k++ {
		if before[k] != nil {
			t.add(before[k].Figures.tally(), -1)
		}
	}
	n := slotN(before[0]) + 1
	d := figuresDoc{ID: slotName(0, n), N: n, Change: "recount/" + contract.NewID(), Exact: true, At: now.UTC().Truncate(time.Millisecond), Figures: t.figures(now)}
	if _, err := s.stats.InsertOne(ctx, d); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return nil, ErrRecountBusy
		}
		return nil, fmt.Errorf("write the recounted figures: %w", err)
	}
	s.saw(&d)
	if before.exact() {
		st := had.stats(now.Add(-30 * 24 * time.Hour))
		return &st, nil
	}
	return nil, nil
}

func slotN(d *figuresDoc) int64 {
	if d == nil {
		return 0
	}
	return d.N
}

// scanFigures counts the figures from the collections: every profile's
// key (one read of the collection, a few fields of each) and the number of
// service records. It is what the figures are checked against, and what
// Stats answers while they are not exact.
func (s *Store) scanFigures(ctx context.Context, now time.Time) (figures, error) {
	var (
		t        = figures{}.tally()
		services int64
	)
	reads := []func(ctx context.Context) error{
		func(ctx context.Context) error {
			cur, err := s.customers.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{
				{Key: "country", Value: 1}, {Key: "is_verified", Value: 1}, {Key: "business_type", Value: 1}, {Key: "customer_since", Value: 1},
			}))
			if err != nil {
				return fmt.Errorf("read profiles: %w", err)
			}
			defer cur.Close(ctx)
			for cur.Next(ctx) {
				var d customerDoc
				if err := cur.Decode(&d); err != nil {
					return fmt.Errorf("decode profile: %w", err)
				}
				t.count(keyOf(d), 1)
			}
			return cur.Err()
		},
		func(ctx context.Context) (err error) {
			services, err = s.services.CountDocuments(ctx, bson.D{})
			return err
		},
	}
	if err := each(ctx, len(reads), func(ctx context.Context, i int) error { return reads[i](ctx) }); err != nil {
		return figures{}, fmt.Errorf("count the figures: %w", err)
	}
	t.services = services
	return t.figures(now), nil
}

// SweepFigures records each stripe's last slot as the head a new replica
// starts from, and deletes the slots both keepSlots behind it and older
// than keepFor. It reads only the figures' own collection, whose size the
// sweep bounds.
func (s *Store) SweepFigures(ctx context.Context, now time.Time) error {
	c, err := s.figures(ctx)
	if err != nil {
		return err
	}
	for k, h := range c {
		if h == nil {
			continue
		}
		// The head documents share the collection's unique index on
		// change, so each names itself there (a missing field is one
		// null to MongoDB's unique index: a second head would be refused).
		if _, err := s.stats.UpdateOne(ctx, byID(headID(k)), bson.D{
			{Key: "$max", Value: bson.D{{Key: "head", Value: h.N}}},
			{Key: "$setOnInsert", Value: bson.D{{Key: "change", Value: headID(k)}}},
		}, options.Update().SetUpsert(true)); err != nil {
			return fmt.Errorf("record the figures' head: %w", err)
		}
		if _, err := s.stats.DeleteMany(ctx, bson.D{
			{Key: "stripe", Value: k},
			{Key: "n", Value: bson.D{{Key: "$lt", Value: h.N - keepSlots}}},
			{Key: "at", Value: bson.D{{Key: "$lt", Value: now.Add(-keepFor).UTC()}}},
		}); err != nil {
			return fmt.Errorf("sweep the figures: %w", err)
		}
	}
	return nil
}
