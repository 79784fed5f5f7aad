package valenc

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
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
		typ registry.ValueType
		v   any
	}{
		{registry.ValueType{Elem: registry.Int32}, int32(-7)},
		{registry.ValueType{Elem: registry.Timestamp}, at},
		{registry.ValueType{Elem: registry.Float32}, float32(1.5)},
		{registry.ValueType{Elem: registry.Bool}, true},
		{registry.ValueType{Elem: registry.String}, "hi"},
		{registry.ValueType{Elem: registry.Float64, List: true}, []float64{0.25, -2}},
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
		typ registry.ValueType
	}{
		{binary.AppendVarint(nil, math.MaxInt32+1), registry.ValueType{Elem: registry.Int32}},
		{[]byte{1, 2}, registry.ValueType{Elem: registry.Float32}},
		{[]byte{2}, registry.ValueType{Elem: registry.Bool}},
		{[]byte{5, 'a'}, registry.ValueType{Elem: registry.Bytes}},
		{[]byte{200}, registry.ValueType{Elem: registry.Int64, List: true}},
		{nil, registry.ValueType{Elem: registry.Int64}},
	} {
		_, _, err := Read(bad.b, bad.typ)
		require.Error(t, err, "%v as %s", bad.b, bad.typ)
	}
}

// appendValue is the encoding Read reads, written out independently of
// the encoders in online and aggregate: the canonical form of a value.
func appendValue(t *testing.T, b []byte, typ registry.ValueType, v any) []byte {
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
			b = appendValue(t, b, registry.ValueType{Elem: typ.Elem}, e)
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

// FuzzRead: Read never panics on any bytes read back from a store; what
// it reads has the Go type of its value type, consumes a prefix of the
// input no shorter than its canonical encoding, and reads back from that
// encoding to the same value.
func FuzzRead(f *testing.F) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	seed := func(typ byte, b []byte) { f.Add(typ, b) }
	seed(byte(registry.Int32), binary.AppendVarint(nil, -7))
	seed(byte(registry.Int32), binary.AppendVarint(nil, math.MaxInt32+1))
	seed(byte(registry.Int64), binary.AppendVarint(nil, math.MinInt64))
	seed(byte(registry.Int64), []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}) // overflows
	seed(byte(registry.Int64), []byte{0x80, 0x00})                                                       // not minimal
	seed(byte(registry.Timestamp), binary.AppendVarint(nil, at.UnixMicro()))
	seed(byte(registry.Timestamp), binary.AppendVarint(nil, time.Date(-249, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()))
	seed(byte(registry.Timestamp), binary.AppendVarint(nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()))
	seed(byte(registry.Timestamp), binary.AppendVarint(nil, math.MaxInt64))
	seed(byte(registry.Float32), binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(math.NaN()))))
	seed(byte(registry.Float64), binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Inf(-1))))
	seed(byte(registry.Float64), []byte{1, 2, 3})
	seed(byte(registry.Bool), []byte{1})
	seed(byte(registry.Bool), []byte{2})
	seed(byte(registry.String), append(binary.AppendUvarint(nil, 3), "h\xffi"...)) // invalid UTF-8
	seed(byte(registry.String), binary.AppendUvarint(nil, math.MaxUint64))
	seed(byte(registry.Bytes), append(binary.AppendUvarint(nil, 2), 0, 1, 2))
	seed(0x10|byte(registry.Float64), binary.LittleEndian.AppendUint64(binary.AppendUvarint(nil, 1), math.Float64bits(0.25)))
	seed(0x10|byte(registry.String), append(binary.AppendUvarint(binary.AppendUvarint(nil, 1), 1), 'x'))
	seed(0x10|byte(registry.Timestamp), binary.AppendVarint(binary.AppendUvarint(nil, 1), -1))
	seed(0x10|byte(registry.Int64), binary.AppendUvarint(nil, 1<<40))
	seed(0x10|byte(registry.Bool), []byte{3, 1, 0, 1})
	seed(0, []byte{1})
	seed(9, []byte{1})
	f.Fuzz(func(t *testing.T, typ byte, data []byte) {
		vt := registry.ValueType{Elem: registry.Scalar(typ & 0x0f), List: typ&0x10 != 0}
		v, rest, err := Read(data, vt)
		if err != nil {
			return
		}
		if vt.Elem < registry.Int32 || vt.Elem > registry.Timestamp {
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
	})
}
