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

// The reader closes once, on the last of many concurrent releases, and not
// before.
func TestCloseOnLastRelease(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	defer mem.AssertSize(t, 0)
	sch := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewInt64Builder(mem)
	b.AppendValues([]int64{1, 2, 3}, nil)
	col := b.NewArray()
	b.Release()
	rec := array.NewRecordBatch(sch, []arrow.Array{col}, 3)
	col.Release()
	inner, err := array.NewRecordReader(sch, []arrow.RecordBatch{rec})
	require.NoError(t, err)
	rec.Release()

	var closes int
	var closeErr error
	r := refreader.New(inner, func() error { closes++; return errors.New("closed") }).OnClose(func(err error) { closeErr = err })
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
	require.Zero(t, closes, "references are left: nothing is closed yet")
	require.True(t, r.Next(), "the reader still reads")
	r.Release()
	require.Equal(t, 1, closes)
	require.EqualError(t, closeErr, "closed")
	require.Panics(t, r.Release)
}
