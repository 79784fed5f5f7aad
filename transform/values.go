package transform

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
)

// ToCEL converts a Go value to the CEL value of a feature or request field
// of type t. It accepts the Go types the stores and Arrow readers produce
// (int32, int64, float32, float64, bool, string, []byte, time.Time, typed
// slices or []any for lists) and, for numbers, any Go integer or float
// that the type holds exactly.
func ToCEL(t registry.ValueType, v any) (ref.Val, error) {
	if !t.List {
		return scalarToCEL(t.Elem, v)
	}
	n, at, ok := value.Elems(v)
	if !ok {
		return nil, fmt.Errorf("%v (%T) is not a list", v, v)
	}
	vals := make([]ref.Val, n)
	for i := range n {
		e := at(i)
		if e == nil {
			return nil, fmt.Errorf("element %d of the list is null", i)
		}
		var err error
		if vals[i], err = scalarToCEL(t.Elem, e); err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
	}
	return types.NewRefValList(types.DefaultTypeAdapter, vals), nil
}

func scalarToCEL(k registry.Scalar, v any) (ref.Val, error) {
	switch k {
	case registry.Int32, registry.Int64:
		if n, ok := exactInt(v); ok {
			if _, err := value.FromInt(k, n); err != nil {
				return nil, err
			}
			return types.Int(n), nil
		}
	case registry.Float32, registry.Float64:
		switch x := v.(type) {
		case float64:
			return types.Double(x), nil
		case float32:
			return types.Double(x), nil
		}
		if n, ok := exactInt(v); ok && n >= -(1<<53) && n <= 1<<53 {
			return types.Double(n), nil
		}
	case registry.Bool:
		if b, ok := v.(bool); ok {
			return types.Bool(b), nil
		}
	case registry.String:
		if s, ok := v.(string); ok {
			return types.String(s), nil
		}
	case registry.Bytes:
		switch b := v.(type) {
		case []byte:
			return types.Bytes(b), nil
		case string:
			return types.Bytes(b), nil
		}
	case registry.Timestamp:
		switch x := v.(type) {
		case time.Time:
			return types.Timestamp{Time: x.UTC()}, nil
		case string:
			t, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				return nil, fmt.Errorf("%q is not an RFC 3339 timestamp", x)
			}
			return types.Timestamp{Time: t.UTC()}, nil
		}
	}
	return nil, fmt.Errorf("%v (%T) is not a %s", v, v, registry.ValueType{Elem: k})
}

// exactInt returns v as an int64 when it is a Go integer, or a float
// with an integral value in range.
func exactInt(v any) (int64, bool) {
	if n, ok := value.AsInt(v); ok {
		return n, true
	}
	switch x := v.(type) {
	case uint32:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	case float64:
		if x == math.Trunc(x) && x >= -(1<<63) && x < 1<<63 {
			return int64(x), true
		}
	}
	return 0, false
}

var errNullResult = errors.New("the expression computed null")

// FromCEL converts an expression's result to the Go value of a feature of
// type t, checking the range of narrower types.
func FromCEL(t registry.ValueType, v ref.Val) (any, error) {
	if v == nil || v.Type() == types.NullType {
		return nil, errNullResult
	}
	if !t.List {
		return scalarFromCEL(t.Elem, v)
	}
	l, ok := v.(traits.Lister)
	if !ok {
		return nil, fmt.Errorf("computed %s, not a list", v.Type().TypeName())
	}
	n := int(l.Size().(types.Int))
	out := value.MakeList(t.Elem, n)
	if out == nil {
		return nil, fmt.Errorf("unsupported type %s", t)
	}
	for i := range n {
		x, err := scalarFromCEL(t.Elem, l.Get(types.Int(i)))
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i, err)
		}
		out = value.AppendList(out, x)
	}
	return out, nil
}

func scalarFromCEL(k registry.Scalar, v ref.Val) (any, error) {
	if err, ok := v.(*types.Err); ok {
		return nil, err
	}
	switch k {
	case registry.Int32, registry.Int64:
		if n, ok := v.(types.Int); ok {
			return value.FromInt(k, int64(n))
		}
	case registry.Float32, registry.Float64:
		if d, ok := v.(types.Double); ok {
			return value.FromFloat(k, float64(d))
		}
	case registry.Bool:
		if b, ok := v.(types.Bool); ok {
			return bool(b), nil
		}
	case registry.String:
		if s, ok := v.(types.String); ok {
			return string(s), nil
		}
	case registry.Bytes:
		if b, ok := v.(types.Bytes); ok {
			return []byte(b), nil
		}
	case registry.Timestamp:
		if ts, ok := v.(types.Timestamp); ok {
			return ts.Time.UTC().Truncate(time.Microsecond), nil
		}
	}
	return nil, fmt.Errorf("computed %s, but the feature is %s", v.Type().TypeName(), registry.ValueType{Elem: k})
}
