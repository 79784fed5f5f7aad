package aggregate

import (
	"fmt"
	"time"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
)

// Event values arrive as the stream decoder produced them. These helpers
// read them as the column's type; a value that does not hold the column's
// type (a string in an int64 column, a list with a null element, an int64
// beyond int32's range) reads as null.

// scalar reads v as a scalar of type e: integers and timestamps (µs) in i,
// floats in f. A float32 column's value is rounded to float32 first, as
// the offline log stores it.
func scalar(e registry.Scalar, v any) (i int64, f float64, ok bool) {
	switch e {
	case registry.Float32, registry.Float64:
		f, ok = value.Float(e, v)
		return 0, f, ok
	case registry.Timestamp:
		t, ok := v.(time.Time)
		if !ok {
			return 0, 0, false
		}
		return t.UnixMicro(), 0, true
	}
	i, ok = value.Int(e, v)
	return i, 0, ok
}

// canon returns v as the canonical Go value of type t (value.Canon): the
// copy a tile keeps, which does not alias the event.
func canon(t registry.ValueType, v any) (any, bool) {
	if v == nil {
		return nil, false
	}
	x, err := value.Canon(t, v)
	return x, err == nil
}

// valid reports whether v is a non-null value of type t, without copying.
func valid(t registry.ValueType, v any) bool { return value.Valid(t, v) }

// appendLast encodes a last value. Tiles hold only the canonical values
// that canon and value.Read made, which value.Append always takes: an
// error is a bug.
func appendLast(dst []byte, t registry.ValueType, v any) []byte {
	out, err := value.Append(dst, t, v)
	if err != nil {
		panic(fmt.Sprintf("aggregate: a tile holds a value that is not a %s: %v", t, err))
	}
	return out
}
