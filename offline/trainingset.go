package offline

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
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
// whatever its extension, as Save does: durably, replacing a file there,
// in row groups of at most SaveBatchRows rows. It returns the number of
// rows written.
func (e *Engine) WriteParquet(ctx context.Context, req *Request, path string) (int64, error) {
	res, err := e.save(ctx, req, path, FormatParquet, SaveOptions{Overwrite: true})
	return res.Rows, err
}
