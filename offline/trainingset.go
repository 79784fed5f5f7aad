package offline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"
)

// TrainingSet builds the training set and returns a reader that streams it
// in input order. The caller must Release the reader; it holds a DuckDB
// connection until then.
func (e *Engine) TrainingSet(ctx context.Context, req *Request) (array.RecordReader, error) {
	q, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	return q.run(ctx)
}

// run starts the prepared query and returns its reader, which closes the
// connection when released; on-demand features are computed batch by
// batch over it.
func (q *prepared) run(ctx context.Context) (array.RecordReader, error) {
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
	out := resultReader(rr, q.conn)
	if len(q.demands) > 0 {
		out = newDemandReader(out, q.demands)
	}
	return out, nil
}

// TrainingSetSchema returns the Arrow schema of the training set a request
// would build, without running the join.
func (e *Engine) TrainingSetSchema(ctx context.Context, req *Request) (*arrow.Schema, error) {
	q, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	defer q.close()
	ar, err := duckdb.NewArrowFromConn(q.conn)
	if err != nil {
		return nil, err
	}
	rr, err := ar.QueryContext(ctx, "SELECT * FROM ("+q.sql+") LIMIT 0")
	if err != nil {
		return nil, fmt.Errorf("describe training set: %s", duckErr(err))
	}
	defer rr.Release()
	if len(q.demands) > 0 {
		return newDemandReader(rr, q.demands).Schema(), nil
	}
	return rr.Schema(), nil
}

// WriteParquet builds the training set into a Parquet file at path,
// written to a temporary name beside it, synced, and renamed into place
// (the directory synced too), so that path holds either its old content or
// the whole new file, after a crash as well. On any failure the temporary
// file is removed. It returns the number of rows written.
func (e *Engine) WriteParquet(ctx context.Context, req *Request, path string) (n int64, err error) {
	q, err := e.prepare(ctx, req)
	if err != nil {
		return 0, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, q.fail(err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d-%d", abs, os.Getpid(), tmpSeq.Add(1))
	defer func() {
		if err == nil {
			return
		}
		// Whatever failed, nothing is left behind under the temporary name
		// (after a successful rename there is nothing there to remove).
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove temporary file: %w", rerr))
		}
	}()
	if len(q.demands) > 0 {
		// On-demand columns are computed in Go: stream the result through
		// them into a Parquet writer.
		rr, err := q.run(ctx)
		if err != nil {
			return 0, err
		}
		defer rr.Release()
		if n, err = writeParquetFile(ctx, rr, tmp); err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("write training set to %s: %w", path, err)
		}
	} else {
		defer q.close()
		n, err = execCount(ctx, q.conn, "COPY ("+q.sql+") TO "+quoteString(tmp)+" (FORMAT parquet, COMPRESSION zstd)")
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("write training set to %s: %s", path, duckErr(err))
		}
	}
	if err := syncPath(tmp); err != nil {
		return 0, fmt.Errorf("write training set to %s: sync: %w", path, err)
	}
	if err := os.Rename(tmp, abs); err != nil {
		return 0, fmt.Errorf("write training set to %s: %w", path, err)
	}
	if err := syncPath(filepath.Dir(abs)); err != nil {
		return 0, fmt.Errorf("write training set to %s: sync directory: %w", path, err)
	}
	return n, nil
}

// tmpSeq keeps the temporary names of concurrent writes apart.
var tmpSeq atomic.Int64

// syncPath flushes a file, or a directory's entries, to stable storage.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one to report
		return err
	}
	return f.Close()
}

// prepared is a request ready to run: its connection (holding the entity
// table), the query, and the number of entity rows.
type prepared struct {
	conn    *duckdb.Conn
	sql     string
	rows    int64
	release func()
	demands []*demand
}

func (q *prepared) close() {
	if q.release != nil {
		q.release()
	}
	_ = q.conn.Close() // closing drops the temporary tables; nothing to report
}

func (q *prepared) fail(err error) error {
	q.close()
	return err
}

// prepare opens a connection, loads the entity table, checks every column
// the joins need and renders the query.
func (e *Engine) prepare(ctx context.Context, req *Request) (*prepared, error) {
	res, err := e.resolve(req)
	if err != nil {
		return nil, err
	}
	plans, outCols := res.plans, res.columns
	tsCol := req.TimestampColumn
	if tsCol == "" {
		tsCol = DefaultTimestampColumn
	}
	conn, err := e.conn(ctx)
	if err != nil {
		return nil, err
	}
	q := &prepared{conn: conn, demands: res.demands}
	if err := e.loadEntities(ctx, q, req.Entities); err != nil {
		return nil, q.fail(err)
	}
	ecols, err := describe(ctx, conn, "SELECT * FROM "+entitiesTable)
	if err != nil {
		return nil, q.fail(err)
	}
	if err := checkEntities(ecols, tsCol, plans, outCols, res.demands); err != nil {
		return nil, q.fail(err)
	}
	sources := make([]string, len(plans))
	for i, p := range plans {
		rel, err := e.sourceRelation(ctx, conn, p)
		if err != nil {
			return nil, q.fail(err)
		}
		sources[i] = rel
	}
	q.sql = trainingSetSQL(plans, sources, tsCol, res.demands)
	return q, nil
}
