package mongodb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/mongodb"
)

// Service records are numbered slots of the profile's series: slot n is
// the document {_id: "<series>/<n>"}, claimed by inserting it (a duplicate
// key means another request has it: try n+1). A slot is written once and
// never changed, and slot n is inserted only after slot n-1 was read, so
// the slots of a series are 1..count without a gap and the count is the
// highest one, found by probing slots by _id from a hint. Each slot carries
// the running maximum of performed_at, so last_service_date is a field of
// the last slot. Nothing is counted by reading a collection: every read is
// a lone _id lookup, whatever the number of profiles and records.
//
// Concurrent increments of one customer each end in a slot of their own
// (the insert decides); a request with an Idempotency-Key and its retries
// all walk the slots from the same first slot (the key document's from),
// trying each slot in turn, so whichever of them claims a slot first is
// found there by the others: the key is counted once, even when a retry
// races the first attempt or the first attempt stopped between its key
// document and its slot.

// slotDoc is a service record in its slot (see the package comment).
type slotDoc struct {
	ID              string    `bson:"_id"`
	CustomerID      string    `bson:"customer_id"`
	Series          string    `bson:"series"`
	N               int64     `bson:"n"`
	Key             string    `bson:"key"`
	KeyDoc          bool      `bson:"key_doc"`
	RecordID        string    `bson:"record_id"`
	ServiceType     string    `bson:"service_type"`
	Notes           string    `bson:"notes"`
	PerformedAt     time.Time `bson:"performed_at"`
	RecordedBy      string    `bson:"recorded_by"`
	RequestHash     string    `bson:"request_hash"`
	CreatedAt       time.Time `bson:"created_at"`
	LastPerformedAt time.Time `bson:"last_performed_at"`
	InOrder         bool      `bson:"in_order"`
}

// keyDoc is the claim of an Idempotency-Key in a series: the request and
// its retries look for their slot from From on.
type keyDoc struct {
	ID   string `bson:"_id"` // "<series>#<key>"
	From int64  `bson:"from"`
}

// hintDoc is where the count of a series was last seen: a slot that
// exists, unless the series is being deleted. It may lag behind or even
// move back (concurrent $max updates are not atomic on FerretDB); it only
// shortens the probe.
type hintDoc struct {
	ID string `bson:"_id"` // the series
	N  int64  `bson:"n"`
}

func slotID(series string, n int64) string { return series + "/" + strconv.FormatInt(n, 10) }
func keyID(series, key string) string      { return series + "#" + key }

// toRecord converts a slot to a service record.
func (d slotDoc) toRecord() customer.ServiceRecord {
	return customer.ServiceRecord{
		ID:          d.RecordID,
		CustomerID:  d.CustomerID,
		ServiceType: d.ServiceType,
		Notes:       d.Notes,
		PerformedAt: d.PerformedAt.UTC(),
		RecordedBy:  d.RecordedBy,
		RequestHash: d.RequestHash,
		CreatedAt:   d.CreatedAt.UTC(),
	}
}

// slot reads slot n of a series; nil when there is none.
func (s *Store) slot(ctx context.Context, series string, n int64) (*slotDoc, error) {
	d, err := mongodb.FindByID[slotDoc](ctx, s.services, slotID(series, n))
	if err != nil {
		return nil, fmt.Errorf("read service record: %w", err)
	}
	return d, nil
}

// hint reads the hint of a series (0 without one).
func (s *Store) hint(ctx context.Context, series string) (int64, error) {
	var h hintDoc
	if err := s.hints.FindOne(ctx, byID(series)).Decode(&h); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return 0, nil
		}
		return 0, fmt.Errorf("read service count hint: %w", err)
	}
	return max(h.N, 0), nil
}

// raiseHint records that slot n exists. Best effort: the slot is the
// truth, and a request whose record is stored must not fail for this.
func (s *Store) raiseHint(ctx context.Context, series string, n int64) {
	_, _ = s.hints.UpdateOne(ctx, byID(series), bson.D{{Key: "$max", Value: bson.D{{Key: "n", Value: n}}}}, options.Update().SetUpsert(true))
}

// count finds the number of records of a series and its last slot (nil
// when there is none): the hint's slot and the next one, read together,
// settle it in the common case; otherwise a galloping search over the
// slots, which exist from 1 to the count and not beyond.
func (s *Store) count(ctx context.Context, series string) (int64, *slotDoc, error) {
	h, err := s.hint(ctx, series)
	if err != nil {
		return 0, nil, err
	}
	probe := func(n int64) (*slotDoc, error) { return s.slot(ctx, series, n) }
	n, last, found, err := mongodb.LastFrom(h, probe)
	if err != nil || found {
		return n, last, err
	}
	// A stale hint: the series is being deleted, from the last slot down.
	return mongodb.LastPresent(0, h, nil, probe)
}

// withFigures converts a profile document and adds its service figures.
func (s *Store) withFigures(ctx context.Context, d customerDoc) (customer.Customer, error) {
	c := fromCustomerDoc(d)
	n, last, err := s.count(ctx, c.ServiceSeries)
	if err != nil {
		return customer.Customer{}, err
	}
	c.TotalServices = int(n)
	if last != nil {
		t := last.LastPerformedAt.UTC()
		c.LastServiceDate = &t
	}
	return c, nil
}

// seriesOf returns the series of the profile c and where its next record
// goes: from c when the store read it (the caller passes the profile it
// read), else from the stored profile.
func (s *Store) seriesOf(ctx context.Context, c customer.Customer) (string, int64, error) {
	if c.ServiceSeries != "" {
		return c.ServiceSeries, int64(c.TotalServices) + 1, nil
	}
	d, err := s.profileDoc(ctx, c.ID)
	if err != nil {
		return "", 0, err
	}
	n, _, err := s.count(ctx, d.series())
	if err != nil {
		return "", 0, err
	}
	return d.series(), n + 1, nil
}

// AddService records r in the next free slot of the profile's series and
// counts it in the figures, under an intent of its own (pending.go), so a
// record is counted once even when its writer stops in between. With a
// key "key:..." (an Idempotency-Key) a key document comes first, and a
// retry finds the record of the first attempt (created false), which that
// attempt counted; "auto:..." keys are unique by construction and need
// none.
func (s *Store) AddService(ctx context.Context, c customer.Customer, r customer.ServiceRecord, key string) (customer.ServiceRecord, bool, error) {
	series, next, err := s.seriesOf(ctx, c)
	if err != nil {
		return customer.ServiceRecord{}, false, err
	}
	p := pendingDoc{ID: opService + "/" + r.ID, Change: opService + "/" + r.ID, Op: opService, CustomerID: c.ID, Series: series, RecordID: r.ID, From: next, RecordKey: key, Planned: true}
	if err := s.lock(ctx, &p); err != nil {
		return customer.ServiceRecord{}, false, err
	}
	ctx, cancel := s.writing(ctx, p)
	defer cancel()
	d, created, err := s.record(ctx, c.ID, series, next, r, key, strings.HasPrefix(key, "key:"))
	switch {
	case errors.Is(err, customer.ErrNotFound):
		s.release(ctx, p)
		return customer.ServiceRecord{}, false, err
	case err != nil: // the intent finds out whether the record was stored
		return customer.ServiceRecord{}, false, err
	}
	if created {
		if err := s.countChange(ctx, change{id: p.Change, services: 1}, s.now()); err != nil {
			return customer.ServiceRecord{}, false, err
		}
	}
	s.release(ctx, p)
	return d.toRecord(), created, nil
}

// record stores r under key in the first free slot from next on, and
// returns the slot that holds it: the new one (created), or the one an
// earlier attempt under the same key filled. With withKey, the key
// document is claimed first; a retry takes its From.
func (s *Store) record(ctx context.Context, customerID, series string, next int64, r customer.ServiceRecord, key string, withKey bool) (slotDoc, bool, error) {
	prev, err := s.before(ctx, series, next)
	if err != nil {
		return slotDoc{}, false, err
	}
	if prev == nil && next > 1 { // next was a guess too far (a stale profile)
		n, last, err := s.count(ctx, series)
		if err != nil {
			return slotDoc{}, false, err
		}
		next, prev = n+1, last
	}
	if withKey {
		_, err := s.keys.InsertOne(ctx, keyDoc{ID: keyID(series, key), From: next})
		switch {
		case err == nil:
		case mongo.IsDuplicateKeyError(err):
			var k keyDoc
			if err := s.keys.FindOne(ctx, byID(keyID(series, key))).Decode(&k); err != nil {
				if errors.Is(err, mongo.ErrNoDocuments) { // deleted meanwhile with its profile
					return slotDoc{}, false, customer.ErrNotFound
				}
				return slotDoc{}, false, fmt.Errorf("read idempotency key: %w", err)
			}
			if next = max(k.From, 1); next > 1 {
				if prev, err = s.before(ctx, series, next); err != nil {
					return slotDoc{}, false, err
				}
				if prev == nil { // the series is being deleted
					return slotDoc{}, false, customer.ErrNotFound
				}
			} else {
				prev = nil
			}
		default:
			return slotDoc{}, false, fmt.Errorf("insert idempotency key: %w", err)
		}
	}
	for n := next; ; n++ {
		d := newSlot(customerID, series, n, r, key, withKey, prev)
		err := s.at("record", func() (err error) { _, err = s.services.InsertOne(ctx, d); return err })
		if err == nil {
			s.raiseHint(ctx, series, n)
			return d, true, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return slotDoc{}, false, fmt.Errorf("insert service record: %w", err)
		}
		got, err := s.slot(ctx, series, n)
		if err != nil {
			return slotDoc{}, false, err
		}
		if got == nil { // taken, then deleted: the series is being deleted
			return slotDoc{}, false, customer.ErrNotFound
		}
		if got.Key == d.Key {
			return *got, false, nil
		}
		prev = got
	}
}

// before reads the slot before n (nil for n = 1, or when it is missing).
func (s *Store) before(ctx context.Context, series string, n int64) (*slotDoc, error) {
	if n <= 1 {
		return nil, nil
	}
	return s.slot(ctx, series, n-1)
}

// newSlot is r in slot n after prev (the slot n-1, nil for the first).
func newSlot(customerID, series string, n int64, r customer.ServiceRecord, key string, withKey bool, prev *slotDoc) slotDoc {
	at := r.PerformedAt.UTC()
	d := slotDoc{
		ID: slotID(series, n), CustomerID: customerID, Series: series, N: n,
		Key: series + "/" + key, KeyDoc: withKey,
		RecordID: r.ID, ServiceType: r.ServiceType, Notes: r.Notes, PerformedAt: at,
		RecordedBy: r.RecordedBy, RequestHash: r.RequestHash, CreatedAt: r.CreatedAt.UTC(),
		LastPerformedAt: at, InOrder: true,
	}
	if prev != nil {
		d.InOrder = prev.InOrder && !at.Before(prev.LastPerformedAt)
		if prev.LastPerformedAt.After(at) {
			d.LastPerformedAt = prev.LastPerformedAt.UTC()
		}
	}
	return d
}

// CountServices counts a customer's service records.
func (s *Store) CountServices(ctx context.Context, customerID string) (int, error) {
	d, err := s.profileDoc(ctx, customerID)
	if err != nil {
		return 0, err
	}
	n, _, err := s.count(ctx, d.series())
	return int(n), err
}

// Services reads one page of a customer's service records, newest first:
// latest performed_at first, ties in reverse recording order. When no
// record was back-dated behind an earlier one (the last slot is in_order,
// the common case), that is the reverse slot order and the page is read
// slot by slot; otherwise every record of the customer is read and sorted
// (the cost of one customer's history, not of the collection).
func (s *Store) Services(ctx context.Context, customerID string, offset, limit int) ([]customer.ServiceRecord, error) {
	d, err := s.profileDoc(ctx, customerID)
	if err != nil {
		return nil, err
	}
	series := d.series()
	n, last, err := s.count(ctx, series)
	if err != nil || n == 0 || offset >= int(n) || limit <= 0 {
		return nil, err
	}
	var from, to int64 // slots from..to, read newest first
	if last.InOrder {
		from, to = max(n-int64(offset)-int64(limit)+1, 1), n-int64(offset)
	} else {
		from, to = 1, n
	}
	slots := make([]slotDoc, to-from+1)
	err = each(ctx, len(slots), func(ctx context.Context, i int) error {
		k := to - int64(i)
		if k == n {
			slots[i] = *last
			return nil
		}
		got, err := s.slot(ctx, series, k)
		if err != nil {
			return err
		}
		if got == nil {
			return fmt.Errorf("service record %s is missing", slotID(series, k))
		}
		slots[i] = *got
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !last.InOrder {
		slices.SortStableFunc(slots, func(a, b slotDoc) int {
			if c := b.PerformedAt.Compare(a.PerformedAt); c != 0 {
				return c
			}
			return cmp.Compare(b.N, a.N)
		})
		slots = slots[offset:min(offset+limit, len(slots))]
	}
	out := make([]customer.ServiceRecord, len(slots))
	for i, d := range slots {
		out[i] = d.toRecord()
	}
	return out, nil
}

// deleteRecords deletes slots n..1 of a series, the records a delete
// counted, each slot's key document before the slot, then the hint. A
// delete that stops half-way leaves slots 1..k: its roll-forward (resume)
// goes on from the last one left. A record inserted by a request that raced the delete, in a
// slot after n, stays behind, unreachable (the series is dead) and
// counted, as the recount counts it. So may the key document of an
// attempt that stopped before its slot.
func (s *Store) deleteRecords(ctx context.Context, series string, n int64, resume bool) error {
	if resume {
		left, _, err := s.count(ctx, series)
		if err != nil {
			return err
		}
		n = min(n, left)
	}
	for k := n; k >= 1; k-- {
		d, err := s.slot(ctx, series, k)
		if err != nil {
			return err
		}
		if d == nil {
			continue
		}
		if d.KeyDoc {
			if _, err := s.keys.DeleteOne(ctx, byID(keyID(series, strings.TrimPrefix(d.Key, series+"/")))); err != nil {
				return fmt.Errorf("delete idempotency key: %w", err)
			}
		}
		if err := s.at("records", func() (err error) { _, err = s.services.DeleteOne(ctx, byID(d.ID)); return err }); err != nil {
			return fmt.Errorf("delete service record: %w", err)
		}
	}
	if _, err := s.hints.DeleteOne(ctx, byID(series)); err != nil {
		return fmt.Errorf("delete service count hint: %w", err)
	}
	return nil
}

// each calls fn for 0..n-1, a few at a time, and returns the first error.
func each(parent context.Context, n int, fn func(ctx context.Context, i int) error) error {
	if n == 1 {
		return fn(parent, 0)
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, lookups)
	)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			if err := fn(ctx, i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return parent.Err()
}
