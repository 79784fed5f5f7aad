package offline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/quiverdata/quiver/internal/durable"
)

// TrainingSet builds the training set and returns a reader that streams it
// in input order. The caller must Release the reader; it holds a DuckDB
// connection until then.
func (e *Engine) TrainingSet(ctx context.Context, req *Request) (array.RecordReader, error) {
	s, res, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	return run(ctx, s, res)
}

// run starts the session's query and returns its reader, which closes
// the session when released; on-demand features are computed batch by
// batch over it.
func run(ctx context.Context, s session, res *resolved) (array.RecordReader, error) {
	rr, err := s.run(ctx)
	if err != nil {
		return nil, err
	}
	if len(res.demands) > 0 {
		return newDemandReader(rr, res.demands), nil
	}
	return rr, nil
}

// TrainingSetSchema returns the Arrow schema of the training set a request
// would build, without running the join.
func (e *Engine) TrainingSetSchema(ctx context.Context, req *Request) (*arrow.Schema, error) {
	s, res, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	defer s.close()
	sch, err := s.schema(ctx)
	if err != nil {
		return nil, err
	}
	if len(res.demands) > 0 {
		empty, err := array.NewRecordReader(sch, nil)
		if err != nil {
			return nil, err
		}
		r := newDemandReader(empty, res.demands)
		defer r.Release()
		return r.Schema(), nil
	}
	return sch, nil
}

// WriteParquet builds the training set into a Parquet file at path,
// written to a temporary name beside it, synced, and renamed into place
// (the directory synced too; package internal/durable), so that path
// holds either its old content or the whole new file, after a crash as
// well. On any failure the temporary file is removed. It returns the number of rows written.
func (e *Engine) WriteParquet(ctx context.Context, req *Request, path string) (n int64, err error) {
	s, res, err := e.prepare(ctx, req)
	if err != nil {
		return 0, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		s.close()
		return 0, err
	}
	tmp := durable.TempName(abs)
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
	var werr error
	if len(res.demands) > 0 {
		// On-demand columns are computed in Go: stream the result through
		// them into a Parquet writer.
		rr, err := run(ctx, s, res)
		if err != nil {
			return 0, err
		}
		defer rr.Release()
		n, werr = writeParquetFile(ctx, rr, tmp)
	} else {
		defer s.close()
		n, werr = s.copyParquet(ctx, tmp)
	}
	if werr != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("write training set to %s: %w", path, werr)
	}
	if err := durable.Publish(tmp, abs); err != nil {
		return 0, fmt.Errorf("write training set to %s: %w", path, err)
	}
	return n, nil
}
