// Package arrowconv converts Arrow array cells to Go values, for the
// packages that move Arrow batches from the offline store into the online
// store and through on-demand expressions.
package arrowconv

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Value returns row i of an Arrow column as a Go value the online codec
// takes (nil for null; strings and bytes copied out of the batch; lists as
// []any). A column of a type it does not convert is an error naming the
// type; callers add the column and row.
func Value(a arrow.Array, i int) (any, error) {
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
			v, err := Value(c.ListValues(), int(j))
			if err != nil {
				return nil, fmt.Errorf("list element %d: %w", j-start, err)
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("arrow type %s is not supported", a.DataType())
}
