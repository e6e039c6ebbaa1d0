package mongodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/mongodb"
)

// A write that changes the figures (figures.go) first inserts its intent
// in "customer_stats_pending", then counts its change, then writes, then
// deletes the intent:
//
//   - create: intent {_id: profile id} with the new profile's key; insert
//     the profile; count it; the alias.
//   - update: intent {_id: profile id} with the $set; when it changes a
//     counted field, read the profile and record its key in the intent
//     (the plan), count the key's change; $set. (An update of other
//     fields is planned from the start: it holds the lock so that no
//     update of a counted field runs alongside it.)
//   - delete: intent {_id: profile id}; read the profile and its record
//     count, wait for the service records in flight; record the key and
//     the count (the plan); count the deletion; delete the records, the
//     profile, the alias.
//   - service record: intent {_id: "service/<record id>"}; insert the
//     record; count it.
//
// The intent of a profile is its lock: one create, update or delete of a
// profile at a time (FerretDB applies concurrent updates of one document
// last-writer-wins for the whole document, so two updates in flight could
// each count a change the other undid). A writer that finds the lock taken
// waits for it; one that finds it expired (its writer stopped) finishes
// that change first. A stopped change is finished the same way by the
// store's reconciler (RecoverPending): a create whose profile exists and
// a planned update or delete are rolled forward (each step is idempotent:
// the count by its change id, the writes by _id); anything else never
// wrote and is dropped.
//
// The collection holds only the changes in flight, so the reconciler's
// read of it, and Recount's, cost what is in flight, not what is stored.

// lease is how long an intent's writer has to finish before others
// finish it. Its writes run under a deadline a second before its lease
// ends (writing; finish's under its claim's), and it plans, renews or
// deletes its intent only before then (held), so that nobody finishes a
// change while its writer still writes, as long as the replicas' clocks
// agree within a second (each replica warns, at start and every 10
// minutes, when its clock is half a second off the database's). A replica that dies mid-write holds
// the profile for at most lease.
const lease = 5 * time.Second

// lockWait bounds how long a write waits for another write of the same
// profile, and a delete for the service records in flight: under the
// BFF's 3 s timeout for its calls, so that the BFF gets the 503 (a write
// behind one whose replica died gets it until that one's lease ends; the
// next write then finishes it).
const lockWait = 2500 * time.Millisecond

// MaxClockSkew is how far a replica's clock may be off the database's:
// two replicas within it agree within the second the leases allow.
const MaxClockSkew = 500 * time.Millisecond

const (
	opCreate  = "create"
	opUpdate  = "update"
	opDelete  = "delete"
	opService = "service"
	opImport  = "import" // a bulk write in progress (no recount meanwhile)
	opFinish  = "finish" // the claim of a replica finishing an expired intent
)

// errFinishing is finish's answer when another replica is finishing the
// same intent: the caller waits, or leaves it.
var errFinishing = errors.New("another replica is finishing this write")

// pendingDoc is an intent (see above).
type pendingDoc struct {
	ID         string      `bson:"_id"`
	Change     string      `bson:"change"`
	Op         string      `bson:"op"`
	CustomerID string      `bson:"customer_id,omitempty"`
	UserID     string      `bson:"user_id,omitempty"`
	Series     string      `bson:"series,omitempty"`
	RecordID   string      `bson:"record_id,omitempty"`
	From       int64       `bson:"from,omitempty"`       // service: the first slot its write tries
	RecordKey  string      `bson:"record_key,omitempty"` // service: its key ("key:..." or "auto:...")
	Set        bson.M      `bson:"set,omitempty"`
	Planned    bool        `bson:"planned"`
	Key        *profileKey `bson:"key,omitempty"`     // create: the new profile's; update, delete: the profile's when planned
	Records    int64       `bson:"records,omitempty"` // delete: it deletes slots 1..Records
	Expires    time.Time   `bson:"expires"`
}

// lock inserts the intent p, waiting up to lockWait while another live
// intent holds its _id, and finishing one that expired.
func (s *Store) lock(ctx context.Context, p *pendingDoc) error {
	return s.waitFor(ctx, func() (bool, error) {
		p.Expires = s.now().Add(lease).UTC().Truncate(time.Millisecond)
		err := s.at("intent", func() (err error) { _, err = s.pending.InsertOne(ctx, p); return err })
		if err == nil {
			return true, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return false, fmt.Errorf("insert the write's intent: %w", err)
		}
		held, err := s.pendingDoc(ctx, p.ID)
		if err != nil || held == nil {
			return false, err // gone meanwhile: try again
		}
		_, err = s.finishExpired(ctx, *held)
		return false, err // finished (or live): try again
	})
}

// waitFor calls try until it reports done, backing off from 5 ms to
// 100 ms between calls, for at most lockWait (then ErrBusy); an error of
// try ends it.
func (s *Store) waitFor(ctx context.Context, try func() (done bool, err error)) error {
	deadline := s.now().Add(lockWait)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		done, err := try()
		if done || err != nil {
			return err
		}
		if s.now().After(deadline) {
			return customer.ErrBusy
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// finishExpired finishes the intent p when it expired, and reports
// whether it is still live (not expired, or being finished by another).
func (s *Store) finishExpired(ctx context.Context, p pendingDoc) (live bool, err error) {
	if !p.Expires.Before(s.now()) {
		return true, nil
	}
	switch err := s.finish(ctx, p); {
	case err == nil:
		return false, nil
	case errors.Is(err, errFinishing):
		return true, nil
	default:
		return false, err
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pendingDoc reads the intent whose _id is id (nil: none).
func (s *Store) pendingDoc(ctx context.Context, id string) (*pendingDoc, error) {
	p, err := mongodb.FindByID[pendingDoc](ctx, s.pending, id)
	if err != nil {
		return nil, fmt.Errorf("read the write's intent: %w", err)
	}
	return p, nil
}

// unlock deletes the intent p (not a later one of the same _id).
func (s *Store) unlock(ctx context.Context, p pendingDoc) error {
	f, err := s.held(p)
	if err != nil {
		return nil // left to expire
	}
	if _, err := s.pending.DeleteOne(ctx, f); err != nil {
		return fmt.Errorf("delete the write's intent: %w", err)
	}
	return nil
}

// errIntentLost: the write's lease (all but its last second) ran out
// before it planned or renewed; it wrote nothing and leaves its intent to
// expire. A busy answer to the client.
var errIntentLost = fmt.Errorf("%w: the write's lease ran out", customer.ErrBusy)

// held returns the filter of the intent p, a lone _id (the one filter
// the embedded server answers without reading the collection), while p's
// lease has more than a second to run: no finisher touches an intent
// before it expires, so it is still p's (with the replicas' clocks within
// a second). After that, errIntentLost: the intent is left to expire and
// be finished (every step of a finish is idempotent).
func (s *Store) held(p pendingDoc) (bson.D, error) {
	if s.now().Before(p.Expires.Add(-time.Second)) {
		return byID(p.ID), nil
	}
	return nil, errIntentLost
}

// writing is ctx with the deadline of a write under the intent p: a
// second before its lease ends.
func (s *Store) writing(ctx context.Context, p pendingDoc) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.Expires.Sub(s.now())-time.Second)
}

// release deletes the intent p at the end of its write, or of a write
// that wrote nothing, with a deadline of its own (it also runs on failure
// paths). When it fails, the intent expires and the reconciler finishes
// its change again (every step is idempotent) or drops it.
func (s *Store) release(ctx context.Context, p pendingDoc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = s.at("release", func() error { return s.unlock(ctx, p) })
}

// Uncounted runs write, a bulk write of the store's collections that does
// not count its changes in the staff's figures (an import, a restore from
// a backup). It holds an intent meanwhile, renewed until write returns, so
// that no recount runs in the middle of it, and marks the figures not
// exact before write and after it (a finisher does, if it stops), so that
// Stats counts from the collections until the next recount.
func (s *Store) Uncounted(ctx context.Context, write func(ctx context.Context) error) error {
	p := pendingDoc{ID: opImport + "/" + contract.NewID(), Change: newChange(opImport), Op: opImport}
	if err := s.lock(ctx, &p); err != nil {
		return err
	}
	if err := s.markInexact(ctx, opImport); err != nil {
		return err
	}
	done, renewed := make(chan struct{}), make(chan struct{})
	held := p // the renewals' copy, read again once they stopped
	go func() {
		defer close(renewed)
		tick := time.NewTicker(lease / 4)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = s.renew(ctx, &held) // a failed renewal: the intent may expire, and the mark after write still holds
			}
		}
	}()
	err := write(ctx)
	close(done)
	<-renewed
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if merr := s.markInexact(mctx, opImport); merr != nil {
		return errors.Join(err, merr) // the intent stays: its finisher marks them
	}
	s.release(ctx, held)
	return err
}

// renew extends the lease of the intent p, held by a long write (an
// import). It fails when the intent is no longer p's.
func (s *Store) renew(ctx context.Context, p *pendingDoc) error {
	f, err := s.held(*p)
	if err != nil {
		return err
	}
	expires := s.now().Add(lease).UTC().Truncate(time.Millisecond)
	res, err := s.pending.UpdateOne(ctx, f, bson.D{{Key: "$set", Value: bson.D{{Key: "expires", Value: expires}}}})
	if err != nil {
		return fmt.Errorf("renew the write's intent: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("renew the write's intent: %w", errIntentLost)
	}
	p.Expires = expires
	return nil
}

// plan records in the intent p what its roll-forward needs (the profile's
// key, a delete's record count). It fails when the intent is no longer
// p's (it expired and was finished by another).
func (s *Store) plan(ctx context.Context, p *pendingDoc) error {
	p.Planned = true
	f, err := s.held(*p)
	if err != nil {
		return err
	}
	var res *mongo.UpdateResult
	err = s.at("plan", func() (err error) {
		res, err = s.pending.UpdateOne(ctx, f,
			bson.D{{Key: "$set", Value: bson.D{
				{Key: "planned", Value: true}, {Key: "key", Value: p.Key}, {Key: "records", Value: p.Records},
				{Key: "series", Value: p.Series}, {Key: "user_id", Value: p.UserID},
			}}})
		return err
	})
	if err != nil {
		return fmt.Errorf("plan the write: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("plan the write: %w", errIntentLost)
	}
	return nil
}

// finish completes the change of the expired intent p from wherever its
// writer stopped (or, when it wrote nothing, drops it), then deletes it.
// One replica at a time finishes an intent: it first inserts its claim
// {_id: "finish/<change>"} (errFinishing when another holds it), then
// checks that the intent is still there, so that no finisher replays a
// change after another one finished it and a new write of the profile
// began. Every step is idempotent, so a finisher that stops is followed
// by another (its claim expires like an intent) without harm.
func (s *Store) finish(ctx context.Context, p pendingDoc) error {
	if p.Op == opFinish { // the claim of a finisher that stopped
		_, err := s.pending.DeleteOne(ctx, bson.D{{Key: "_id", Value: p.ID}, {Key: "change", Value: p.Change}})
		return err
	}
	claim := pendingDoc{ID: opFinish + "/" + p.Change, Change: newChange(opFinish), Op: opFinish, Expires: s.now().Add(lease).UTC().Truncate(time.Millisecond)}
	if err := s.claim(ctx, claim); err != nil {
		return err
	}
	defer s.release(ctx, claim)
	ctx, cancel := s.writing(ctx, claim)
	defer cancel()
	cur, err := s.pendingDoc(ctx, p.ID)
	if err != nil || cur == nil || cur.Change != p.Change || !cur.Expires.Before(s.now()) {
		return err // finished by another meanwhile, or renewed by its writer
	}
	now := s.now()
	switch p.Op {
	case opCreate:
		d, err := s.profileDoc(ctx, p.CustomerID)
		switch {
		case errors.Is(err, customer.ErrNotFound):
		case err != nil:
			return err
		case d.ServiceSeries == p.Series:
			if err := s.countChange(ctx, change{id: p.Change, add: p.Key}, now); err != nil {
				return err
			}
			if p.CustomerID != customer.ProfileID(p.UserID) {
				if err := s.putAlias(ctx, p.UserID, p.CustomerID); err != nil {
					return err
				}
			}
		}
	case opUpdate:
		if p.Planned {
			if _, err := s.applyUpdate(ctx, p, now); err != nil {
				return err
			}
		}
	case opDelete:
		if p.Planned {
			if err := s.applyDelete(ctx, p, now, true); err != nil {
				return err
			}
		}
	case opService:
		found, err := s.findRecord(ctx, p)
		if err != nil {
			return err
		}
		if found {
			if err := s.countChange(ctx, change{id: p.Change, services: 1}, now); err != nil {
				return err
			}
		}
	case opImport: // a bulk write that stopped: count again
		if err := s.markInexact(ctx, p.Op); err != nil {
			return err
		}
	}
	// The claim keeps the intent from being taken meanwhile: drop it by _id.
	if _, err := s.pending.DeleteOne(ctx, byID(p.ID)); err != nil {
		return fmt.Errorf("delete the finished write's intent: %w", err)
	}
	return nil
}

// claim inserts a finisher's claim; one left by a finisher that stopped
// (expired) is deleted and the insert tried again once. errFinishing when
// another finisher holds it.
func (s *Store) claim(ctx context.Context, c pendingDoc) error {
	for try := 0; ; try++ {
		_, err := s.pending.InsertOne(ctx, c)
		if err == nil {
			return nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("claim the write to finish: %w", err)
		}
		held, err := s.pendingDoc(ctx, c.ID)
		if err != nil {
			return err
		}
		if try > 0 || held == nil || !held.Expires.Before(s.now()) {
			return errFinishing
		}
		// {_id, change}: not the claim of a finisher that came after it.
		if _, err := s.pending.DeleteOne(ctx, bson.D{{Key: "_id", Value: held.ID}, {Key: "change", Value: held.Change}}); err != nil {
			return fmt.Errorf("delete a stopped finisher's claim: %w", err)
		}
	}
}

// RecoverPending finishes the changes whose writers stopped (their intents
// expired) and returns how many it finished.
func (s *Store) RecoverPending(ctx context.Context) (int, error) {
	cur, err := s.pending.Find(ctx, bson.D{{Key: "expires", Value: bson.D{{Key: "$lt", Value: s.now().UTC()}}}})
	if err != nil {
		return 0, fmt.Errorf("read the writes' intents: %w", err)
	}
	var ps []pendingDoc
	if err := cur.All(ctx, &ps); err != nil {
		return 0, fmt.Errorf("read the writes' intents: %w", err)
	}
	n := 0
	var errs []error
	for _, p := range ps {
		switch err := s.finish(ctx, p); {
		case err == nil:
			n++
		case errors.Is(err, errFinishing):
		default:
			errs = append(errs, fmt.Errorf("finish %s of %s: %w", p.Op, p.ID, err))
		}
	}
	return n, errors.Join(errs...)
}

// findRecord reports whether the series of the service intent p holds its
// record: the slots from the last down to the first its write could have
// taken (p.From, or the first of its key's attempts), one by one (this
// runs only for a stopped write, over the records added since it began).
func (s *Store) findRecord(ctx context.Context, p pendingDoc) (bool, error) {
	from := max(p.From, 1)
	if strings.HasPrefix(p.RecordKey, "key:") {
		k, err := mongodb.FindByID[keyDoc](ctx, s.keys, keyID(p.Series, p.RecordKey))
		if err != nil {
			return false, fmt.Errorf("read idempotency key: %w", err)
		}
		if k != nil {
			from = max(min(from, k.From), 1)
		}
	}
	n, _, err := s.count(ctx, p.Series)
	if err != nil {
		return false, err
	}
	for k := n; k >= from; k-- {
		d, err := s.slot(ctx, p.Series, k)
		if err != nil {
			return false, err
		}
		if d != nil && d.RecordID == p.RecordID {
			return true, nil
		}
	}
	return false, nil
}

// applyUpdate rolls the planned update p forward: counts its change (when
// it changes a counted field: p.Key is the profile's key before it), then
// $sets it. It reports whether the profile was there.
func (s *Store) applyUpdate(ctx context.Context, p pendingDoc, now time.Time) (bool, error) {
	if p.Key != nil {
		to := p.Key.with(p.Set)
		if err := s.countChange(ctx, change{id: p.Change, remove: p.Key, add: &to}, now); err != nil {
			return false, err
		}
	}
	var res *mongo.UpdateResult
	if err := s.at("write", func() (err error) {
		res, err = s.customers.UpdateOne(ctx, byID(p.CustomerID), bson.D{{Key: "$set", Value: p.Set}})
		return err
	}); err != nil {
		return false, fmt.Errorf("update customer: %w", err)
	}
	return res.MatchedCount > 0, nil
}

// applyDelete rolls the planned delete p forward: counts it, then deletes
// the records the plan counted, the profile and its alias.
func (s *Store) applyDelete(ctx context.Context, p pendingDoc, now time.Time, resume bool) error {
	if err := s.countChange(ctx, change{id: p.Change, remove: p.Key, services: -p.Records}, now); err != nil {
		return err
	}
	if err := s.deleteRecords(ctx, p.Series, p.Records, resume); err != nil {
		return err
	}
	if err := s.at("profile", func() (err error) { _, err = s.customers.DeleteOne(ctx, byID(p.CustomerID)); return err }); err != nil {
		return fmt.Errorf("delete customer: %w", err)
	}
	if p.CustomerID != customer.ProfileID(p.UserID) {
		if err := s.at("alias", func() (err error) { _, err = s.aliases.DeleteOne(ctx, byID(p.UserID)); return err }); err != nil {
			return fmt.Errorf("delete customer alias: %w", err)
		}
	}
	return nil
}

// awaitServices waits until no service record of the series is in flight
// (finishing those whose writers stopped), so that every record a delete
// counts is already counted.
func (s *Store) awaitServices(ctx context.Context, series string) error {
	return s.waitFor(ctx, func() (bool, error) {
		cur, err := s.pending.Find(ctx, bson.D{{Key: "op", Value: opService}, {Key: "series", Value: series}})
		if err != nil {
			return false, fmt.Errorf("read the records in flight: %w", err)
		}
		var ps []pendingDoc
		if err := cur.All(ctx, &ps); err != nil {
			return false, fmt.Errorf("read the records in flight: %w", err)
		}
		for _, p := range ps {
			if live, err := s.finishExpired(ctx, p); live || err != nil {
				return false, err
			}
		}
		return true, nil
	})
}

// at runs the write named step between the calls of the test hook (nil
// outside tests): before it, and after it when it succeeded. An error of
// the hook stops the write there, as a crash or a lost answer would.
func (s *Store) at(step string, write func() error) error {
	if s.hook != nil {
		if err := s.hook(step, false); err != nil {
			return err
		}
	}
	if err := write(); err != nil {
		return err
	}
	if s.hook != nil {
		return s.hook(step, true)
	}
	return nil
}

// newChange is a fresh change id of op.
func newChange(op string) string { return op + "/" + contract.NewID() }

// Maintenance intervals: stopped writes are finished every recoverEvery;
// figures that are not exact are recounted then too, backing off to
// checkEvery while writes keep a recount from being exact; the figures
// are checked against the collections, and old slots swept, every
// checkEvery.
const (
	recoverEvery = 30 * time.Second
	checkEvery   = time.Hour
)

// Maintain runs the store's background work until ctx ends (every
// replica runs it; each step is safe to run on several at once). It
// finishes the changes whose writers stopped, recounts the figures while
// they are not exact, and each hour recounts them as a check, logging any
// difference it corrects, and sweeps old slots.
//
// A recount needs a moment without writes in flight for as long as it
// reads every profile (ErrRecountBusy otherwise): where writes never
// pause that long, the figures stay as they are (and Stats, while they are
// not exact, counts from the collections).
func (s *Store) Maintain(ctx context.Context, log *slog.Logger) {
	tick := time.NewTicker(recoverEvery)
	defer tick.Stop()
	lastCheck, nextRecount, backoff := s.now(), s.now(), recoverEvery
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if n, err := s.RecoverPending(ctx); err != nil {
			log.WarnContext(ctx, "customer figures: finishing stopped writes failed", "error", err)
		} else if n > 0 {
			log.InfoContext(ctx, "customer figures: finished stopped writes", "writes", n)
		}
		now := s.now()
		if now.Sub(lastCheck) >= checkEvery {
			lastCheck = now
			if err := s.SweepFigures(ctx, now); err != nil {
				log.WarnContext(ctx, "customer figures: sweep failed", "error", err)
			}
			s.check(ctx, log, true)
			continue
		}
		if now.Before(nextRecount) {
			continue
		}
		c, err := s.figures(ctx)
		if err != nil || c.exact() {
			continue
		}
		if s.check(ctx, log, false) {
			backoff = recoverEvery
		} else {
			backoff = min(2*backoff, checkEvery)
		}
		nextRecount = now.Add(backoff)
	}
}

// check recounts the figures (RecountWhenQuiet, three tries), logs what
// it corrected, and reports whether it got to count.
func (s *Store) check(ctx context.Context, log *slog.Logger, hourly bool) bool {
	corrected, err := s.RecountWhenQuiet(ctx, 3)
	switch {
	case err == nil:
		if corrected != nil {
			log.WarnContext(ctx, "customer figures: the counters differed from the collections and were corrected", "were", *corrected)
		}
		return true
	case !errors.Is(err, ErrRecountBusy):
		log.WarnContext(ctx, "customer figures: recount failed", "error", err)
	case hourly:
		log.InfoContext(ctx, "customer figures: the hourly check was skipped: writes were in flight in each of its tries")
	}
	return false
}

// RecountWhenQuiet runs Recount up to tries times, a second apart while
// writes are in flight (ErrRecountBusy), finishing the stopped ones in
// between; it returns the last try's answer.
func (s *Store) RecountWhenQuiet(ctx context.Context, tries int) (corrected *customer.Stats, err error) {
	for try := 1; ; try++ {
		corrected, err = s.Recount(ctx, s.now())
		if !errors.Is(err, ErrRecountBusy) || try >= tries {
			return corrected, err
		}
		if err := sleep(ctx, time.Second); err != nil {
			return nil, err
		}
		_, _ = s.RecoverPending(ctx) // what it cannot finish, the next try reports as busy
	}
}

// stage calls the test hook at a named point of a read-only procedure
// (the recount), where the tests interleave writes.
func (s *Store) stage(name string) {
	if s.hook != nil {
		_ = s.hook(name, false)
	}
}
