package value

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRead(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	var b []byte
	b = binary.AppendVarint(b, -7)
	b = binary.AppendVarint(b, at.UnixMicro())
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(1.5))
	b = append(b, 1)
	b = append(binary.AppendUvarint(b, 2), "hi"...)
	b = binary.AppendUvarint(b, 2) // a list of two float64
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(0.25))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(-2))
	for _, want := range []struct {
		typ Type
		v   any
	}{
		{Type{Elem: Int32}, int32(-7)},
		{Type{Elem: Timestamp}, at},
		{Type{Elem: Float32}, float32(1.5)},
		{Type{Elem: Bool}, true},
		{Type{Elem: String}, "hi"},
		{Type{Elem: Float64, List: true}, []float64{0.25, -2}},
	} {
		var v any
		var err error
		v, b, err = Read(b, want.typ)
		require.NoError(t, err, want.typ.String())
		require.Equal(t, want.v, v)
	}
	require.Empty(t, b)

	for _, bad := range []struct {
		b   []byte
		typ Type
	}{
		{binary.AppendVarint(nil, math.MaxInt32+1), Type{Elem: Int32}},
		{[]byte{1, 2}, Type{Elem: Float32}},
		{[]byte{2}, Type{Elem: Bool}},
		{[]byte{5, 'a'}, Type{Elem: Bytes}},
		{[]byte{200}, Type{Elem: Int64, List: true}},
		{nil, Type{Elem: Int64}},
	} {
		_, _, err := Read(bad.b, bad.typ)
		require.Error(t, err, "%v as %s", bad.b, bad.typ)
		_, err = Skip(bad.b, bad.typ)
		require.Error(t, err, "skip %v as %s", bad.b, bad.typ)
	}
}

// appendValue is the encoding Read reads, written out independently of
// Append: the canonical form of a value.
func appendValue(t *testing.T, b []byte, typ Type, v any) []byte {
	if typ.List {
		var elems []any
		switch x := v.(type) {
		case []int32:
			for _, e := range x {
				elems = append(elems, e)
			}
		case []int64:
			for _, e := range x {
				elems = append(elems, e)
			}
		case []float32:
			for _, e := range x {
				elems = append(elems, e)
			}
		case []float64:
			for _, e := range x {
				elems = append(elems, e)
			}
		case []bool:
			for _, e := range x {
				elems = append(elems, e)
			}
		case []string:
			for _, e := range x {
				elems = append(elems, e)
			}
		case [][]byte:
			for _, e := range x {
				elems = append(elems, e)
			}
		case []time.Time:
			for _, e := range x {
				elems = append(elems, e)
			}
		default:
			t.Fatalf("%s read as %T", typ, v)
		}
		b = binary.AppendUvarint(b, uint64(len(elems)))
		for _, e := range elems {
			b = appendValue(t, b, Type{Elem: typ.Elem}, e)
		}
		return b
	}
	switch x := v.(type) {
	case int32:
		return binary.AppendVarint(b, int64(x))
	case int64:
		return binary.AppendVarint(b, x)
	case time.Time:
		if x.Location() != time.UTC {
			t.Fatalf("time %v is not in UTC", x)
		}
		return binary.AppendVarint(b, x.UnixMicro())
	case float32:
		return binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	case float64:
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	case bool:
		if x {
			return append(b, 1)
		}
		return append(b, 0)
	case string:
		return append(binary.AppendUvarint(b, uint64(len(x))), x...)
	case []byte:
		return append(binary.AppendUvarint(b, uint64(len(x))), x...)
	}
	t.Fatalf("%s read as %T", typ, v)
	return nil
}

// FuzzReadSkip: Read never panics on any bytes read back from a store;
// what it reads has the Go type of its value type, consumes a prefix of
// the input no shorter than its canonical encoding, and reads back from
// that encoding to the same value. Skip steps over exactly what Read
// reads, and refuses what Read refuses; Append writes the canonical
// encoding.
func FuzzReadSkip(f *testing.F) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	seed := func(typ byte, b []byte) { f.Add(typ, b) }
	seed(byte(Int32), binary.AppendVarint(nil, -7))
	seed(byte(Int32), binary.AppendVarint(nil, math.MaxInt32+1))
	seed(byte(Int64), binary.AppendVarint(nil, math.MinInt64))
	seed(byte(Int64), []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}) // overflows
	seed(byte(Int64), []byte{0x80, 0x00})                                                       // not minimal
	seed(byte(Timestamp), binary.AppendVarint(nil, at.UnixMicro()))
	seed(byte(Timestamp), binary.AppendVarint(nil, time.Date(-249, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()))
	seed(byte(Timestamp), binary.AppendVarint(nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()))
	seed(byte(Timestamp), binary.AppendVarint(nil, math.MaxInt64))
	seed(byte(Float32), binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(math.NaN()))))
	seed(byte(Float64), binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Inf(-1))))
	seed(byte(Float64), []byte{1, 2, 3})
	seed(byte(Bool), []byte{1})
	seed(byte(Bool), []byte{2})
	seed(byte(String), append(binary.AppendUvarint(nil, 3), "h\xffi"...)) // invalid UTF-8
	seed(byte(String), binary.AppendUvarint(nil, math.MaxUint64))
	seed(byte(Bytes), append(binary.AppendUvarint(nil, 2), 0, 1, 2))
	seed(0x10|byte(Float64), binary.LittleEndian.AppendUint64(binary.AppendUvarint(nil, 1), math.Float64bits(0.25)))
	seed(0x10|byte(String), append(binary.AppendUvarint(binary.AppendUvarint(nil, 1), 1), 'x'))
	seed(0x10|byte(Timestamp), binary.AppendVarint(binary.AppendUvarint(nil, 1), -1))
	seed(0x10|byte(Int64), binary.AppendUvarint(nil, 1<<40))
	seed(0x10|byte(Bool), []byte{3, 1, 0, 1})
	seed(0, []byte{1})
	seed(9, []byte{1})
	f.Fuzz(func(t *testing.T, typ byte, data []byte) {
		vt := Type{Elem: Scalar(typ & 0x0f), List: typ&0x10 != 0}
		v, rest, err := Read(data, vt)
		skipped, skipErr := Skip(data, vt)
		if (err == nil) != (skipErr == nil) {
			t.Fatalf("%s %x: Read error %v, Skip error %v", vt, data, err, skipErr)
		}
		if err != nil {
			return
		}
		if len(skipped) != len(rest) {
			t.Fatalf("%s %x: Read left %d bytes, Skip %d", vt, data, len(rest), len(skipped))
		}
		if vt.Elem < Int32 || vt.Elem > Timestamp {
			t.Fatalf("read %v as unknown type %s", v, vt)
		}
		if len(rest) > len(data) || string(rest) != string(data[len(data)-len(rest):]) {
			t.Fatalf("rest %x is not a suffix of %x", rest, data)
		}
		canon := appendValue(t, nil, vt, v)
		if len(canon) > len(data)-len(rest) {
			t.Fatalf("read %d bytes into %v, whose encoding %x is longer", len(data)-len(rest), v, canon)
		}
		again, left, err := Read(canon, vt)
		require.NoError(t, err, "re-reading %x", canon)
		require.Empty(t, left)
		require.Equal(t, canon, appendValue(t, nil, vt, again), "%s %v read back as %v", vt, v, again)
		appended, err := Append(nil, vt, v)
		require.NoError(t, err, "append %v", v)
		require.Equal(t, canon, appended, "Append of %s %v", vt, v)
	})
}

// TestAppendGolden pins the encoding of every type, byte for byte: stores
// hold rows that earlier versions wrote, so it must never change.
func TestAppendGolden(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	for _, c := range []struct {
		typ  Type
		v    any
		want []byte
	}{
		{Type{Elem: Int32}, int32(-7), []byte{0x0d}},
		{Type{Elem: Int32}, 300, []byte{0xd8, 0x04}},
		{Type{Elem: Int64}, int64(math.MinInt64), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{Type{Elem: Float32}, float32(1.5), []byte{0x00, 0x00, 0xc0, 0x3f}},
		{Type{Elem: Float32}, 2.5, []byte{0x00, 0x00, 0x20, 0x40}},
		{Type{Elem: Float64}, -2.0, []byte{0, 0, 0, 0, 0, 0, 0, 0xc0}},
		{Type{Elem: Float64}, int64(1), []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
		{Type{Elem: Bool}, true, []byte{1}},
		{Type{Elem: Bool}, false, []byte{0}},
		{Type{Elem: String}, "hé", []byte{3, 'h', 0xc3, 0xa9}},
		{Type{Elem: Bytes}, []byte{0, 0xff}, []byte{2, 0, 0xff}},
		{Type{Elem: Timestamp}, at, []byte{0x80, 0xa9, 0xae, 0xee, 0xf2, 0xe3, 0xb0, 0x06}},
		{Type{Elem: Float32, List: true}, []float32{1, -1}, []byte{2, 0, 0, 0x80, 0x3f, 0, 0, 0x80, 0xbf}},
		{Type{Elem: String, List: true}, []any{"a", "bc"}, []byte{2, 1, 'a', 2, 'b', 'c'}},
		{Type{Elem: Int64, List: true}, []int64{}, []byte{0}},
	} {
		got, err := Append(nil, c.typ, c.v)
		require.NoError(t, err, "%s %v", c.typ, c.v)
		require.Equal(t, c.want, got, "%s %v", c.typ, c.v)
		rest, err := Skip(got, c.typ)
		require.NoError(t, err)
		require.Empty(t, rest)
	}
}

func TestAppendRefuses(t *testing.T) {
	for _, c := range []struct {
		typ  Type
		v    any
		want string
	}{
		{Type{Elem: Int32}, int64(1) << 40, "1099511627776 (int64) is not an int32"},
		{Type{Elem: Int64}, 1.5, "1.5 (float64) is not an int64"},
		{Type{Elem: Float64}, "1", "1 (string) is not a float64"},
		{Type{Elem: Bytes}, "x", "string is not bytes"},
		{Type{Elem: Timestamp}, int64(1), "1 (int64) is not a timestamp"},
		{Type{Elem: Float32, List: true}, 1.0, "float64 is not a list"},
		{Type{Elem: Float32, List: true}, []any{1.0, nil}, "list element 1 is null; lists hold no nulls"},
		{Type{Elem: Int32, List: true}, []int64{1, 1 << 40}, "list element 1: 1099511627776 (int64) is not an int32"},
	} {
		_, err := Append(nil, c.typ, c.v)
		require.EqualError(t, err, c.want, "%s %v", c.typ, c.v)
	}
}

// TestHeaderGolden pins the header every stored row starts with.
func TestHeaderGolden(t *testing.T) {
	h := Header{Format: FormatRow, EventMicros: 1_700_000_000_000_000, Fingerprint: 0xdeadbeef}
	b := AppendHeader(nil, h)
	require.Equal(t, []byte{1, 0x80, 0x06, 0x0a, 0x24, 0x18, 0x1e, 0x40, 0x00, 0xef, 0xbe, 0xad, 0xde}, b)
	got, ok := ReadHeader(append(b, 7))
	require.True(t, ok)
	require.Equal(t, h, got)
	_, ok = ReadHeader(b[:HeaderLen-1])
	require.False(t, ok)

	// Event times compare as the bytes do, negative ones too.
	early := AppendHeader(nil, Header{Format: FormatTiles, EventMicros: -5})
	late := AppendHeader(nil, Header{Format: FormatTiles, EventMicros: 3})
	require.Negative(t, bytes.Compare(early[1:9], late[1:9]))
}
