// Package arrowconv converts Arrow array cells to Go values, for the
// packages that move Arrow batches from the offline store into the online
// store and through on-demand expressions.
package arrowconv

import (
	"errors"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Value returns row i of an Arrow column as a Go value the online codec
// takes (nil for null; strings and bytes copied out of the batch; lists as
// []any).
func Value(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch c := a.(type) {
	case *array.Int64:
		return c.Value(i)
	case *array.Int32:
		return c.Value(i)
	case *array.Int16:
		return int64(c.Value(i))
	case *array.Int8:
		return int64(c.Value(i))
	case *array.Float32:
		return c.Value(i)
	case *array.Float64:
		return c.Value(i)
	case *array.Boolean:
		return c.Value(i)
	case *array.String:
		return strings.Clone(c.Value(i))
	case *array.LargeString:
		return strings.Clone(c.Value(i))
	case *array.Binary:
		return append([]byte(nil), c.Value(i)...)
	case *array.Timestamp:
		return c.Value(i).ToTime(c.DataType().(*arrow.TimestampType).Unit).UTC()
	case *array.List:
		start, end := c.ValueOffsets(i)
		out := make([]any, 0, end-start)
		for j := start; j < end; j++ {
			out = append(out, Value(c.ListValues(), int(j)))
		}
		return out
	}
	return errors.New("unsupported arrow type " + a.DataType().String())
}
