package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"go.mongodb.org/mongo-driver/mongo"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer/legacy"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/mongodb"
	"github.com/acme/customer-platform/internal/upstream"
)

// command holds one run's connections.
type command struct {
	cfg       Config
	env       env
	log       *slog.Logger
	flags     flags
	client    *mongo.Client
	transport *http.Transport // of the auth client
}

func (c *command) close() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
	if c.client != nil {
		mongodb.Disconnect(context.Background(), c.client)
	}
}

func (c *command) db(ctx context.Context) (*mongo.Database, error) {
	cl, err := mongodb.Connect(ctx, c.cfg.MongoURI.Reveal(), "migrate", c.tracer())
	if err != nil {
		return nil, err
	}
	c.client = cl
	return cl.Database(c.cfg.CustomerDB), nil
}

// store opens the customer store (creating its indexes, the unique one on
// user_id above all, when the service has not yet).
func (c *command) store(ctx context.Context) (profileStore, error) {
	db, err := c.db(ctx)
	if err != nil {
		return profileStore{}, err
	}
	s, err := custmongo.New(ctx, db)
	if err != nil {
		return profileStore{}, err
	}
	return profileStore{s}, nil
}

// directory returns the auth client, having checked the service credentials.
func (c *command) directory(ctx context.Context) (authDirectory, error) {
	c.transport = http.DefaultTransport.(*http.Transport).Clone()
	c.transport.MaxIdleConnsPerHost = c.cfg.Lookups
	cl := authclient.New(c.clientOptions(c.cfg.AuthURL, c.cfg.AuthTimeout))
	d := authDirectory{client: cl, tokens: authclient.NewServiceTokens(cl, c.cfg.ClientID, c.cfg.ClientSecret.Reveal())}
	if _, err := d.tokens.Token(ctx); err != nil {
		return authDirectory{}, fmt.Errorf("sign in to the auth service at %s as client %s: %w", c.cfg.AuthURL, c.cfg.ClientID, err)
	}
	return d, nil
}

// tracer is the run's tracer provider; nil without telemetry (the
// clients' default, no spans).
func (c *command) tracer() trace.TracerProvider {
	if c.env.telemetry == nil {
		return nil
	}
	return c.env.telemetry.Tracer
}

// clientOptions are the options of a typed client of a service at base,
// on the run's transport and telemetry.
func (c *command) clientOptions(base string, timeout time.Duration) upstream.Options {
	o := upstream.Options{BaseURL: base, Timeout: timeout, Transport: c.transport}
	if t := c.env.telemetry; t != nil {
		o.TracerProvider, o.MeterProvider, o.Propagator = t.Tracer, t.Meter, t.Propagator
	}
	return o
}

func (c *command) options(total int) legacy.Options {
	o := legacy.Options{
		AcceptPartialAddress: c.flags.acceptPartial,
		CreateMissingUsers:   c.flags.create,
		BatchSize:            c.cfg.BatchSize,
		Lookups:              c.cfg.Lookups,
		AfterBatch:           c.env.afterBatch,
	}
	if c.env.progress && total > 0 {
		bar := progressbar.NewOptions(total,
			progressbar.OptionSetWriter(c.env.stderr),
			progressbar.OptionSetDescription("records"),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("records"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.env.stderr) }),
		)
		o.Progress = func(n int) { _ = bar.Set(n) }
	}
	return o
}

// input is what plan, apply and verify work on: the auth service, the
// customer store (zero for plan, which writes nothing) and the opened
// legacy export with its record count (0 without a progress bar).
type input struct {
	dir    authDirectory
	store  profileStore
	reader *legacy.Reader
	file   io.Closer
	total  int
}

// open signs in to the auth service, opens the customer store when
// withStore, then the input; the caller closes in.file.
func (c *command) open(ctx context.Context, withStore bool) (in input, err error) {
	if in.dir, err = c.directory(ctx); err != nil {
		return input{}, err
	}
	if withStore {
		if in.store, err = c.store(ctx); err != nil {
			return input{}, err
		}
	}
	if in.reader, in.file, in.total, err = c.openInput(); err != nil {
		return input{}, err
	}
	return in, nil
}

// openInput opens the legacy export; with a progress bar, the records are
// counted first so the bar has a total and an ETA.
func (c *command) openInput() (*legacy.Reader, io.Closer, int, error) {
	total := 0
	if c.env.progress {
		n, err := countRecords(c.flags.input)
		if err != nil {
			return nil, nil, 0, err
		}
		total = n
	}
	f, err := os.Open(c.flags.input)
	if err != nil {
		return nil, nil, 0, err
	}
	r, err := legacy.NewReader(f)
	if err != nil {
		_ = f.Close()
		return nil, nil, 0, fmt.Errorf("%s: %w", c.flags.input, err)
	}
	return r, f, total, nil
}

func countRecords(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := legacy.NewReader(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	n := 0
	for {
		if _, err := r.Next(); err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, fmt.Errorf("%s: %w", path, err)
		}
		n++
	}
}
