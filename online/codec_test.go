package online

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
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

// TestTypedDecodeRefusesWhatGenericRefuses: a value the generic decoder
// refuses (an int32 out of range, a bool byte of 2) is refused by the
// typed lookup path too, also when its feature is not asked for.
func TestTypedDecodeRefusesWhatGenericRefuses(t *testing.T) {
	c := NewCodec(testDefinitions(t).FeatureView("all_types"))
	for _, bad := range []struct {
		feature int
		value   []byte
	}{
		{0, binary.AppendVarint(nil, 1<<40)}, // i32
		{4, []byte{2}},                       // b
	} {
		row := value.AppendHeader(nil, value.Header{Format: value.FormatRow, EventMicros: base.UnixMicro(), Fingerprint: c.fingerprint})
		bitmap := []byte{0xff, 0xff}
		bitmap[bad.feature/8] &^= 1 << (bad.feature % 8)
		row = append(append(row, bitmap...), bad.value...)

		_, _, err := c.Decode(row, make([]any, len(c.Types())))
		require.ErrorIs(t, err, ErrCorruptRow)
		for _, asked := range []bool{true, false} {
			cols := make([]*Column, len(c.Types()))
			if asked {
				col := newColumn(c.Types()[bad.feature], 1)
				cols[bad.feature] = &col
			}
			_, _, err := c.decodeInto(row, 0, cols, make([]bool, len(cols)))
			require.ErrorIs(t, err, ErrCorruptRow, "feature %d asked for: %v", bad.feature, asked)
		}
	}
}

// TestRowGolden pins a stored row byte for byte: format 1, the event time
// (sign bit flipped, big-endian), the FNV-32a fingerprint of "x:int64;",
// the null bitmap, and 3 as a zigzag varint. Stores keep such rows.
func TestRowGolden(t *testing.T) {
	c := NewCodec(testDefinitions(t).FeatureView("v1"))
	row, err := c.Encode(nil, base, []any{int64(3)})
	require.NoError(t, err)
	require.Equal(t, []byte{0x01, 0x80, 0x06, 0x50, 0xc0, 0x52, 0x00, 0xf0, 0x00, 0xe3, 0xf1, 0xa6, 0x6a, 0x00, 0x06}, row)
	out := make([]any, 1)
	at, ok, err := c.Decode(row, out)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, base, at)
	require.Equal(t, []any{int64(3)}, out)
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

// FuzzDecode: decoding any bytes read back from a store never panics;
// the typed path of lookups (every feature requested) accepts exactly what
// the generic path accepts, with the same values, and with only some
// features requested accepts at least that; what decodes encodes and
// decodes again to the same event time and values.
func FuzzDecode(f *testing.F) {
	c := NewCodec(testDefinitions(f).FeatureView("all_types"))
	for _, seed := range []struct {
		at   time.Time
		vals []any
	}{
		{base, []any{int32(1), int64(2), float32(3), 4.0, true, "s", []byte("b"), base,
			[]float32{1, 2}, []int64{3}, []string{"x"}, []time.Time{base}}},
		{time.Date(-249, 1, 1, 0, 0, 0, 0, time.UTC), []any{int32(math.MinInt32), int64(math.MaxInt64), float32(math.NaN()), math.Inf(-1), false,
			"h\xffi", []byte{}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), []float32{}, nil, []string{"", "\x00"}, []time.Time{time.Unix(0, 0)}}},
		{time.Unix(0, 0), make([]any, 12)},
	} {
		row, err := c.Encode(nil, seed.at, seed.vals)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(row)
		f.Add(row[:headerLen+1])
		f.Add(append(row, 0))
	}
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	typed := func(data []byte, every int) (time.Time, bool, error, []*Column) {
		cols := make([]*Column, len(c.Types()))
		for i, ty := range c.Types() {
			if i%every == 0 {
				col := newColumn(ty, 1)
				cols[i] = &col
			}
		}
		nulls := make([]bool, len(cols))
		at, ok, err := c.decodeInto(data, 0, cols, nulls)
		for i := range cols {
			if nulls[i] {
				cols[i] = nil
			}
		}
		return at, ok, err, cols
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out := make([]any, len(c.Types()))
		at, ok, err := c.Decode(data, out)
		allAt, allOK, allErr, all := typed(data, 1)
		someAt, someOK, someErr, some := typed(data, 2)
		require.Equal(t, err == nil && ok, allErr == nil && allOK, "generic: %v, typed: %v", err, allErr)
		if err != nil || !ok {
			return
		}
		require.NoError(t, someErr)
		require.True(t, someOK)
		require.Equal(t, at, allAt)
		require.Equal(t, at, someAt)
		for i, v := range out {
			if v == nil {
				require.Nil(t, all[i], "feature %d", i)
				continue
			}
			require.Equal(t, fmt.Sprintf("%#v", v), fmt.Sprintf("%#v", all[i].At(0)), "feature %d", i)
			if some[i] != nil {
				require.Equal(t, fmt.Sprintf("%#v", v), fmt.Sprintf("%#v", some[i].At(0)), "feature %d", i)
			}
		}
		row, err := c.Encode(nil, at, out)
		require.NoError(t, err)
		again := make([]any, len(out))
		at2, ok, err := c.Decode(row, again)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, at, at2)
		require.Equal(t, fmt.Sprintf("%#v", out), fmt.Sprintf("%#v", again))
	})
}

// BenchmarkCodec measures a row of every type through the encoder, the
// generic decoder and the typed lookup path (every feature requested, and
// every other one).
func BenchmarkCodec(b *testing.B) {
	c := NewCodec(testDefinitions(b).FeatureView("all_types"))
	vals := []any{int32(-7), int64(1) << 40, float32(1.5), 2.5, true, "driver-42", []byte{1, 2, 3}, base,
		[]float32{1, 2, 3, 4, 5, 6, 7, 8}, []int64{1, 2}, []string{"a", "b"}, []time.Time{base}}
	row, err := c.Encode(nil, base, vals)
	require.NoError(b, err)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		var dst []byte
		for range b.N {
			if dst, err = c.Encode(dst[:0], base, vals); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		out := make([]any, len(vals))
		for range b.N {
			if _, _, err := c.Decode(row, out); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, every := range []int{1, 2} {
		b.Run(fmt.Sprintf("typed/every%d", every), func(b *testing.B) {
			b.ReportAllocs()
			cols := make([]*Column, len(vals))
			for i, ty := range c.Types() {
				if i%every == 0 {
					col := newColumn(ty, 1)
					cols[i] = &col
				}
			}
			nulls := make([]bool, len(vals))
			for range b.N {
				if _, _, err := c.decodeInto(row, 0, cols, nulls); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
