package value

import (
	"fmt"
	"strings"
	"time"

	"github.com/quiverdata/quiver/internal/text"
)

// Scalar is a scalar value type.
type Scalar uint8

// The scalar types. The zero value is invalid.
const (
	Int32 Scalar = iota + 1
	Int64
	Float32
	Float64
	Bool
	String
	Bytes
	Timestamp
)

var scalarNames = [...]string{
	Int32:     "int32",
	Int64:     "int64",
	Float32:   "float32",
	Float64:   "float64",
	Bool:      "bool",
	String:    "string",
	Bytes:     "bytes",
	Timestamp: "timestamp",
}

func (s Scalar) String() string {
	if s == 0 || int(s) >= len(scalarNames) {
		return fmt.Sprintf("scalar(%d)", uint8(s))
	}
	return scalarNames[s]
}

// Numeric reports whether s is an integer or floating-point type.
func (s Scalar) Numeric() bool {
	return s == Int32 || s == Int64 || s == Float32 || s == Float64
}

// Type is the type of a feature or field: a scalar, or a list of one.
// Embeddings are list<float32>.
type Type struct {
	Elem Scalar
	List bool
}

// Common value types.
var (
	TypeInt64     = Type{Elem: Int64}
	TypeString    = Type{Elem: String}
	TypeTimestamp = Type{Elem: Timestamp}
)

func (t Type) String() string {
	if t.List {
		return "list<" + t.Elem.String() + ">"
	}
	return t.Elem.String()
}

// IsZero reports whether t is unset.
func (t Type) IsZero() bool { return t.Elem == 0 }

// TypeHint lists the types, for messages that ask for one.
const TypeHint = "one of int32, int64, float32, float64, bool, string, bytes, timestamp, or list<T> of one of them"

// ParseType parses "float32", "list<float32>" and the like.
func Parse(s string) (Type, error) {
	in := strings.TrimSpace(s)
	var t Type
	if rest, ok := strings.CutPrefix(in, "list<"); ok {
		inner, ok := strings.CutSuffix(rest, ">")
		if !ok {
			return Type{}, fmt.Errorf("%q is not a type (lists are written list<float32>)", text.Clip(s))
		}
		in, t.List = strings.TrimSpace(inner), true
	}
	for i, name := range scalarNames {
		if i > 0 && name == in {
			t.Elem = Scalar(i)
			return t, nil
		}
	}
	if t.List && strings.HasPrefix(in, "list<") {
		return Type{}, fmt.Errorf("%q is not a type (lists of lists are not supported)", text.Clip(s))
	}
	return Type{}, fmt.Errorf("%q is not a type (%s)%s", text.Clip(s), TypeHint, text.DidYouMean(in, scalarNames[1:]))
}

// MarshalText implements encoding.TextMarshaler.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Type) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// MakeList returns an empty Go slice for a list of e, with room for n:
// []int32, []int64, []float32, []float64, []bool, []string, [][]byte or
// []time.Time; nil for an invalid type.
func MakeList(e Scalar, n int) any {
	switch e {
	case Int32:
		return make([]int32, 0, n)
	case Int64:
		return make([]int64, 0, n)
	case Float32:
		return make([]float32, 0, n)
	case Float64:
		return make([]float64, 0, n)
	case Bool:
		return make([]bool, 0, n)
	case String:
		return make([]string, 0, n)
	case Bytes:
		return make([][]byte, 0, n)
	case Timestamp:
		return make([]time.Time, 0, n)
	}
	return nil
}

// AppendList appends v, a Go value of the list's element type, to a slice
// that MakeList made.
func AppendList(l, v any) any {
	switch x := l.(type) {
	case []int32:
		return append(x, v.(int32))
	case []int64:
		return append(x, v.(int64))
	case []float32:
		return append(x, v.(float32))
	case []float64:
		return append(x, v.(float64))
	case []bool:
		return append(x, v.(bool))
	case []string:
		return append(x, v.(string))
	case [][]byte:
		return append(x, v.([]byte))
	case []time.Time:
		return append(x, v.(time.Time))
	}
	return l
}
