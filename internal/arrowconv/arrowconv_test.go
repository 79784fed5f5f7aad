package arrowconv

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

func TestValue(t *testing.T) {
	mem := memory.NewGoAllocator()
	ib := array.NewInt64Builder(mem)
	ib.AppendValues([]int64{7}, nil)
	ib.AppendNull()
	ints := ib.NewArray()
	defer ints.Release()
	v, err := Value(ints, 0)
	require.NoError(t, err)
	require.Equal(t, int64(7), v)
	v, err = Value(ints, 1)
	require.NoError(t, err)
	require.Nil(t, v)

	tb := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Microsecond})
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tb.Append(arrow.Timestamp(at.UnixMicro()))
	ts := tb.NewArray()
	defer ts.Release()
	v, err = Value(ts, 0)
	require.NoError(t, err)
	require.Equal(t, at, v)
}

// TestValueRefusesUnsupportedTypes: a column it cannot convert is an
// error, also inside a list, never a value that looks like data.
func TestValueRefusesUnsupportedTypes(t *testing.T) {
	mem := memory.NewGoAllocator()
	ub := array.NewUint64Builder(mem)
	ub.Append(1)
	u := ub.NewArray()
	defer u.Release()
	v, err := Value(u, 0)
	require.EqualError(t, err, "arrow type uint64 is not supported")
	require.Nil(t, v)

	lb := array.NewListBuilder(mem, arrow.PrimitiveTypes.Uint64)
	lb.Append(true)
	lb.ValueBuilder().(*array.Uint64Builder).Append(3)
	l := lb.NewArray()
	defer l.Release()
	_, err = Value(l, 0)
	require.EqualError(t, err, "list element 0: arrow type uint64 is not supported")
}
