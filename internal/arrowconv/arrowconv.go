// Package arrowconv is the former home of the Arrow → Go conversion, which
// now lives in package value (value.FromArrow). It remains only until its
// last importers move to value.
package arrowconv

import (
	"github.com/apache/arrow-go/v18/arrow"

	"github.com/quiverdata/quiver/value"
)

// Value returns row i of an Arrow column as a Go value.
//
// Deprecated: use value.FromArrow.
func Value(a arrow.Array, i int) (any, error) { return value.FromArrow(a, i) }
