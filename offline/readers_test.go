package offline

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// countingReader counts the references taken and dropped on a reader.
type countingReader struct {
	array.RecordReader
	refs int
}

func (r *countingReader) Retain()  { r.refs++; r.RecordReader.Retain() }
func (r *countingReader) Release() { r.refs--; r.RecordReader.Release() }

func int64Reader(t *testing.T, batches ...[]int64) *countingReader {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	var recs []arrow.RecordBatch
	for _, vals := range batches {
		b := array.NewInt64Builder(memory.DefaultAllocator)
		b.AppendValues(vals, nil)
		col := b.NewArray()
		b.Release()
		recs = append(recs, array.NewRecordBatch(schema, []arrow.Array{col}, int64(len(vals))))
		col.Release()
	}
	rr, err := array.NewRecordReader(schema, recs)
	require.NoError(t, err)
	for _, rec := range recs {
		rec.Release()
	}
	return &countingReader{RecordReader: rr, refs: 1}
}

// TestRowNumberReader numbers rows across batches and leaves the caller
// its own reference to the entity stream.
func TestRowNumberReader(t *testing.T) {
	in := int64Reader(t, []int64{7, 8}, []int64{9})
	r := newRowNumberReader(in)
	require.Equal(t, 2, in.refs, "the reader takes a reference of its own")
	var rows []int64
	for r.Next() {
		rec := r.RecordBatch()
		require.Equal(t, colRow, rec.Schema().Field(1).Name)
		rows = append(rows, rec.Column(1).(*array.Int64).Int64Values()...)
	}
	require.NoError(t, r.Err())
	require.Equal(t, []int64{0, 1, 2}, rows)
	r.Release()
	require.Equal(t, 1, in.refs, "the caller still holds and releases the stream")
	in.Release()
}

// TestDemandReaderReleasesInput: a demand reader holds its input's one
// reference and drops it on its last Release, not before.
func TestDemandReaderReleasesInput(t *testing.T) {
	in := int64Reader(t, []int64{1})
	r := newDemandReader(in, nil)
	r.Retain()
	r.Release()
	require.Equal(t, 1, in.refs)
	require.True(t, r.Next())
	require.EqualValues(t, 1, r.RecordBatch().NumRows())
	r.Release()
	require.Equal(t, 0, in.refs)
	n, err := r.EvaluationErrors()
	require.Zero(t, n)
	require.NoError(t, err)
}
