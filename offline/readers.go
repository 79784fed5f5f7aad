package offline

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiverdata/quiver/internal/refreader"
)

// resultReader wraps a query's reader so that its last Release closes the
// request's connection (which drops the temporary tables) and lets go of
// what it read: closeConn.
func resultReader(rr array.RecordReader, closeConn func() error) array.RecordReader {
	return refreader.New(rr, closeConn)
}

// newRowNumberReader appends the input row number (colRow) to every batch
// of in. It takes a reference of in of its own: the caller still releases
// in, and the reader's last Release drops its reference.
func newRowNumberReader(in array.RecordReader) *refreader.Batches {
	fields := append(append([]arrow.Field{}, in.Schema().Fields()...), arrow.Field{Name: colRow, Type: arrow.PrimitiveTypes.Int64})
	md := in.Schema().Metadata()
	schema := arrow.NewSchema(fields, &md)
	var next int64
	in.Retain()
	return refreader.Map(in, schema, func(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		n := int(rec.NumRows())
		b := array.NewInt64Builder(memory.DefaultAllocator)
		defer b.Release()
		b.Reserve(n)
		for i := range n {
			b.UnsafeAppend(next + int64(i))
		}
		next += int64(n)
		rowCol := b.NewArray()
		defer rowCol.Release()
		cols := append(append([]arrow.Array{}, rec.Columns()...), rowCol)
		return array.NewRecordBatch(schema, cols, int64(n)), nil
	}, nil)
}
