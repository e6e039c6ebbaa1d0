package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB's SQLite backend uses
)

// FerretDB v1's SQLite backend stores each collection as a table of JSON
// documents, with a unique index on `_ferretdb_sjson->"_id"`. When a
// find, update or delete is filtered by exactly {_id: <string>}, it asks
// SQLite for `WHERE _ferretdb_sjson->'$._id' = ?`: the same value, but not
// the same expression as the index's, so SQLite cannot use the index and
// parses the JSON of every row instead. Every lookup by _id then costs time
// proportional to the collection, where MongoDB does an index lookup
// (docs/journal/benchmarks.md has the measurements).
//
// idIndexer closes that gap for the embedded server: it gives every
// collection table an index on the expression FerretDB's queries use, so
// those lookups are index lookups too. It changes no result (an index
// never does), only the plan. It watches the data directory because
// FerretDB creates tables lazily, on a collection's first write or index.
//
// A pass holds a database file open for about a millisecond. Should
// FerretDB drop that database in that moment, SQLite leaves its -wal and
// -shm files behind (FerretDB's close is then not the last one); they are
// harmless: SQLite discards the WAL of an empty database file, so a
// database created later under the same name starts clean. The tests' data
// directories are removed with them.
type idIndexer struct {
	dir  string
	log  *slog.Logger
	seen map[string]fileState // by database file
}

// idIndexPeriod is how often idIndexer looks for new tables. A pass opens
// each database file that changed and reads its schema; a file that did
// not change costs a stat.
const idIndexPeriod = 500 * time.Millisecond

// fileState tells whether a database file changed since the last pass.
type fileState struct {
	mainMod, walMod time.Time
	mainSize        int64
	walSize         int64
}

// idIndexPrefix names the indexes idIndexer creates; FerretDB's own are
// named after their table, so the two never collide.
const idIndexPrefix = "embedded_id_lookup_"

func newIDIndexer(dir string, log *slog.Logger) *idIndexer {
	return &idIndexer{dir: dir, log: log, seen: map[string]fileState{}}
}

// run indexes until ctx ends.
func (x *idIndexer) run(ctx context.Context) {
	t := time.NewTicker(idIndexPeriod)
	defer t.Stop()
	for {
		x.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass indexes the new tables of every database file that changed.
func (x *idIndexer) pass(ctx context.Context) {
	files, _ := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	live := make(map[string]bool, len(files))
	for _, f := range files {
		live[f] = true
		st, ok := stateOf(f)
		if !ok || st == x.seen[f] {
			continue
		}
		if err := x.indexFile(ctx, f); err != nil {
			// A database dropped meanwhile, or a busy moment: the
			// next pass tries again.
			x.log.DebugContext(ctx, "embedded mongo: _id lookup index not created", "file", filepath.Base(f), "error", err.Error())
			continue
		}
		x.seen[f] = st
	}
	for f := range x.seen {
		if !live[f] {
			delete(x.seen, f)
		}
	}
}

func stateOf(path string) (fileState, bool) {
	m, err := os.Stat(path)
	if err != nil {
		return fileState{}, false
	}
	st := fileState{mainMod: m.ModTime(), mainSize: m.Size()}
	if w, err := os.Stat(path + "-wal"); err == nil {
		st.walMod, st.walSize = w.ModTime(), w.Size()
	}
	return st, true
}

// indexFile creates the missing _id lookup indexes of one database file.
// mode=rw never creates a file FerretDB has just dropped.
func (x *idIndexer) indexFile(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, `SELECT t.name FROM sqlite_master t
		WHERE t.type = 'table' AND t.name NOT LIKE '\_ferretdb\_%' ESCAPE '\'
		AND t.sql LIKE '%\_ferretdb\_sjson%' ESCAPE '\'
		AND NOT EXISTS (SELECT 1 FROM sqlite_master i WHERE i.type = 'index' AND i.name = ? || t.name)`, idIndexPrefix)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			_ = rows.Close()
			return err
		}
		tables = append(tables, name)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	var errs []error
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %s ON %s (_ferretdb_sjson->'$._id')`,
			quoteIdent(idIndexPrefix+t), quoteIdent(t))
		if _, err := db.ExecContext(ctx, q); err != nil {
			errs = append(errs, fmt.Errorf("table %s: %w", t, err)) // the others still get theirs
		}
	}
	return errors.Join(errs...)
}

// quoteIdent quotes an SQLite identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
