package value

import (
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// arrowTypes are the Arrow types of the scalar types: those DuckDB gives
// stored features, so that every Arrow batch Quiver writes (training sets,
// Flight results, the offline log) looks alike. Timestamps are
// microseconds without a zone, meaning UTC.
var arrowTypes = [...]arrow.DataType{
	Int32:     arrow.PrimitiveTypes.Int32,
	Int64:     arrow.PrimitiveTypes.Int64,
	Float32:   arrow.PrimitiveTypes.Float32,
	Float64:   arrow.PrimitiveTypes.Float64,
	Bool:      arrow.FixedWidthTypes.Boolean,
	String:    arrow.BinaryTypes.String,
	Bytes:     arrow.BinaryTypes.Binary,
	Timestamp: &arrow.TimestampType{Unit: arrow.Microsecond},
}

// ArrowType is the Arrow type that holds values of t (a list type for a
// list); nil for an invalid type.
func ArrowType(t Type) arrow.DataType {
	if t.Elem == 0 || int(t.Elem) >= len(arrowTypes) {
		return nil
	}
	dt := arrowTypes[t.Elem]
	if t.List {
		return arrow.ListOf(dt)
	}
	return dt
}

// FromArrow returns row i of an Arrow column as a Go value that Append and
// Canon take: nil for null; int32 for an int32 column and int64 for other
// signed integers; float32, float64, bool; strings and bytes copied out of
// the batch; timestamps of any unit as UTC time.Time; lists as []any. A
// column of a type it does not convert is an error naming the type;
// callers add the column and row.
func FromArrow(a arrow.Array, i int) (any, error) {
	if a.IsNull(i) {
		return nil, nil
	}
	switch c := a.(type) {
	case *array.Int64:
		return c.Value(i), nil
	case *array.Int32:
		return c.Value(i), nil
	case *array.Int16:
		return int64(c.Value(i)), nil
	case *array.Int8:
		return int64(c.Value(i)), nil
	case *array.Float32:
		return c.Value(i), nil
	case *array.Float64:
		return c.Value(i), nil
	case *array.Boolean:
		return c.Value(i), nil
	case *array.String:
		return strings.Clone(c.Value(i)), nil
	case *array.LargeString:
		return strings.Clone(c.Value(i)), nil
	case *array.Binary:
		return append([]byte(nil), c.Value(i)...), nil
	case *array.Timestamp:
		return c.Value(i).ToTime(c.DataType().(*arrow.TimestampType).Unit).UTC(), nil
	case *array.List:
		start, end := c.ValueOffsets(i)
		out := make([]any, 0, end-start)
		for j := start; j < end; j++ {
			v, err := FromArrow(c.ListValues(), int(j))
			if err != nil {
				return nil, fmt.Errorf("list element %d: %w", j-start, err)
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("arrow type %s is not supported", a.DataType())
}

// AppendArrow appends v to a builder of ArrowType(t) (nil: null). v is a
// canonical Go value of t, as Canon and Read return it and online columns
// hold it; anything else is a bug in the caller, and panics.
func AppendArrow(b array.Builder, v any) {
	if v == nil {
		b.AppendNull()
		return
	}
	switch b := b.(type) {
	case *array.Int32Builder:
		b.Append(v.(int32))
	case *array.Int64Builder:
		b.Append(v.(int64))
	case *array.Float32Builder:
		b.Append(v.(float32))
	case *array.Float64Builder:
		b.Append(v.(float64))
	case *array.BooleanBuilder:
		b.Append(v.(bool))
	case *array.StringBuilder:
		b.Append(v.(string))
	case *array.BinaryBuilder:
		b.Append(v.([]byte))
	case *array.TimestampBuilder:
		b.Append(arrow.Timestamp(v.(time.Time).UnixMicro()))
	case *array.ListBuilder:
		n, at, ok := Elems(v)
		if !ok {
			panic(fmt.Sprintf("value: %T is not a list", v))
		}
		b.Append(true)
		for i := range n {
			AppendArrow(b.ValueBuilder(), at(i))
		}
	default:
		panic(fmt.Sprintf("value: builder %T is not one of ArrowType's", b))
	}
}

// BatchBytes is the size of a record batch's buffers, children and
// dictionaries included (of a slice, the whole buffers it views).
func BatchBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, c := range rec.Columns() {
		n += dataBytes(c.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	var n int64
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	if d.DataType().ID() == arrow.DICTIONARY && d.Dictionary() != nil {
		n += dataBytes(d.Dictionary())
	}
	return n
}
