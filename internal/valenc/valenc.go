// Package valenc is the binary encoding of single values that online rows
// and aggregation tiles share: int32, int64 and timestamps (µs since the
// epoch) as zigzag varints; float32 and float64 as 4 and 8 bytes
// little-endian; bool as one byte; string and bytes as a uvarint length
// and the bytes; lists as a uvarint count and the elements.
package valenc

import (
	"encoding/binary"
	"errors"
	"math"
	"time"

	"github.com/quiverdata/quiver/registry"
)

// ErrShort reports a value cut off before its end.
var ErrShort = errors.New("truncated value")

// Read decodes one value of type t from the start of b and returns it with
// the rest of b. Scalars come back as their Go types (int32, int64,
// float32, float64, bool, string, []byte copied out of b, time.Time in
// UTC), lists as typed slices (registry.MakeList). It never panics on
// corrupt input: it returns an error instead.
func Read(b []byte, t registry.ValueType) (any, []byte, error) {
	if t.Elem < registry.Int32 || t.Elem > registry.Timestamp {
		return nil, nil, errors.New("unknown type " + t.String()) // an empty list of it too
	}
	if t.List {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, nil, errors.New("bad list length")
		}
		b = b[k:]
		et := registry.ValueType{Elem: t.Elem}
		out := registry.MakeList(t.Elem, int(n))
		for range int(n) {
			var v any
			var err error
			if v, b, err = Read(b, et); err != nil {
				return nil, nil, err
			}
			out = registry.AppendList(out, v)
		}
		return out, b, nil
	}
	switch t.Elem {
	case registry.Int32, registry.Int64, registry.Timestamp:
		i, k := binary.Varint(b)
		if k <= 0 {
			return nil, nil, errors.New("bad varint")
		}
		switch t.Elem {
		case registry.Int32:
			if i < math.MinInt32 || i > math.MaxInt32 {
				return nil, nil, errors.New("int32 out of range")
			}
			return int32(i), b[k:], nil
		case registry.Timestamp:
			return time.UnixMicro(i).UTC(), b[k:], nil
		}
		return i, b[k:], nil
	case registry.Float32:
		if len(b) < 4 {
			return nil, nil, ErrShort
		}
		return math.Float32frombits(binary.LittleEndian.Uint32(b)), b[4:], nil
	case registry.Float64:
		if len(b) < 8 {
			return nil, nil, ErrShort
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:], nil
	case registry.Bool:
		if len(b) < 1 || b[0] > 1 {
			return nil, nil, errors.New("bad bool")
		}
		return b[0] == 1, b[1:], nil
	case registry.String, registry.Bytes:
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, nil, errors.New("bad length")
		}
		s := b[k : k+int(n)]
		if t.Elem == registry.String {
			return string(s), b[k+int(n):], nil
		}
		return append([]byte{}, s...), b[k+int(n):], nil
	}
	return nil, nil, errors.New("unknown type " + t.String())
}
