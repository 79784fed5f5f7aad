package value

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestIntFloat(t *testing.T) {
	i, ok := Int(Int32, int64(math.MaxInt32))
	require.True(t, ok)
	require.Equal(t, int64(math.MaxInt32), i)
	_, ok = Int(Int32, int64(math.MaxInt32)+1)
	require.False(t, ok, "beyond int32")
	_, ok = Int(Int64, 1.0)
	require.False(t, ok, "a float is not an integer")
	_, ok = Int(Float64, 1)
	require.False(t, ok, "not an integer type")
	i, ok = Int(Int64, int8(-3))
	require.True(t, ok)
	require.Equal(t, int64(-3), i)

	f, ok := Float(Float32, 0.1)
	require.True(t, ok)
	require.Equal(t, float64(float32(0.1)), f, "rounded to float32")
	f, ok = Float(Float64, int32(7))
	require.True(t, ok)
	require.Equal(t, 7.0, f)
	_, ok = Float(Int64, 1.0)
	require.False(t, ok)
}

func TestFromIntFromFloat(t *testing.T) {
	for _, c := range []struct {
		e    Scalar
		n    int64
		want any
		err  string
	}{
		{Int32, -5, int32(-5), ""},
		{Int32, 1 << 40, nil, "1099511627776 does not fit int32"},
		{Int64, 1 << 40, int64(1 << 40), ""},
		{Float32, 3, float32(3), ""},
		{Float64, 3, 3.0, ""},
		{Bool, 1, nil, "1 is not a bool"},
	} {
		v, err := FromInt(c.e, c.n)
		if c.err != "" {
			require.EqualError(t, err, c.err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, c.want, v)
	}
	v, err := FromFloat(Float32, 1.5)
	require.NoError(t, err)
	require.Equal(t, float32(1.5), v)
	_, err = FromFloat(Float32, 1e39)
	require.EqualError(t, err, "1e+39 does not fit float32")
	v, err = FromFloat(Float32, math.Inf(-1))
	require.NoError(t, err, "an infinity stays one")
	require.Equal(t, float32(math.Inf(-1)), v)
	_, err = FromFloat(Int64, 1)
	require.EqualError(t, err, "1 is not a int64")

	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, at, FromMicros(Timestamp, at.UnixMicro()))
	require.Equal(t, int32(-2), FromMicros(Int32, -2))
	require.Equal(t, int64(9), FromMicros(Int64, 9))
	require.Nil(t, FromMicros(String, 9))
}

func TestCanon(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	b := []byte{1, 2}
	for _, c := range []struct {
		typ  Type
		v    any
		want any
	}{
		{Type{Elem: Int32}, 7, int32(7)},
		{Type{Elem: Int64}, int32(7), int64(7)},
		{Type{Elem: Float32}, 0.1, float32(0.1)},
		{Type{Elem: Float64}, int64(2), 2.0},
		{Type{Elem: Bool}, true, true},
		{Type{Elem: String}, "s", "s"},
		{Type{Elem: Bytes}, b, []byte{1, 2}},
		{Type{Elem: Timestamp}, at, time.Date(2026, 12, 1, 9, 0, 0, 123456000, time.UTC)},
		{Type{Elem: Float32, List: true}, []any{1.0, int64(2)}, []float32{1, 2}},
		{Type{Elem: Int64, List: true}, []int32{1}, []int64{1}},
	} {
		got, err := Canon(c.typ, c.v)
		require.NoError(t, err, "%s %v", c.typ, c.v)
		require.Equal(t, c.want, got, "%s %v", c.typ, c.v)
		require.True(t, Valid(c.typ, c.v), "%s %v", c.typ, c.v)
	}
	got, err := Canon(Type{Elem: Bytes}, b)
	require.NoError(t, err)
	b[0] = 9
	require.Equal(t, []byte{1, 2}, got, "bytes are copied")

	for _, c := range []struct {
		typ  Type
		v    any
		want string
	}{
		{Type{Elem: Int32}, nil, "null, want a value of type int32"},
		{Type{Elem: Int32}, int64(1) << 40, "1099511627776 (int64) is not an int32"},
		{Type{Elem: String}, 1, "1 (int) is not a string"},
		{Type{Elem: Bool, List: true}, true, "bool is not a list"},
		{Type{Elem: Bool, List: true}, []any{true, nil}, "list element 1 is null; lists hold no nulls"},
		{Type{Elem: Int64, List: true}, []any{"x"}, "list element 0: x (string) is not an int64"},
	} {
		_, err := Canon(c.typ, c.v)
		require.EqualError(t, err, c.want)
		require.False(t, Valid(c.typ, c.v), "%s %v", c.typ, c.v)
	}
}
