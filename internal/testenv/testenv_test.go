package testenv

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/acme/customer-platform/internal/mongodb"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestMongoUniqueIndex(t *testing.T) {
	t.Parallel()
	_, db := Mongo(t)
	ctx := context.Background()
	coll := db.Collection("c")
	_, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "k", Value: 1}}, Options: options.Index().SetUnique(true)})
	Must(t, err, "create index")
	_, err = coll.InsertOne(ctx, bson.M{"k": 1})
	Must(t, err, "insert")
	if _, err = coll.InsertOne(ctx, bson.M{"k": 1}); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("second insert: want duplicate key error, got %v", err)
	}
}

func TestRedisStopStart(t *testing.T) {
	t.Parallel()
	r := Redis(t)
	opt, err := redis.ParseURL(r.URL)
	Must(t, err, "parse")
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	Must(t, c.Set(ctx, "k", "v", 0).Err(), "set")
	r.Stop()
	if err := c.Get(ctx, "k").Err(); err == nil {
		t.Fatal("get succeeded with redis stopped")
	}
	Must(t, r.Start(ctx), "restart")
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
}

// Stores choose how to guard their updates by the server they talk to.
func TestEmbeddedServerIsRecognisedAsFerretDB(t *testing.T) {
	t.Parallel()
	_, db := Mongo(t)
	ferret, err := mongodb.IsFerretDB(context.Background(), db)
	if err != nil || !ferret {
		t.Fatalf("IsFerretDB = %v, %v; want true", ferret, err)
	}
}
