// Package embedded runs the development stand-ins of the system's backing
// services inside the process: a MongoDB-wire-protocol server (FerretDB with
// its SQLite backend) and a Redis (a real redis-server child process when one
// is installed, else miniredis).
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Mongo is a running embedded MongoDB-protocol server.
type Mongo struct {
	URI     string
	cancel  context.CancelFunc
	done    chan struct{} // the server stopped
	indexed chan struct{} // the _id lookup indexer stopped
}

// StartMongo starts FerretDB on addr (host:port, port 0 picks a free one),
// keeping its SQLite files in dir. It fails with a clear message when the
// address is taken. logger may be nil to discard FerretDB's own logs.
func StartMongo(ctx context.Context, addr, dir string, logger *slog.Logger) (*Mongo, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded mongo: data dir: %w", err)
	}
	if err := checkFree(addr); err != nil {
		return nil, fmt.Errorf("embedded mongo: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    logger,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded mongo: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &Mongo{cancel: cancel, done: make(chan struct{}), indexed: make(chan struct{})}
	go func() {
		defer close(m.done)
		_ = f.Run(runCtx)
	}()
	// See idIndexer: lookups by _id become index lookups.
	go func() {
		defer close(m.indexed)
		newIDIndexer(dir, logger).run(runCtx)
	}()
	m.URI = f.MongoDBURI()
	if err := waitDial(ctx, m.URI[len("mongodb://"):len(m.URI)-1], 10*time.Second); err != nil {
		m.Close()
		return nil, fmt.Errorf("embedded mongo: %w", err)
	}
	return m, nil
}

// Close stops the server and waits for it to release its files.
func (m *Mongo) Close() {
	m.cancel()
	<-m.indexed
	<-m.done
}

// checkFree reports a clear error when a fixed TCP address is already in use.
func checkFree(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("bad listen address %q: %w", addr, err)
	}
	if port == "0" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("port %s is already in use (another instance running? stop it or choose another address): %w", addr, err)
	}
	return l.Close()
}

func waitDial(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %s: %w", addr, limit, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
