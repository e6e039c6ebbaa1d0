package mongodb

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// ClockSkew is how far the database server's clock is ahead of now (taken
// at the middle of the hello round trip; negative: behind). Services that
// write times other replicas compare with their own clocks (leases, the
// BFF's idempotency days) check it at start: every replica's skew against
// the one server bounds the replicas' skew against each other.
func ClockSkew(ctx context.Context, db *mongo.Database, now func() time.Time) (time.Duration, error) {
	var res struct {
		LocalTime time.Time `bson:"localTime"`
	}
	sent := now()
	if err := db.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&res); err != nil {
		return 0, fmt.Errorf("mongodb hello: %w", err)
	}
	if res.LocalTime.IsZero() {
		return 0, fmt.Errorf("mongodb hello: no localTime")
	}
	mid := sent.Add(now().Sub(sent) / 2)
	return res.LocalTime.Sub(mid), nil
}

// WarnIfClockSkewed logs a warning when this replica's clock is more than
// allowed off the database's (or could not be compared): the one start-up
// check of the services that write times other replicas read.
func WarnIfClockSkewed(ctx context.Context, db *mongo.Database, log *slog.Logger, allowed time.Duration) {
	skew, err := ClockSkew(ctx, db, time.Now)
	switch {
	case err != nil:
		log.WarnContext(ctx, "clock not compared with the database's", "error", err.Error())
	case skew.Abs() > allowed:
		log.WarnContext(ctx, "this replica's clock disagrees with the database's: keep the replicas' clocks synchronised (NTP)",
			"skew", skew.String(), "allowed", allowed.String())
	}
}
