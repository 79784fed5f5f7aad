package online

import (
	"fmt"
	"time"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
)

// Column is one feature's values for every entity row, typed: the slice
// that matches Type is set (a list feature sets Lists, one typed slice such
// as []float32 per row). Rows without a present value hold the zero value.
type Column struct {
	Type     registry.ValueType
	Int32s   []int32
	Int64s   []int64
	Float32s []float32
	Float64s []float64
	Bools    []bool
	Strings  []string
	Bytes    [][]byte
	Times    []time.Time
	Lists    []any
}

func newColumn(t registry.ValueType, rows int) Column {
	c := Column{Type: t}
	if t.List {
		c.Lists = make([]any, rows)
		return c
	}
	switch t.Elem {
	case registry.Int32:
		c.Int32s = make([]int32, rows)
	case registry.Int64:
		c.Int64s = make([]int64, rows)
	case registry.Float32:
		c.Float32s = make([]float32, rows)
	case registry.Float64:
		c.Float64s = make([]float64, rows)
	case registry.Bool:
		c.Bools = make([]bool, rows)
	case registry.String:
		c.Strings = make([]string, rows)
	case registry.Bytes:
		c.Bytes = make([][]byte, rows)
	case registry.Timestamp:
		c.Times = make([]time.Time, rows)
	}
	return c
}

// At returns row i's value as a Go value (int32, int64, float32, float64,
// bool, string, []byte, time.Time, or a typed slice for lists).
func (c *Column) At(i int) any {
	if c.Type.List {
		return c.Lists[i]
	}
	switch c.Type.Elem {
	case registry.Int32:
		return c.Int32s[i]
	case registry.Int64:
		return c.Int64s[i]
	case registry.Float32:
		return c.Float32s[i]
	case registry.Float64:
		return c.Float64s[i]
	case registry.Bool:
		return c.Bools[i]
	case registry.String:
		return c.Strings[i]
	case registry.Bytes:
		return c.Bytes[i]
	case registry.Timestamp:
		return c.Times[i]
	}
	return nil
}

// set sets row i to v, a Go value of the column's type (as At returns).
func (c *Column) set(i int, v any) {
	if c.Type.List {
		c.Lists[i] = v
		return
	}
	switch c.Type.Elem {
	case registry.Int32:
		c.Int32s[i] = v.(int32)
	case registry.Int64:
		c.Int64s[i] = v.(int64)
	case registry.Float32:
		c.Float32s[i] = v.(float32)
	case registry.Float64:
		c.Float64s[i] = v.(float64)
	case registry.Bool:
		c.Bools[i] = v.(bool)
	case registry.String:
		c.Strings[i] = v.(string)
	case registry.Bytes:
		c.Bytes[i] = v.([]byte)
	case registry.Timestamp:
		c.Times[i] = v.(time.Time)
	}
}

// zero resets row i to the zero value.
func (c *Column) zero(i int) {
	if c.Type.List {
		c.Lists[i] = nil
		return
	}
	switch c.Type.Elem {
	case registry.Int32:
		c.Int32s[i] = 0
	case registry.Int64:
		c.Int64s[i] = 0
	case registry.Float32:
		c.Float32s[i] = 0
	case registry.Float64:
		c.Float64s[i] = 0
	case registry.Bool:
		c.Bools[i] = false
	case registry.String:
		c.Strings[i] = ""
	case registry.Bytes:
		c.Bytes[i] = nil
	case registry.Timestamp:
		c.Times[i] = time.Time{}
	}
}

// readInto decodes one value of type t from b into row i of c, scalars
// straight into their typed slice.
func readInto(b []byte, t registry.ValueType, c *Column, i int) (rest []byte, err error) {
	if t.List {
		c.Lists[i], rest, err = value.Read(b, t)
		return rest, err
	}
	switch t.Elem {
	case registry.Int32:
		var n int64
		n, rest, err = value.ReadInt(b, t.Elem)
		c.Int32s[i] = int32(n)
	case registry.Int64:
		c.Int64s[i], rest, err = value.ReadInt(b, t.Elem)
	case registry.Timestamp:
		var n int64
		if n, rest, err = value.ReadInt(b, t.Elem); err == nil {
			c.Times[i] = time.UnixMicro(n).UTC()
		}
	case registry.Float32:
		c.Float32s[i], rest, err = value.ReadFloat32(b)
	case registry.Float64:
		c.Float64s[i], rest, err = value.ReadFloat64(b)
	case registry.Bool:
		c.Bools[i], rest, err = value.ReadBool(b)
	case registry.String:
		c.Strings[i], rest, err = value.ReadString(b)
	case registry.Bytes:
		c.Bytes[i], rest, err = value.ReadBytes(b)
	default:
		return nil, fmt.Errorf("unknown type %s", t)
	}
	return rest, err
}

// decodeInto decodes a row's requested features into columns: out[slot]
// is the column of the feature in that row slot, nil when not requested.
// It returns the event time, whether the row matches the codec's features,
// and which slots are null.
func (c *Codec) decodeInto(enc []byte, row int, out []*Column, nulls []bool) (time.Time, bool, error) {
	at, ok, bitmap, rest, err := c.frame(enc)
	if !ok || err != nil {
		return at, false, err
	}
	for i, t := range c.types {
		nulls[i] = bitmap[i/8]&(1<<(i%8)) != 0
		if nulls[i] {
			continue
		}
		if out[i] == nil {
			rest, err = value.Skip(rest, t)
		} else {
			rest, err = readInto(rest, t, out[i], row)
		}
		if err != nil {
			return time.Time{}, false, fmt.Errorf("%w: feature %s: %v", ErrCorruptRow, c.names[i], err)
		}
	}
	if len(rest) != 0 {
		return time.Time{}, false, fmt.Errorf("%w: %d trailing bytes", ErrCorruptRow, len(rest))
	}
	return at, true, nil
}
