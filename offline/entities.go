package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/storage"
)

// loadEntities copies the entity table into a temporary table with its
// input row number.
func (e *Engine) loadEntities(ctx context.Context, q *prepared, ents Entities) error {
	if err := ents.checkOneForm(); err != nil {
		return err
	}
	switch {
	case ents.path != "" || ents.files != nil:
		what, list, err := e.parquetList(ctx, ents, &q.staged)
		if err != nil {
			return err
		}
		// Row order is (file, row in file); a glob's files come in lexical
		// order, a list's as listed.
		sql := fmt.Sprintf("CREATE TEMP TABLE %s AS SELECT *, (file_index::BIGINT << 40) + file_row_number AS %s FROM read_parquet(%s)",
			entitiesTable, colRow, list)
		if _, err := execCount(ctx, q.conn, sql); err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // cancelled while loading, not a bad table
			}
			return fmt.Errorf("%w: entity table %s: %s", ErrInvalidRequest, what, duckErr(err))
		}
	case ents.reader != nil:
		for _, f := range ents.reader.Schema().Fields() {
			if strings.HasPrefix(f.Name, internalPrefix) {
				return invalidf("entity table column %q uses the reserved prefix %s", f.Name, internalPrefix)
			}
		}
		numbered := newRowNumberReader(ents.reader)
		defer numbered.Release()
		ar, err := duckdb.NewArrowFromConn(q.conn)
		if err != nil {
			return err
		}
		release, err := ar.RegisterView(numbered, "__quiver_entity_stream")
		if err != nil {
			return fmt.Errorf("entity table: %w", err)
		}
		defer release()
		sql := fmt.Sprintf("CREATE TEMP TABLE %s AS SELECT * FROM __quiver_entity_stream", entitiesTable)
		if _, err := execCount(ctx, q.conn, sql); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := numbered.Err(); err != nil {
				// The stream failed (a bad or oversized message): that is
				// the cause, not DuckDB's report of it.
				return fmt.Errorf("entity table: %w", err)
			}
			return fmt.Errorf("%w: entity table: %s", ErrInvalidRequest, duckErr(err))
		}
		if err := numbered.Err(); err != nil {
			return fmt.Errorf("entity table: %w", err)
		}
	case ents.spinePlan != nil:
		sp := ents.spinePlan
		rel, err := e.sourceRelation(ctx, q.conn, sp.view, &q.staged, nil)
		if err != nil {
			return fmt.Errorf("spine: %w", err)
		}
		order := colKey
		if sp.view.aggregated() {
			order = colOrd
		}
		sql := fmt.Sprintf("CREATE TEMP TABLE %s AS %s", entitiesTable, spineSQL(duckDialect{}, sp, rel, order))
		if _, err := execCount(ctx, q.conn, sql); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: spine over %s: %s", ErrInvalidRequest, sp.View, duckErr(err))
		}
	default:
		return invalidf("no entity table (give a Parquet path or an Arrow stream)")
	}
	n, err := queryInt(ctx, q.conn, "SELECT count(*) FROM "+entitiesTable)
	if err != nil {
		return err
	}
	q.rows = n
	return nil
}

// globChars are the characters DuckDB expands in a Parquet path.
const globChars = "*?[{"

// parquetList renders the read_parquet argument of a Parquet entity table:
// a path (or glob) as given, or a list of files, none of which may hold a
// glob character (DuckDB would expand it). An s3:// path or glob, and
// s3:// files of a list, are staged (stage.go), held by st.
func (e *Engine) parquetList(ctx context.Context, ents Entities, st *staged) (what, list string, err error) {
	if ents.path != "" {
		if isRemote(ents.path) {
			files, err := e.stage(ctx, ents.path, st, nil)
			if err != nil {
				return "", "", stageError("entity table "+ents.path, err)
			}
			return ents.path, parquetFiles(files), nil
		}
		path, err := filepath.Abs(ents.path)
		if err != nil {
			return "", "", err
		}
		return ents.path, quoteString(path), nil
	}
	if len(ents.files) == 0 {
		return "", "", invalidf("entity table: an empty list of Parquet files")
	}
	paths := make([]string, len(ents.files))
	for i, f := range ents.files {
		if isRemote(f) {
			if strings.ContainsAny(f, storage.GlobChars) {
				return "", "", invalidf("entity file %q: a listed object's key may not hold glob characters (%s)", f, storage.GlobChars)
			}
			files, err := e.stage(ctx, f, st, nil)
			if err != nil {
				return "", "", stageError("entity table "+f, err)
			}
			paths[i] = files[0]
			continue
		}
		if strings.ContainsAny(f, globChars) {
			return "", "", invalidf("entity file %q: a listed file's name may not hold glob characters (%s)", f, globChars)
		}
		path, err := filepath.Abs(f)
		if err != nil {
			return "", "", err
		}
		paths[i] = path
	}
	what = ents.files[0]
	if len(ents.files) > 1 {
		what = fmt.Sprintf("%s (and %d more files)", ents.files[0], len(ents.files)-1)
	}
	return what, parquetFiles(paths), nil
}

// checkEntities checks the entity table's columns (as the session
// describes them, without its own) against the request, in the engine's
// types.
func checkEntities(types colTypes, cols []column, tsCol string, plans []*viewPlan, outCols []string, demands []*demand) error {
	byName := map[string]column{}
	var names []string
	for _, c := range cols {
		if strings.HasPrefix(c.name, internalPrefix) {
			return invalidf("entity table column %q uses the reserved prefix %s", c.name, internalPrefix)
		}
		byName[c.name] = c
		names = append(names, c.name)
	}
	ts, ok := byName[tsCol]
	switch {
	case !ok:
		return invalidf("entity table has no timestamp column %q (it has %s; name another with the timestamp column option)", tsCol, strings.Join(names, ", "))
	case !types.timestampType(ts.typ):
		return invalidf("entity table column %q is %s; the event timestamp must be a timestamp or date", tsCol, ts.typ)
	}
	for _, p := range plans {
		for _, k := range p.keys {
			c, ok := byName[k.entityCol]
			if !ok {
				return invalidf("entity table has no column %q for join key %s of view %s (map another column with the join-key map)", k.entityCol, k.joinKey, p.view.Name)
			}
			if !types.keyType(c.typ, k.typ) {
				return invalidf("entity table column %q is %s; join key %s of view %s is %s", k.entityCol, c.typ, k.joinKey, p.view.Name, k.typ)
			}
		}
	}
	for _, d := range demands {
		for _, f := range d.view.Request {
			c, ok := byName[f.Name]
			if !ok {
				return invalidf("entity table has no column %q for request field %s (%s) of on-demand view %s", f.Name, f.Name, f.Type, d.view.Def.Name)
			}
			if !types.castable(c.typ, f.Type) {
				return invalidf("entity table column %q is %s; request field %s of on-demand view %s is %s", f.Name, c.typ, f.Name, d.view.Def.Name, f.Type)
			}
		}
	}
	for _, name := range outCols {
		if _, clash := byName[name]; clash {
			return invalidf("feature %q has the name of an entity table column; rename the column or request full feature names", name)
		}
	}
	return nil
}

// checkOneForm refuses an entity table given in more than one form.
func (ents Entities) checkOneForm() error {
	given := 0
	for _, set := range []bool{ents.path != "", ents.files != nil, ents.reader != nil, ents.spine != nil} {
		if set {
			given++
		}
	}
	if given > 1 {
		return invalidf("entity table: give a Parquet path, Parquet files, an Arrow stream or a spine, not several")
	}
	return nil
}
