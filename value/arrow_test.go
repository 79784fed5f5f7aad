package value

import (
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

func TestFromArrow(t *testing.T) {
	mem := memory.NewGoAllocator()
	ib := array.NewInt64Builder(mem)
	ib.AppendValues([]int64{7}, nil)
	ib.AppendNull()
	ints := ib.NewArray()
	defer ints.Release()
	v, err := FromArrow(ints, 0)
	require.NoError(t, err)
	require.Equal(t, int64(7), v)
	v, err = FromArrow(ints, 1)
	require.NoError(t, err)
	require.Nil(t, v)

	tb := array.NewTimestampBuilder(mem, &arrow.TimestampType{Unit: arrow.Microsecond})
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tb.Append(arrow.Timestamp(at.UnixMicro()))
	ts := tb.NewArray()
	defer ts.Release()
	v, err = FromArrow(ts, 0)
	require.NoError(t, err)
	require.Equal(t, at, v)
}

// TestFromArrowRefusesUnsupportedTypes: a column it cannot convert is an
// error, also inside a list, never a value that looks like data.
func TestFromArrowRefusesUnsupportedTypes(t *testing.T) {
	mem := memory.NewGoAllocator()
	ub := array.NewUint64Builder(mem)
	ub.Append(1)
	u := ub.NewArray()
	defer u.Release()
	v, err := FromArrow(u, 0)
	require.EqualError(t, err, "arrow type uint64 is not supported")
	require.Nil(t, v)

	lb := array.NewListBuilder(mem, arrow.PrimitiveTypes.Uint64)
	lb.Append(true)
	lb.ValueBuilder().(*array.Uint64Builder).Append(3)
	l := lb.NewArray()
	defer l.Release()
	_, err = FromArrow(l, 0)
	require.EqualError(t, err, "list element 0: arrow type uint64 is not supported")
}
