package refreader_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/refreader"
)

var xSchema = arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)

// batch returns a batch of one int64 column x.
func batch(mem memory.Allocator, vals ...int64) arrow.RecordBatch {
	b := array.NewInt64Builder(mem)
	defer b.Release()
	b.AppendValues(vals, nil)
	col := b.NewArray()
	defer col.Release()
	return array.NewRecordBatch(xSchema, []arrow.Array{col}, int64(len(vals)))
}

// input returns a reader of the batches, wrapped so that its release is
// counted in *released.
func input(t *testing.T, released *int, recs ...arrow.RecordBatch) array.RecordReader {
	t.Helper()
	inner, err := array.NewRecordReader(xSchema, recs)
	require.NoError(t, err)
	for _, r := range recs {
		r.Release()
	}
	return refreader.New(inner, func() error { *released++; return nil })
}

// doubled maps x to x and 2x.
func doubled(mem memory.Allocator) (*arrow.Schema, func(arrow.RecordBatch) (arrow.RecordBatch, error)) {
	sch := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}, {Name: "y", Type: arrow.PrimitiveTypes.Int64}}, nil)
	return sch, func(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		x := rec.Column(0).(*array.Int64)
		b := array.NewInt64Builder(mem)
		defer b.Release()
		for i := range x.Len() {
			b.Append(2 * x.Value(i))
		}
		y := b.NewArray()
		defer y.Release()
		return array.NewRecordBatch(sch, []arrow.Array{x, y}, rec.NumRows()), nil
	}
}

// A mapping reader transforms every batch; its last Release, of many
// concurrent ones, releases the current batch and the input and closes
// once; nothing leaks; one Release too many panics.
func TestMapReleasesOnLastRelease(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	var released, closes int
	var closeErr error
	in := input(t, &released, batch(mem, 1, 2), batch(mem, 3))
	sch, fn := doubled(mem)
	r := refreader.Map(in, sch, fn, func() error {
		require.Equal(t, 1, released, "the input is released before close")
		closes++
		return errors.New("closed")
	}).OnClose(func(err error) { closeErr = err })
	require.Same(t, sch, r.Schema())

	require.True(t, r.Next())
	require.Equal(t, `[1 2]`, r.RecordBatch().Column(0).String())
	require.Equal(t, `[2 4]`, r.RecordBatch().Column(1).String())
	require.Same(t, r.RecordBatch(), r.Record())

	const n = 64
	for range n {
		r.Retain()
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); r.Release() }()
	}
	wg.Wait()
	require.Zero(t, released, "references are left: the input is held")
	require.Zero(t, closes)
	require.True(t, r.Next(), "the reader still reads")
	require.Equal(t, `[6]`, r.RecordBatch().Column(1).String())
	// Released holding a batch, before the end.
	r.Release()
	require.Equal(t, 1, released)
	require.Equal(t, 1, closes)
	require.EqualError(t, closeErr, "closed")
	require.Panics(t, r.Release)
}

// The error of fn ends the reading: Next returns false, Err reports it,
// and fn is not called again.
func TestMapStopsAtError(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	var released, calls int
	in := input(t, &released, batch(mem, 1), batch(mem, 2), batch(mem, 3))
	boom := errors.New("boom")
	sch, fn := doubled(mem)
	r := refreader.Map(in, sch, func(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		calls++
		if calls == 2 {
			return nil, boom
		}
		return fn(rec)
	}, nil)
	require.True(t, r.Next())
	require.NoError(t, r.Err())
	require.False(t, r.Next())
	require.ErrorIs(t, r.Err(), boom)
	require.Nil(t, r.RecordBatch())
	require.False(t, r.Next())
	require.Equal(t, 2, calls, "fn is not called after its error")
	r.Release()
	require.Equal(t, 1, released)
}

// The input's error is the mapping reader's; a nil batch from fn skips
// its input batch.
func TestMapInputErrorAndSkips(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	broken := errors.New("broken input")
	in := array.ReaderFromIter(xSchema, func(yield func(arrow.RecordBatch, error) bool) {
		for _, v := range []int64{1, 2, 3} {
			rec := batch(mem, v)
			ok := yield(rec, nil)
			rec.Release()
			if !ok {
				return
			}
		}
		yield(nil, broken)
	})
	r := refreader.Map(in, xSchema, func(rec arrow.RecordBatch) (arrow.RecordBatch, error) {
		if rec.Column(0).(*array.Int64).Value(0) == 2 {
			return nil, nil
		}
		rec.Retain()
		return rec, nil
	}, nil)
	var got []string
	for r.Next() {
		got = append(got, r.RecordBatch().Column(0).String())
	}
	require.Equal(t, []string{"[1]", "[3]"}, got)
	require.ErrorIs(t, r.Err(), broken)
	r.Release()
}

// NewBatches reads until next returns nil and does not call it again.
func TestBatchesEnd(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	calls, closes := 0, 0
	r := refreader.NewBatches(xSchema, func() (arrow.RecordBatch, error) {
		calls++
		if calls > 2 {
			return nil, nil
		}
		return batch(mem, int64(calls)), nil
	}, func() error { closes++; return nil })
	var rows int64
	for r.Next() {
		rows += r.RecordBatch().NumRows()
	}
	require.NoError(t, r.Err())
	require.EqualValues(t, 2, rows)
	require.False(t, r.Next())
	require.Equal(t, 3, calls)
	r.Retain()
	r.Release()
	require.Zero(t, closes)
	r.Release()
	require.Equal(t, 1, closes)
	require.Panics(t, r.Release)
}
