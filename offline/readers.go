package offline

import (
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/internal/refreader"
)

// resultReader wraps a query's reader so that its last Release closes the
// request's connection (which drops the temporary tables).
func resultReader(rr array.RecordReader, conn *duckdb.Conn) array.RecordReader {
	return refreader.New(rr, conn.Close)
}

// rowNumberReader appends the input row number to every batch.
type rowNumberReader struct {
	in     array.RecordReader
	schema *arrow.Schema
	next   int64
	cur    arrow.RecordBatch
	refs   int64
}

func newRowNumberReader(in array.RecordReader) *rowNumberReader {
	fields := append(append([]arrow.Field{}, in.Schema().Fields()...), arrow.Field{Name: colRow, Type: arrow.PrimitiveTypes.Int64})
	md := in.Schema().Metadata()
	return &rowNumberReader{in: in, schema: arrow.NewSchema(fields, &md), refs: 1}
}

func (r *rowNumberReader) Schema() *arrow.Schema { return r.schema }

func (r *rowNumberReader) Retain() { atomic.AddInt64(&r.refs, 1) }

func (r *rowNumberReader) Release() {
	if atomic.AddInt64(&r.refs, -1) == 0 && r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}

func (r *rowNumberReader) Err() error { return r.in.Err() }

func (r *rowNumberReader) Record() arrow.RecordBatch { return r.cur }

func (r *rowNumberReader) RecordBatch() arrow.RecordBatch { return r.cur }

func (r *rowNumberReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if !r.in.Next() {
		return false
	}
	rec := r.in.RecordBatch()
	n := int(rec.NumRows())
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.Reserve(n)
	for i := range n {
		b.UnsafeAppend(r.next + int64(i))
	}
	r.next += int64(n)
	rowCol := b.NewArray()
	defer rowCol.Release()
	cols := append(append([]arrow.Array{}, rec.Columns()...), rowCol)
	r.cur = array.NewRecordBatch(r.schema, cols, int64(n))
	return true
}
