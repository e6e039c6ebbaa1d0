package mongodb

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// IsFerretDB reports whether db is served by FerretDB (the embedded
// development and test database) rather than MongoDB: FerretDB's buildInfo
// carries a ferretdbVersion field.
//
// Stores use it where FerretDB v1 differs in cost, not in meaning. Its SQLite
// backend hands only a filter that is exactly {_id: <string>} to SQLite;
// any other filter makes it read and decode every document of the
// collection, and its filtered updates are a read and a write that are not
// atomic anyway (see docs/ferretdb.md). So a guarded update is cheaper there as
// a read by _id, a check, and a write by _id, which is what FerretDB would
// do inside, minus the scan; MongoDB keeps the atomic filtered update.
func IsFerretDB(ctx context.Context, db *mongo.Database) (bool, error) {
	var info bson.M
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, fmt.Errorf("mongodb buildInfo: %w", err)
	}
	_, ok := info["ferretdbVersion"]
	return ok, nil
}
