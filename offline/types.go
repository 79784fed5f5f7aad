package offline

import (
	"strings"

	"github.com/quiverdata/quiver/registry"
)

// duckTypes are the DuckDB types that hold values of each scalar type.
var duckTypes = [...]string{
	registry.Int32:     "INTEGER",
	registry.Int64:     "BIGINT",
	registry.Float32:   "FLOAT",
	registry.Float64:   "DOUBLE",
	registry.Bool:      "BOOLEAN",
	registry.String:    "VARCHAR",
	registry.Bytes:     "BLOB",
	registry.Timestamp: "TIMESTAMP",
}

// duckType is the DuckDB type that holds values of t ("" for an invalid
// type, "[]" for a list of one).
func duckType(t registry.ValueType) string {
	var s string
	if int(t.Elem) < len(duckTypes) {
		s = duckTypes[t.Elem]
	}
	if t.List {
		s += "[]"
	}
	return s
}

var (
	integerTypes = []string{"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "HUGEINT"}
	floatTypes   = []string{"FLOAT", "DOUBLE"}
)

func isTimestampType(s string) bool {
	return strings.HasPrefix(s, "TIMESTAMP") || s == "DATE"
}

func isIntegerType(s string) bool { return oneOf(s, integerTypes) }

// castable reports whether a column of DuckDB type have may be read as a
// feature of type want without losing meaning: integers widen, integers and
// decimals become floats, floats change width, timestamps of any precision
// or zone (and dates) become UTC timestamps.
func castable(have string, want registry.ValueType) bool {
	if want.List {
		elem, ok := strings.CutSuffix(have, "[]")
		if !ok {
			return false
		}
		return castable(elem, registry.ValueType{Elem: want.Elem})
	}
	if strings.HasSuffix(have, "[]") {
		return false
	}
	switch want.Elem {
	case registry.Int32, registry.Int64:
		return isIntegerType(have)
	case registry.Float32, registry.Float64:
		return isIntegerType(have) || oneOf(have, floatTypes) || strings.HasPrefix(have, "DECIMAL")
	case registry.Bool:
		return have == "BOOLEAN"
	case registry.String:
		return have == "VARCHAR"
	case registry.Bytes:
		return have == "BLOB"
	case registry.Timestamp:
		return isTimestampType(have)
	}
	return false
}

func oneOf(s string, list []string) bool {
	for _, x := range list {
		if s == x {
			return true
		}
	}
	return false
}
