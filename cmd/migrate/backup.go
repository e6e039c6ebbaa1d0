package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	custmongo "github.com/acme/customer-platform/customer/mongodb"
)

func (c *command) backup(ctx context.Context) error {
	db, err := c.db(ctx)
	if err != nil {
		return err
	}
	n, err := backup(ctx, db.Collection(custmongo.CustomersCollection), c.flags.out)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.stdout, "backup: %d profiles of %s.%s written to %s\n", n, c.cfg.CustomerDB, custmongo.CustomersCollection, c.flags.out)
	return nil
}

func (c *command) restore(ctx context.Context) error {
	// Open the store first: the collection keeps its indexes. The restore
	// replaces the profiles without counting them in the staff's figures:
	// the store marks them to be recounted.
	st, err := c.store(ctx)
	if err != nil {
		return err
	}
	var n int
	if err := st.Uncounted(ctx, func(ctx context.Context) (err error) {
		n, err = restore(ctx, c.client.Database(c.cfg.CustomerDB).Collection(custmongo.CustomersCollection), c.flags.in, c.cfg.BatchSize)
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(c.env.stdout, "restore: %s.%s now holds the %d profiles of %s\n", c.cfg.CustomerDB, custmongo.CustomersCollection, n, c.flags.in)
	return nil
}

// backup writes every document of coll to path as a JSON array of
// canonical MongoDB Extended JSON documents (what `mongoimport --jsonArray`
// reads, and `migrate restore`). The file is written beside path and
// renamed into place once complete, so a half-written backup never looks
// like a backup; an existing file is never overwritten.
func backup(ctx context.Context, coll *mongo.Collection, path string) (n int, err error) {
	if _, err := os.Stat(path); err == nil {
		return 0, fmt.Errorf("%s exists: choose another file (a backup is never overwritten)", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return 0, fmt.Errorf("create backup: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 256<<10)
	if _, err := w.WriteString("["); err != nil {
		return 0, err
	}
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(1000))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", coll.Name(), err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		b, err := bson.MarshalExtJSON(cur.Current, true, false)
		if err != nil {
			return n, fmt.Errorf("encode document %d: %w", n+1, err)
		}
		if n > 0 {
			_, _ = w.WriteString(",")
		}
		_, _ = w.WriteString("\n")
		if _, err := w.Write(b); err != nil {
			return n, fmt.Errorf("write backup: %w", err)
		}
		n++
	}
	if err := cur.Err(); err != nil {
		return n, fmt.Errorf("read %s: %w", coll.Name(), err)
	}
	if _, err := w.WriteString("\n]\n"); err != nil {
		return n, err
	}
	if err := w.Flush(); err != nil {
		return n, fmt.Errorf("write backup: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return n, fmt.Errorf("write backup: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return n, fmt.Errorf("write backup: %w", err)
	}
	// A hard link never replaces an existing file; where links are not
	// supported, rename.
	if err := os.Link(tmp.Name(), path); err != nil {
		if _, serr := os.Stat(path); serr == nil {
			return n, fmt.Errorf("%s appeared while the backup was written: %w", path, err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return n, fmt.Errorf("put the backup in place: %w", err)
		}
		return n, nil
	}
	_ = os.Remove(tmp.Name())
	return n, nil
}

// readBackup streams the documents of a backup file to fn.
func readBackup(path string, fn func(bson.D) error) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 256<<10))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return 0, fmt.Errorf("%s is not a backup (want a JSON array of documents)", path)
	}
	n := 0
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return n, fmt.Errorf("%s: document %d: %w", path, n+1, err)
		}
		var d bson.D
		if err := bson.UnmarshalExtJSON(raw, true, &d); err != nil {
			return n, fmt.Errorf("%s: document %d: %w", path, n+1, err)
		}
		n++
		if err := fn(d); err != nil {
			return n, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return n, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return n, fmt.Errorf("%s: unexpected data after the array", path)
	}
	return n, nil
}

// restore replaces the documents of coll with those of a backup: the file
// is read through once first (a damaged file changes nothing), then every
// document is deleted and the backup's are inserted in batches, keeping the
// collection's indexes.
func restore(ctx context.Context, coll *mongo.Collection, path string, batch int) (int, error) {
	want, err := readBackup(path, func(bson.D) error { return nil })
	if err != nil {
		return 0, err
	}
	if _, err := coll.DeleteMany(ctx, bson.D{}); err != nil {
		return 0, fmt.Errorf("clear %s: %w", coll.Name(), err)
	}
	n := 0
	docs := make([]any, 0, batch)
	flush := func() error {
		if len(docs) == 0 {
			return nil
		}
		res, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		if res != nil {
			n += len(res.InsertedIDs)
		}
		docs = docs[:0]
		if err != nil {
			return fmt.Errorf("insert into %s (%d of the backup's %d documents restored): %w", coll.Name(), n, want, err)
		}
		return nil
	}
	if _, err := readBackup(path, func(d bson.D) error {
		docs = append(docs, d)
		if len(docs) == batch {
			return flush()
		}
		return nil
	}); err != nil {
		return n, err
	}
	if err := flush(); err != nil {
		return n, err
	}
	return n, nil
}
