package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
)

// importChunk bounds the statements of one bulk write. FerretDB v1 keeps
// the query of every matching upsert statement of an update command open
// until the command ends, each holding one of its 100 SQLite connections:
// an update command of about 100 statements that match existing profiles
// (a re-run of an import) waits forever for a connection. MongoDB does not
// mind the extra round trips.
const importChunk = 50

// ImportResult is what an import did with one profile.
type ImportResult struct {
	Inserted bool  // a new profile; false: the user's profile was updated
	Err      error // the profile was not written
}

// insertOnly are the fields an import writes only when it creates the
// profile: whose it is, its dates of creation, and the preferences the
// customer may have changed since. Every other field of customerDoc
// (except _id, the filter) is set on every run.
var insertOnly = map[string]bool{
	"user_id": true, "created_at": true, "customer_since": true,
	"preferred_contact_method": true, "notification_preferences": true,
}

// importModel is the upsert of one profile under the id it has (or gets).
func importModel(c customer.Customer, id string, now time.Time) (mongo.WriteModel, error) {
	c.ID, c.CreatedAt, c.UpdatedAt = id, now, now
	raw, err := bson.Marshal(toCustomerDoc(c))
	if err != nil {
		return nil, fmt.Errorf("encode profile of %s: %w", c.UserID, err)
	}
	var doc bson.D
	if err := bson.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("encode profile of %s: %w", c.UserID, err)
	}
	set, onInsert := bson.D{}, bson.D{{Key: "service_series", Value: contract.NewID()}}
	for _, e := range doc {
		switch {
		case e.Key == "_id", e.Key == "service_series":
			// The filter; on insert the new document takes it from there.
			// A new profile starts a series of its own; an existing one
			// keeps its series.
		case insertOnly[e.Key]:
			onInsert = append(onInsert, e)
		default:
			set = append(set, e)
		}
	}
	return mongo.NewUpdateOneModel().
		SetFilter(bson.D{{Key: "_id", Value: id}}).
		SetUpdate(bson.D{{Key: "$set", Value: set}, {Key: "$setOnInsert", Value: onInsert}}).
		SetUpsert(true), nil
}

// ImportProfiles writes legacy profiles keyed by user_id, a chunk at a
// time: the chunk's users' existing profiles are found by user id (lone
// _id lookups, a few at a time: the derived id, then the alias), then one
// unordered bulk write upserts each profile under its id (the existing
// one, else c.ID, else ProfileID(user id)), setting the migrated fields and
// updated_at, and user_id, created_at, customer_since and the contact
// preferences only when it creates the profile; a profile created under an
// id that is not derived gets its alias. Filtering each statement on _id
// rather than on user_id keeps the import linear on FerretDB, which uses no
// index but _id's.
//
// Re-running an import writes nothing twice, and the unique index on
// user_id keeps one profile per user: a profile created by its user
// between the lookup and the write makes the insert fail with a duplicate
// key, and that profile is then looked up again and updated. The results
// are per profile, in order; the error is for a failure of the whole write.
func (s *Store) ImportProfiles(ctx context.Context, cs []customer.Customer, now time.Time) ([]ImportResult, error) {
	now = now.UTC().Truncate(time.Millisecond)
	out := make([]ImportResult, len(cs))
	idx := make([]int, 0, len(cs))
	seen := make(map[string]bool, len(cs))
	for i, c := range cs {
		switch {
		case !contract.ValidID(c.UserID):
			out[i].Err = fmt.Errorf("import profile: user_id %q is not a UUID", c.UserID)
		case seen[c.UserID]:
			out[i].Err = fmt.Errorf("import profile: user %s appears twice in one import", c.UserID)
		default:
			seen[c.UserID] = true
			idx = append(idx, i)
		}
	}
	// The import writes without counting its changes (figures.go).
	err := s.Uncounted(ctx, func(ctx context.Context) error {
		for start := 0; start < len(idx); start += importChunk {
			if err := s.importChunk(ctx, cs, idx[start:min(start+importChunk, len(idx))], now, out); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// importChunk upserts the profiles cs[idx...], retrying once those whose
// insert lost to a profile created meanwhile.
func (s *Store) importChunk(ctx context.Context, cs []customer.Customer, idx []int, now time.Time, out []ImportResult) error {
	for attempt := 0; attempt < 2 && len(idx) > 0; attempt++ {
		userIDs := make([]string, len(idx))
		for k, i := range idx {
			userIDs[k] = cs[i].UserID
		}
		existing, err := s.profileIDs(ctx, userIDs)
		if err != nil {
			return err
		}
		models := make([]mongo.WriteModel, 0, len(idx))
		ok := make([]int, 0, len(idx))
		for _, i := range idx {
			id := existing[cs[i].UserID]
			if id == "" {
				id = cs[i].ID
			}
			if id == "" {
				id = customer.ProfileID(cs[i].UserID)
			}
			m, err := importModel(cs[i], id, now)
			if err != nil {
				out[i].Err = err
				continue
			}
			models = append(models, m)
			ok = append(ok, i)
		}
		if len(models) == 0 {
			return nil
		}
		res, err := s.customers.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
		var retry []int
		var bwe mongo.BulkWriteException
		switch {
		case err == nil:
		case errors.As(err, &bwe) && bwe.WriteConcernError == nil && len(bwe.WriteErrors) > 0:
			for _, we := range bwe.WriteErrors {
				if we.Index < 0 || we.Index >= len(ok) {
					return fmt.Errorf("import profiles: write error for unknown statement %d: %w", we.Index, err)
				}
				if we.Code == 11000 && attempt == 0 {
					retry = append(retry, ok[we.Index])
					continue
				}
				out[ok[we.Index]].Err = fmt.Errorf("import profile: %s (code %d)", we.Message, we.Code)
			}
		default:
			return fmt.Errorf("import profiles: %w", err)
		}
		if res != nil {
			for k := range res.UpsertedIDs {
				if int(k) < len(ok) {
					out[ok[k]].Inserted = true
				}
			}
		}
		if err := s.importAliases(ctx, cs, ok, existing, out); err != nil {
			return err
		}
		idx = retry
	}
	return nil
}

// importAliases writes the alias of each profile of cs[ok...] that was
// written (no error) under an id that is neither derived nor found through
// its alias already. A crash before it leaves the profile without one; a
// re-run of the import writes it (it finds no profile, upserts the same
// c.ID again), and so does the next start's backfill.
func (s *Store) importAliases(ctx context.Context, cs []customer.Customer, ok []int, existing map[string]string, out []ImportResult) error {
	var aliased []int // indexes in cs of the profiles that need an alias
	for _, i := range ok {
		u := cs[i].UserID
		if out[i].Err == nil && existing[u] == "" && cs[i].ID != "" && cs[i].ID != customer.ProfileID(u) {
			aliased = append(aliased, i)
		}
	}
	return each(ctx, len(aliased), func(ctx context.Context, k int) error {
		c := cs[aliased[k]]
		return s.putAlias(ctx, c.UserID, c.ID)
	})
}

// profileIDs maps the given users that have a profile to its id.
func (s *Store) profileIDs(ctx context.Context, userIDs []string) (map[string]string, error) {
	ps, err := s.ProfilesByUserIDs(ctx, userIDs)
	if err != nil {
		return nil, err
	}
	ids := make(map[string]string, len(ps))
	for u, p := range ps {
		ids[u] = p.ID
	}
	return ids, nil
}

// ProfilesByUserIDs reads the profiles of the given users, by user id (the
// derived service figures are not filled in): one resolve per user (lone
// _id lookups), a few at a time, so the cost is per user asked about, not
// per profile stored.
func (s *Store) ProfilesByUserIDs(ctx context.Context, userIDs []string) (map[string]customer.Customer, error) {
	out := make(map[string]customer.Customer, len(userIDs))
	var mu sync.Mutex
	err := each(ctx, len(userIDs), func(ctx context.Context, i int) error {
		d, err := s.resolve(ctx, userIDs[i])
		if errors.Is(err, customer.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find customers by user: %w", err)
		}
		mu.Lock()
		out[d.UserID] = fromCustomerDoc(d)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EachProfileUserID calls fn with the user_id of every profile, streaming.
func (s *Store) EachProfileUserID(ctx context.Context, fn func(userID string) error) error {
	cur, err := s.customers.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "user_id", Value: 1}}).SetBatchSize(1000))
	if err != nil {
		return fmt.Errorf("read customer user ids: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d struct {
			UserID string `bson:"user_id"`
		}
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("decode customer user id: %w", err)
		}
		if err := fn(d.UserID); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read customer user ids: %w", err)
	}
	return nil
}

// DuplicateUserIDs returns the user ids that more than one profile holds
// (none while the unique index stands; checked after an import all the same).
func (s *Store) DuplicateUserIDs(ctx context.Context) ([]string, error) {
	cur, err := s.customers.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$user_id"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}},
		{{Key: "$match", Value: bson.D{{Key: "n", Value: bson.D{{Key: "$gt", Value: 1}}}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("group customers by user: %w", err)
	}
	var rows []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("group customers by user: %w", err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids, nil
}
