package offline

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/quiverdata/quiver/internal/refreader"
	"github.com/quiverdata/quiver/transform"
	"github.com/quiverdata/quiver/value"
)

// EvaluationErrors is implemented by training-set readers that compute
// on-demand features: how many values failed at run time (and are null),
// and the first failure.
type EvaluationErrors interface {
	EvaluationErrors() (int, error)
}

// demandReader computes on-demand features batch by batch over the joined
// result, with the same compiled programs as online lookups, and drops
// the hidden input and request columns. It is a refreader.Map over the
// result (one reference-count rule for every reader here) that also
// counts evaluation errors.
type demandReader struct {
	*refreader.Batches
	keep    []int // input columns passed through
	demands []*demandCols
	errs    int
	first   error
}

type demandCols struct {
	*demand
	eval    *transform.Evaluator
	inputs  []int // index in the input schema of each of view.Inputs
	request []int // of each of view.Request
}

// newDemandReader returns the reader of in with on-demand features; it
// holds in's one reference (the caller must not release in).
func newDemandReader(in array.RecordReader, demands []*demand) *demandReader {
	r := &demandReader{}
	sch := in.Schema()
	var fields []arrow.Field
	for i, f := range sch.Fields() {
		if !strings.HasPrefix(f.Name, internalPrefix) {
			r.keep = append(r.keep, i)
			fields = append(fields, f)
		}
	}
	index := func(name string) int {
		idx := sch.FieldIndices(name)
		if len(idx) != 1 {
			panic(fmt.Sprintf("training-set column %q appears %d times", name, len(idx))) // resolve names every column once
		}
		return idx[0]
	}
	for _, d := range demands {
		dc := &demandCols{demand: d, eval: d.view.NewEvaluator()}
		for _, c := range d.inputCols {
			dc.inputs = append(dc.inputs, index(c))
		}
		for _, c := range d.reqCols {
			dc.request = append(dc.request, index(c))
		}
		for n, f := range d.features {
			fields = append(fields, arrow.Field{Name: d.outputs[n], Type: value.ArrowType(d.view.Features[f].Type), Nullable: true})
		}
		r.demands = append(r.demands, dc)
	}
	md := sch.Metadata()
	schema := arrow.NewSchema(fields, &md)
	r.Batches = refreader.Map(in, schema, func(rec arrow.RecordBatch) (arrow.RecordBatch, error) { return r.batch(schema, rec) }, nil)
	return r
}

// EvaluationErrors implements EvaluationErrors.
func (r *demandReader) EvaluationErrors() (int, error) { return r.errs, r.first }

// batch computes one batch's on-demand columns.
func (r *demandReader) batch(schema *arrow.Schema, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	rows := int(rec.NumRows())
	cols := make([]arrow.Array, 0, len(schema.Fields()))
	for _, i := range r.keep {
		cols = append(cols, rec.Column(i))
	}
	var computed []arrow.Array
	defer func() {
		for _, c := range computed {
			c.Release()
		}
	}()
	for _, d := range r.demands {
		inputs := make([]arrow.Array, len(d.inputs))
		for i, c := range d.inputs {
			inputs[i] = rec.Column(c)
		}
		request := make([]arrow.Array, len(d.request))
		for i, c := range d.request {
			request[i] = rec.Column(c)
		}
		res, err := d.eval.EvalBatch(memory.DefaultAllocator, rows, inputs, request)
		if err != nil {
			return nil, err
		}
		r.errs += res.Errors
		if r.first == nil {
			r.first = res.FirstError
		}
		for _, f := range d.features {
			computed = append(computed, res.Columns[f])
			cols = append(cols, res.Columns[f])
		}
		// Columns of features not requested are released unused.
		for f, c := range res.Columns {
			if !contains(d.features, f) {
				c.Release()
			}
		}
	}
	return array.NewRecordBatch(schema, cols, int64(rows)), nil
}

func contains(s []int, x int) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// writeParquetFile writes a reader's batches to a zstd Parquet file, in
// row groups of at most SaveBatchRows rows.
func writeParquetFile(ctx context.Context, rr array.RecordReader, path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w, err := pqarrow.NewFileWriter(rr.Schema(), f,
		parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithMaxRowGroupLength(SaveBatchRows)),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		_ = f.Close() // the writer error is the one to report
		return 0, err
	}
	var n int64
	for rr.Next() {
		if err := ctx.Err(); err != nil {
			_ = w.Close() // cancelled: the file is removed
			return 0, err
		}
		rec := rr.RecordBatch()
		if err := w.WriteBuffered(rec); err != nil {
			_ = w.Close() // the write error is the one to report
			return 0, err
		}
		n += rec.NumRows()
	}
	if err := rr.Err(); err != nil {
		_ = w.Close() // the read error is the one to report
		return 0, err
	}
	return n, w.Close()
}
