package changefeed

import (
	"context"
	"log/slog"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/mongo"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ProducerOptions configures OpenProducer.
type ProducerOptions struct {
	Logger         *slog.Logger
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// OpenProducer is how a service produces change events: the outbox in its
// own database db and the relay from it to the stream on rdb, which the
// service runs until it stops. Without Redis (rdb nil) there is no one to
// consume events, and it returns neither (nil, nil, nil). rdb is what
// redisconn.OpenIfSet returns: an untyped nil when Redis is not set.
func OpenProducer(ctx context.Context, db *mongo.Database, rdb redis.UniversalClient, o ProducerOptions) (*Outbox, *Relay, error) {
	if rdb == nil {
		return nil, nil, nil
	}
	out, err := NewOutbox(ctx, db, OutboxOptions{Logger: o.Logger, MeterProvider: o.MeterProvider})
	if err != nil {
		return nil, nil, err
	}
	relay, err := NewRelay(out, rdb, RelayOptions{Logger: o.Logger, MeterProvider: o.MeterProvider, TracerProvider: o.TracerProvider})
	if err != nil {
		return nil, nil, err
	}
	return out, relay, nil
}
