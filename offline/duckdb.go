package offline

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/registry"
)

// column is a named, typed column as DuckDB describes it.
type column struct {
	name, typ string
}

func keyTypeOK(have string, want registry.ValueType) bool {
	if want == registry.TypeString {
		return have == "VARCHAR"
	}
	return isIntegerType(have)
}

// describe returns the columns a query would produce.
func describe(ctx context.Context, conn *duckdb.Conn, query string) ([]column, error) {
	rows, err := conn.QueryContext(ctx, "DESCRIBE "+query, nil)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []column
	vals := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(vals); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		out = append(out, column{name: fmt.Sprint(vals[0]), typ: fmt.Sprint(vals[1])})
	}
}

func queryInt(ctx context.Context, conn *duckdb.Conn, query string) (int64, error) {
	rows, err := conn.QueryContext(ctx, query, nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	vals := make([]driver.Value, 1)
	if err := rows.Next(vals); err != nil {
		return 0, err
	}
	switch v := vals[0].(type) {
	case int64:
		return v, nil
	case int32:
		return int64(v), nil
	}
	return 0, fmt.Errorf("%s: unexpected %T", query, vals[0])
}

// execCount runs a statement and returns the number of rows it affected.
func execCount(ctx context.Context, conn *duckdb.Conn, query string) (int64, error) {
	res, err := conn.ExecContext(ctx, query, nil)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// duckErr shortens DuckDB's multi-line errors to their first line.
func duckErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// duckRenderer renders training sets as DuckDB SQL: one connection per
// training set, the entity table a temporary table of it.
type duckRenderer struct{ e *Engine }

var _ renderer = duckRenderer{}

func (duckRenderer) timestampType(have string) bool { return isTimestampType(have) }
func (duckRenderer) keyType(have string, want registry.ValueType) bool {
	return keyTypeOK(have, want)
}
func (duckRenderer) castable(have string, want registry.ValueType) bool { return castable(have, want) }

// begin opens a connection and loads the entity table into it.
func (r duckRenderer) begin(ctx context.Context, ents Entities) (session, error) {
	conn, err := r.e.conn(ctx)
	if err != nil {
		return nil, err
	}
	q := &prepared{e: r.e, conn: conn}
	if err := r.e.loadEntities(ctx, q, ents); err != nil {
		return nil, q.fail(err)
	}
	return q, nil
}

// prepared is a DuckDB training-set session: its connection (holding the
// entity table), the query once rendered, and the number of entity rows.
type prepared struct {
	e    *Engine
	conn *duckdb.Conn
	sql  string
	rows int64
	// merge, when every view has a fresh compacted copy, runs the join
	// as a merge (merge.go) instead of sql.
	merge *mergePlan
	// staged holds the copies of objects the request reads.
	staged staged
}

var _ session = (*prepared)(nil)

func (q *prepared) close() {
	_ = q.closeConn() // closing drops the temporary tables; nothing to report
}

// closeConn closes the connection, then lets the cache evict the copies
// the request read.
func (q *prepared) closeConn() error {
	err := q.conn.Close()
	q.staged.release()
	return err
}

func (q *prepared) fail(err error) error {
	q.close()
	return err
}

func (q *prepared) entityColumns(ctx context.Context) ([]column, error) {
	cols, err := describe(ctx, q.conn, "SELECT * FROM "+entitiesTable)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(cols, func(c column) bool { return c.name == colRow }), nil
}

// render checks every source relation the joins read and renders the
// query.
func (q *prepared) render(ctx context.Context, res *resolved, ts column) error {
	var bounds *timeBounds
	if q.e.readsObjects(res.plans) {
		b, err := q.timeBounds(ctx, ts)
		if err != nil {
			return err
		}
		bounds = &b
	}
	projs, err := sourceProjections(res.plans, bounds)
	if err != nil {
		return err
	}
	sources := make([]string, len(res.plans))
	for i, p := range res.plans {
		rel, err := q.e.sourceRelation(ctx, q.conn, p, &q.staged, projs[p.source.Name])
		if err != nil {
			return err
		}
		sources[i] = rel
	}
	q.sql = trainingSetSQL(res.plans, sources, ts.name, ts.typ, res.demands, q.e.join, res.cutoff)
	if res.cutoff.name != "" {
		return nil // per-row cutoffs run in SQL only
	}
	mp, err := q.e.planMerge(res, ts)
	if err != nil {
		return err
	}
	q.merge = mp
	return nil
}

// timeBounds returns the least and greatest time of the entity rows, as
// the join compares them.
func (q *prepared) timeBounds(ctx context.Context, ts column) (timeBounds, error) {
	t := castTo(ts.typ, quoteIdent(ts.name), registry.TypeTimestamp)
	rows, err := q.conn.QueryContext(ctx, fmt.Sprintf("SELECT epoch_us(min(%s)), epoch_us(max(%s)) FROM %s", t, t, entitiesTable), nil)
	if err != nil {
		return timeBounds{}, fmt.Errorf("entity table time bounds: %s", duckErr(err))
	}
	defer rows.Close()
	vals := make([]driver.Value, 2)
	if err := rows.Next(vals); err != nil {
		return timeBounds{}, fmt.Errorf("entity table time bounds: %s", duckErr(err))
	}
	lo, ok1 := vals[0].(int64)
	hi, ok2 := vals[1].(int64)
	return timeBounds{lo: lo, hi: hi, ok: ok1 && ok2}, nil
}

// run starts the query, or the merge join when the views have compacted
// copies; its reader closes the connection when released.
func (q *prepared) run(ctx context.Context) (array.RecordReader, error) {
	if q.merge != nil {
		want, err := q.schema(ctx)
		if err != nil {
			return nil, q.fail(err)
		}
		rr, err := q.runMerged(ctx, q.merge, want)
		if err == nil {
			return rr, nil
		}
		if !errors.Is(err, errNoMerge) {
			if ctx.Err() != nil {
				return nil, q.fail(ctx.Err())
			}
			return nil, q.fail(fmt.Errorf("merge join: %w", err))
		}
		// The SQL join does what the merge cannot.
	}
	ar, err := duckdb.NewArrowFromConn(q.conn)
	if err != nil {
		return nil, q.fail(err)
	}
	rr, err := ar.QueryContext(ctx, q.sql)
	if err != nil {
		if ctx.Err() != nil {
			return nil, q.fail(ctx.Err())
		}
		return nil, q.fail(fmt.Errorf("run training-set query: %s", duckErr(err)))
	}
	return resultReader(rr, q.closeConn), nil
}

func (q *prepared) schema(ctx context.Context) (*arrow.Schema, error) {
	ar, err := duckdb.NewArrowFromConn(q.conn)
	if err != nil {
		return nil, err
	}
	rr, err := ar.QueryContext(ctx, "SELECT * FROM ("+q.sql+") LIMIT 0")
	if err != nil {
		return nil, fmt.Errorf("describe training set: %s", duckErr(err))
	}
	defer rr.Release()
	return rr.Schema(), nil
}

func (q *prepared) copyParquet(ctx context.Context, path string) (int64, error) {
	if q.merge != nil {
		rr, err := q.run(ctx)
		if err != nil {
			return 0, err
		}
		defer rr.Release()
		return writeParquetFile(ctx, rr, path)
	}
	n, err := execCount(ctx, q.conn, "COPY ("+q.sql+") TO "+quoteString(path)+fmt.Sprintf(" (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE %d)", SaveBatchRows))
	if err != nil {
		return 0, errors.New(duckErr(err))
	}
	return n, nil
}
