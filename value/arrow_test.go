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

// TestArrowRoundTrip: every type's canonical values go into a builder of
// its ArrowType and come back from FromArrow as Canon makes them.
func TestArrowRoundTrip(t *testing.T) {
	mem := memory.NewGoAllocator()
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	for _, c := range []struct {
		typ Type
		v   any
	}{
		{Type{Elem: Int32}, int32(-7)},
		{Type{Elem: Int64}, int64(1) << 40},
		{Type{Elem: Float32}, float32(1.5)},
		{Type{Elem: Float64}, 0.25},
		{Type{Elem: Bool}, true},
		{Type{Elem: String}, "s"},
		{Type{Elem: Bytes}, []byte{0, 1}},
		{Type{Elem: Timestamp}, at},
		{Type{Elem: Float32, List: true}, []float32{1, 2}},
		{Type{Elem: String, List: true}, []string{}},
	} {
		dt := ArrowType(c.typ)
		require.NotNil(t, dt, c.typ.String())
		b := array.NewBuilder(mem, dt)
		AppendArrow(b, c.v)
		AppendArrow(b, nil)
		a := b.NewArray()
		b.Release()
		require.True(t, arrow.TypeEqual(dt, a.DataType()), c.typ.String())
		got, err := FromArrow(a, 0)
		require.NoError(t, err)
		canon, err := Canon(c.typ, got)
		require.NoError(t, err, "%s %v", c.typ, got)
		require.Equal(t, c.v, canon, c.typ.String())
		got, err = FromArrow(a, 1)
		require.NoError(t, err)
		require.Nil(t, got)
		a.Release()
	}
	require.Equal(t, "list<item: float32, nullable>", ArrowType(Type{Elem: Float32, List: true}).String())
	require.Equal(t, "timestamp[us]", ArrowType(TypeTimestamp).String())
	require.Nil(t, ArrowType(Type{}))
}
