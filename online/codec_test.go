package online

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

func TestCodecRejectsValuesOfTheWrongType(t *testing.T) {
	c := NewCodec(testDefinitions(t).FeatureView("all_types"))
	vals := func(i int, v any) []any {
		out := make([]any, len(c.Types()))
		out[i] = v
		return out
	}
	for _, tc := range []struct {
		i    int
		v    any
		want string
	}{
		{0, int64(1) << 40, "feature i32: 1099511627776 (int64) is not an int32"},
		{1, "7", `feature i64: 7 (string) is not an int64`},
		{4, 1, "feature b: 1 (int) is not a bool"},
		{8, []float32{1}, ""},
		{8, []any{float32(1), nil}, "feature emb: list element 1 is null; lists hold no nulls"},
		{8, 3.0, "feature emb: float64 is not a list"},
		{7, "2026-01-01", "feature ts: 2026-01-01 (string) is not a timestamp"},
	} {
		_, err := c.Encode(nil, base, vals(tc.i, tc.v))
		if tc.want == "" {
			require.NoError(t, err)
			continue
		}
		require.EqualError(t, err, tc.want)
	}
	_, err := c.Encode(nil, base, []any{1})
	require.EqualError(t, err, "encode row: 1 values for 12 features")
}

func TestCodecFingerprintDetectsChangedViews(t *testing.T) {
	defs := testDefinitions(t)
	v1 := NewCodec(defs.FeatureView("v1"))
	row, err := v1.Encode(nil, base, []any{int64(3)})
	require.NoError(t, err)
	changed := *defs.FeatureView("v1")
	changed.Features = []*registry.Feature{{Name: "x", Type: registry.ValueType{Elem: registry.Float64}}}
	at, ok, err := NewCodec(&changed).Decode(row, make([]any, 1))
	require.NoError(t, err)
	require.False(t, ok, "a row written for other features is not decoded")
	require.Equal(t, base, at)
}

func TestEventTimeOrderIsByteOrder(t *testing.T) {
	c := NewCodec(testDefinitions(t).FeatureView("v1"))
	times := []time.Time{time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(-1, 0), time.Unix(0, 0), base, base.Add(time.Microsecond)}
	var prev []byte
	for _, at := range times {
		row, err := c.Encode(nil, at, []any{int64(0)})
		require.NoError(t, err)
		got, err := EventTime(row)
		require.NoError(t, err)
		require.Equal(t, at.UTC(), got)
		if prev != nil {
			require.Less(t, string(prev[eventTimeFrom:eventTimeTo]), string(row[eventTimeFrom:eventTimeTo]))
		}
		prev = row
	}
}

func TestEncodeEntity(t *testing.T) {
	b, err := EncodeEntity([]registry.ValueType{registry.TypeInt64, registry.TypeString}, []any{int64(-5), "a,b{c}:d%e f"})
	require.NoError(t, err)
	require.Equal(t, "-5,a%2Cb%7Bc%7D%3Ad%25e%20f", string(b))
	_, err = EncodeEntity([]registry.ValueType{registry.TypeInt64}, []any{"5"})
	require.EqualError(t, err, "join key value 5 (string) is not an int64")
}

// FuzzDecode: decoding arbitrary bytes never panics.
func FuzzDecode(f *testing.F) {
	c := NewCodec(testDefinitions(f).FeatureView("all_types"))
	row, err := c.Encode(nil, base, []any{int32(1), int64(2), float32(3), 4.0, true, "s", []byte("b"), base,
		[]float32{1, 2}, []int64{3}, []string{"x"}, []time.Time{base}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(row)
	f.Add(row[:headerLen+1])
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		out := make([]any, len(c.Types()))
		_, _, _ = c.Decode(data, out) // must not panic; errors are expected
		// The typed path, with every other feature requested.
		cols := make([]*Column, len(c.Types()))
		for i, ty := range c.Types() {
			if i%2 == 0 {
				col := newColumn(ty, 1)
				cols[i] = &col
			}
		}
		_, _, _ = c.decodeInto(data, 0, cols, make([]bool, len(cols)))
	})
}
