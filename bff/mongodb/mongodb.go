// Package mongodb keeps the BFF's durable state in MongoDB (or the embedded
// FerretDB): saga records, saga leases and idempotency records.
//
// Collections and documents (BSON types in brackets):
//
//	sagas             {_id [string, saga id], kind, state, user_id, customer_id,
//	                   email_hash [hex HMAC], email_sealed [binary], token_sealed [binary],
//	                   token_expires_at [date], idempotency_key_id, answer_sealed [binary,
//	                   AES-GCM under the request's fingerprint], version [int32], attempts [int32],
//	                   next_attempt_at [date], last_error, traceparent,
//	                   created_at [date], updated_at [date]}
//	                  indexes: {state, next_attempt_at}, {state, updated_at}
//	sagas_open        {_id [string, saga id], kind, created_at [date], next_attempt_at
//	                   [date, a hint], parked [bool, needs attention]}: one per saga
//	                  from its creation until it finishes; the reconciler reads only
//	                  these (DueSagas, Stats), so a pass costs the open work, not the
//	                  history. Backfilled at start for sagas of the previous release.
//	saga_fences       {_id [string, "<saga id>/<version>"], saga_id, version [int32],
//	                   change [the transition: state, at, and the fields it sets]}
//	                  indexes: {saga_id}
//	saga_leases       {_id [string, the owner: random per attempt], saga_id [unique],
//	                   owner, expires_at [date]}
//	                  indexes: {saga_id} unique, {expires_at}
//	idempotency_claims {_id [string, "<key id>/<bucket>/<generation>": the key id is the
//	                   hex SHA-256 of the Idempotency-Key, the bucket its day (Unix time ÷
//	                   KeyTTL); the claim's owner is this _id], key_id, bucket [int64], check,
//	                   saga_id, lease_expires_at [date], created_at [date], expires_at [date]}
//	                  indexes: {bucket}
//	idempotency_ends  {_id [string, the claim's], bucket [int64], state [done or released],
//	                   status [int32], answer [binary, AES-GCM], at [date]}
//	                  indexes: {bucket}
//	idempotency_keys  the previous release's records (one per key, by a unique key_id),
//	                  moved into claims at start (keys.go)
//
// Everything contended is an insert with a unique _id (a lease, a key's
// claim and its end, a saga's next fence); a saga's transition is the insert of its fence,
// "<saga id>/<version+1>", then the update of the saga by _id, so of two
// workers at one version (one whose lease expired and the one that took
// over) exactly one wins, on FerretDB, whose updates of one document are
// not atomic, as on MongoDB. Expiry is an application sweep
// (FerretDB has no TTL indexes).
package mongodb

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/mongodb"
)

// Collection names.
const (
	SagasCollection  = "sagas"
	OpenCollection   = "sagas_open"
	FencesCollection = "saga_fences"
	LeasesCollection = "saga_leases"
)

// Store implements bff.SagaStore, bff.LeaseStore and bff.IdempotencyStore.
type Store struct {
	sagas  *mongo.Collection
	open   *mongo.Collection
	fences *mongo.Collection
	leases *mongo.Collection
	claims *mongo.Collection
	ends   *mongo.Collection
	legacy *mongo.Collection
	// guardByRead: the store is FerretDB, where a transition's update is
	// by _id alone (the fence is the guard); MongoDB's is also filtered by
	// the version. See mongodb.IsFerretDB.
	guardByRead bool
	// keysSwept is the last bucket of idempotency records SweepKeys
	// deleted (0: none yet; a bucket of the real clock is far above).
	keysSwept atomic.Int64
}

var (
	_ bff.SagaStore        = (*Store)(nil)
	_ bff.LeaseStore       = (*Store)(nil)
	_ bff.IdempotencyStore = (*Store)(nil)
)

// New returns the store over db and creates its indexes.
func New(ctx context.Context, db *mongo.Database) (*Store, error) {
	ferret, err := mongodb.IsFerretDB(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("bff store: %w", err)
	}
	s := &Store{
		sagas:       db.Collection(SagasCollection),
		open:        db.Collection(OpenCollection),
		fences:      db.Collection(FencesCollection),
		leases:      db.Collection(LeasesCollection),
		claims:      db.Collection(ClaimsCollection),
		ends:        db.Collection(EndsCollection),
		legacy:      db.Collection(LegacyKeysCollection),
		guardByRead: ferret,
	}
	// One index per call: FerretDB v1 drops the connection when a
	// createIndexes of several indexes finds them existing already.
	for _, ix := range []struct {
		c      *mongo.Collection
		keys   bson.D
		unique bool
	}{
		{s.sagas, bson.D{{Key: "state", Value: 1}, {Key: "next_attempt_at", Value: 1}}, false},
		{s.sagas, bson.D{{Key: "state", Value: 1}, {Key: "updated_at", Value: 1}}, false},
		{s.fences, bson.D{{Key: "saga_id", Value: 1}}, false},
		{s.leases, bson.D{{Key: "saga_id", Value: 1}}, true},
		{s.leases, bson.D{{Key: "expires_at", Value: 1}}, false},
		{s.claims, bson.D{{Key: "bucket", Value: 1}}, false},
		{s.ends, bson.D{{Key: "bucket", Value: 1}}, false},
	} {
		if _, err := ix.c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetUnique(ix.unique)}); err != nil {
			return nil, fmt.Errorf("bff store: index of %s: %w", ix.c.Name(), err)
		}
	}
	if err := s.backfillMarkers(ctx); err != nil {
		return nil, err
	}
	if err := s.upgradeKeys(ctx, time.Now()); err != nil {
		return nil, err
	}
	return s, nil
}
