package aggregate

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/quiverdata/quiver/internal/valenc"
	"github.com/quiverdata/quiver/registry"
)

// Event values arrive as the stream decoder produced them. These helpers
// read them as the column's type; a value that does not hold the column's
// type (a string in an int64 column, a list with a null element, an int64
// beyond int32's range) reads as null.

// asInt reads any Go integer.
func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	}
	return 0, false
}

// scalar reads v as a scalar of type e: integers and timestamps (µs) in i,
// floats in f. A float32 column's value is rounded to float32 first, as
// the offline log stores it.
func scalar(e registry.Scalar, v any) (i int64, f float64, ok bool) {
	switch e {
	case registry.Int32:
		i, ok = asInt(v)
		if ok && (i < math.MinInt32 || i > math.MaxInt32) {
			return 0, 0, false
		}
		return i, 0, ok
	case registry.Int64:
		i, ok = asInt(v)
		return i, 0, ok
	case registry.Float32, registry.Float64:
		switch x := v.(type) {
		case float64:
			f, ok = x, true
		case float32:
			f, ok = float64(x), true
		default:
			var n int64
			if n, ok = asInt(v); ok {
				f = float64(n)
			}
		}
		if ok && e == registry.Float32 {
			f = float64(float32(f))
		}
		return 0, f, ok
	case registry.Timestamp:
		t, ok := v.(time.Time)
		if !ok {
			return 0, 0, false
		}
		return t.UnixMicro(), 0, true
	}
	return 0, 0, false
}

// canon returns v as the canonical Go value of type t: int32, int64,
// float32, float64, bool, string, []byte, time.Time (UTC, µs), or a typed
// slice ([]float32, []int64, ...) for lists. Bytes and lists are copied,
// so the result does not alias the event.
func canon(t registry.ValueType, v any) (any, bool) {
	if v == nil {
		return nil, false
	}
	if t.List {
		return canonList(t.Elem, v)
	}
	return canonScalar(t.Elem, v)
}

func canonScalar(e registry.Scalar, v any) (any, bool) {
	switch e {
	case registry.Int32, registry.Int64, registry.Float32, registry.Float64, registry.Timestamp:
		i, f, ok := scalar(e, v)
		if !ok {
			return nil, false
		}
		switch e {
		case registry.Int32:
			return int32(i), true
		case registry.Int64:
			return i, true
		case registry.Float32:
			return float32(f), true
		case registry.Float64:
			return f, true
		}
		return time.UnixMicro(i).UTC(), true
	case registry.Bool:
		b, ok := v.(bool)
		return b, ok
	case registry.String:
		s, ok := v.(string)
		return s, ok
	case registry.Bytes:
		b, ok := v.([]byte)
		if !ok {
			return nil, false
		}
		return append([]byte{}, b...), true
	}
	return nil, false
}

func canonList(e registry.Scalar, v any) (any, bool) {
	n, at := listElems(v)
	if at == nil {
		return nil, false
	}
	out := registry.MakeList(e, n)
	for i := range n {
		x, ok := canonScalar(e, at(i))
		if !ok {
			return nil, false
		}
		out = registry.AppendList(out, x)
	}
	return out, true
}

// valid reports whether v is a non-null value of type t, without copying.
func valid(t registry.ValueType, v any) bool {
	if v == nil {
		return false
	}
	if !t.List {
		switch t.Elem {
		case registry.Bool:
			_, ok := v.(bool)
			return ok
		case registry.String:
			_, ok := v.(string)
			return ok
		case registry.Bytes:
			_, ok := v.([]byte)
			return ok
		}
		_, _, ok := scalar(t.Elem, v)
		return ok
	}
	n, at := listElems(v)
	if at == nil {
		return false
	}
	for i := range n {
		if !valid(registry.ValueType{Elem: t.Elem}, at(i)) {
			return false
		}
	}
	return true
}

// listElems gives indexed access to a slice of any element type; at is
// nil when v is not a slice.
func listElems(v any) (int, func(int) any) {
	switch x := v.(type) {
	case []any:
		return len(x), func(i int) any { return x[i] }
	case []float32:
		return len(x), func(i int) any { return x[i] }
	case []float64:
		return len(x), func(i int) any { return x[i] }
	case []int64:
		return len(x), func(i int) any { return x[i] }
	case []int32:
		return len(x), func(i int) any { return x[i] }
	case []int:
		return len(x), func(i int) any { return x[i] }
	case []string:
		return len(x), func(i int) any { return x[i] }
	case []bool:
		return len(x), func(i int) any { return x[i] }
	case [][]byte:
		return len(x), func(i int) any { return x[i] }
	case []time.Time:
		return len(x), func(i int) any { return x[i] }
	}
	return 0, nil
}

// appendValue encodes a canonical value of type t in the encoding of
// package valenc, which reads it back (valenc.Read). Unlike the online
// codec's encoder it takes values that are already of their Go type, and
// checks nothing: tiles hold only values they built themselves.
func appendValue(dst []byte, t registry.ValueType, v any) []byte {
	if t.List {
		n, at := listElems(v)
		dst = binary.AppendUvarint(dst, uint64(n))
		et := registry.ValueType{Elem: t.Elem}
		for i := range n {
			dst = appendValue(dst, et, at(i))
		}
		return dst
	}
	switch x := v.(type) {
	case int32:
		return binary.AppendVarint(dst, int64(x))
	case int64:
		return binary.AppendVarint(dst, x)
	case float32:
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(x))
	case float64:
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(x))
	case bool:
		if x {
			return append(dst, 1)
		}
		return append(dst, 0)
	case string:
		return append(binary.AppendUvarint(dst, uint64(len(x))), x...)
	case []byte:
		return append(binary.AppendUvarint(dst, uint64(len(x))), x...)
	case time.Time:
		return binary.AppendVarint(dst, x.UnixMicro())
	}
	return dst
}

var errShort = valenc.ErrShort

// skipValue steps over one value of type elem (a list of them, if list).
func skipValue(b []byte, elem registry.Scalar, list bool) ([]byte, error) {
	if list {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errors.New("bad list length")
		}
		b = b[k:]
		var err error
		for range int(n) {
			if b, err = skipValue(b, elem, false); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	switch elem {
	case registry.Int32, registry.Int64, registry.Timestamp:
		i, k := binary.Varint(b)
		if k <= 0 {
			return nil, errors.New("bad varint")
		}
		if elem == registry.Int32 && (i < math.MinInt32 || i > math.MaxInt32) {
			return nil, errors.New("int32 out of range")
		}
		return b[k:], nil
	case registry.Float32, registry.Float64, registry.Bool:
		w := 1
		switch elem {
		case registry.Float32:
			w = 4
		case registry.Float64:
			w = 8
		}
		if len(b) < w || (elem == registry.Bool && b[0] > 1) {
			return nil, errShort
		}
		return b[w:], nil
	case registry.String, registry.Bytes:
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, errors.New("bad length")
		}
		return b[k+int(n):], nil
	}
	return nil, errors.New("unknown type")
}
