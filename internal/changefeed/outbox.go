package changefeed

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/telemetry"
)

// Collection is the outbox collection in the producer's database.
const Collection = "outbox"

// DefaultGrace is how long an event whose write did not report success
// waits before it is relayed anyway (the write may have landed before the
// process died or its answer was lost). It must exceed the longest write.
const DefaultGrace = 30 * time.Second

// record is an outbox document: the event and when it may be relayed.
// Only the request that inserted it updates it before ready_at (to make it
// ready at once), and afterwards only relays delete it, by _id, once it is
// in the stream: nothing contended is read-modified-written, and the
// outbox holds only the events not relayed yet. Relayed is always false
// here; an earlier release set it (with relayed_at) and kept the record for
// an hour, and the relay's prune deletes such records.
type record struct {
	Event   `bson:",inline"`
	ReadyAt time.Time `bson:"ready_at"`
	Relayed bool      `bson:"relayed"`
}

// OutboxOptions tune an Outbox; zero values take the defaults.
type OutboxOptions struct {
	Logger        *slog.Logger
	MeterProvider metric.MeterProvider
	// Grace is DefaultGrace unless set.
	Grace time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Outbox records a producer's events in its own database.
type Outbox struct {
	coll     *mongo.Collection
	log      *slog.Logger
	grace    time.Duration
	now      func() time.Time
	nudge    chan struct{}
	produced metric.Int64Counter
}

// NewOutbox returns the outbox of db and creates its index.
func NewOutbox(ctx context.Context, db *mongo.Database, o OutboxOptions) (*Outbox, error) {
	out := &Outbox{coll: db.Collection(Collection), log: o.Logger, grace: o.Grace, now: o.Now, nudge: make(chan struct{}, 1)}
	if out.log == nil {
		out.log = slog.Default()
	}
	if out.grace <= 0 {
		out.grace = DefaultGrace
	}
	if out.now == nil {
		out.now = time.Now
	}
	var err error
	if out.produced, err = telemetry.Meter(o.MeterProvider, instrumentation).Int64Counter("changefeed.events.produced",
		metric.WithDescription("Change events recorded in the outbox, by topic.")); err != nil {
		return nil, fmt.Errorf("changefeed metrics: %w", err)
	}
	// One index per command (FerretDB v1 drops the connection when one
	// command names several existing indexes).
	if _, err := out.coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "relayed", Value: 1}, {Key: "ready_at", Value: 1}}, Options: options.Index().SetName("relayed_ready_at"),
	}); err != nil {
		return nil, fmt.Errorf("outbox index: %w", err)
	}
	return out, nil
}

// Record announces a write: it inserts the event e (its ID, Time and
// Traceparent are filled in) BEFORE running write, then marks the event
// ready when write reports a change, or deletes it when write changed
// nothing or failed certainly (certain(err): the write was refused, say a
// missing document). After any other failure the event stays pending and
// is relayed after the grace period (the write may have landed). When the
// event cannot be recorded, write is not run and the error returned: no
// write goes unannounced.
func (o *Outbox) Record(ctx context.Context, e Event, write func() (changed bool, err error), certain func(error) bool) error {
	e.ID, e.Time, e.Traceparent = contract.NewID(), o.now().UTC(), traceparent(ctx)
	if _, err := o.coll.InsertOne(ctx, record{Event: e, ReadyAt: e.Time.Add(o.grace)}); err != nil {
		return fmt.Errorf("record the %s event: %w", e.Topic, err)
	}
	o.produced.Add(ctx, 1, metric.WithAttributes(attribute.String("topic", e.Topic)))
	changed, err := write()
	// The write is done; its event's upkeep must not be cut short by the
	// request ending (a failed upkeep leaves the event to the grace period).
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	switch {
	case err == nil && changed:
		if _, uerr := o.coll.UpdateOne(uctx, bson.D{{Key: "_id", Value: e.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "ready_at", Value: o.now().UTC()}}}}); uerr != nil {
			o.log.WarnContext(ctx, "change event not marked ready; it is relayed after the grace period",
				"event_id", e.ID, "topic", e.Topic, "grace", o.grace.String(), "error", uerr.Error())
		}
		o.Nudge()
	case err == nil || certain != nil && certain(err):
		if _, derr := o.coll.DeleteOne(uctx, bson.D{{Key: "_id", Value: e.ID}}); derr != nil {
			o.log.WarnContext(ctx, "change event of a write that changed nothing not deleted; it is relayed after the grace period (harmless)",
				"event_id", e.ID, "topic", e.Topic, "error", derr.Error())
		}
	}
	return err
}

// Nudge wakes the relays of this process (a new event is ready).
func (o *Outbox) Nudge() {
	select {
	case o.nudge <- struct{}{}:
	default:
	}
}
