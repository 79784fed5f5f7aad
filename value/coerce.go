package value

import (
	"fmt"
	"math"
	"time"
)

// What a value becomes for a type. Values reach Quiver as many Go types:
// pushed over gRPC (typed proto lists), decoded from JSON events, read
// from Arrow batches, computed by expressions. These functions say, in one
// place, which of them a type holds and what it becomes: integers of any
// Go width for int32 (in range) and int64; floats or integers for float32
// and float64; bool, string, []byte and time.Time for the others.

// AsInt returns v as an int64 when it is a Go signed integer.
func AsInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	}
	return 0, false
}

// AsFloat returns v as a float64 when it is a Go float or signed integer.
func AsFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	if i, ok := AsInt(v); ok {
		return float64(i), true
	}
	return 0, false
}

// Int reads v as a value of integer type e (Int32 or Int64): a Go signed
// integer, in int32's range for Int32. It is false for any other e.
func Int(e Scalar, v any) (int64, bool) {
	i, ok := AsInt(v)
	switch {
	case !ok:
		return 0, false
	case e == Int32:
		return i, i >= math.MinInt32 && i <= math.MaxInt32
	case e == Int64:
		return i, true
	}
	return 0, false
}

// Float reads v as a value of float type e (Float32 or Float64): a Go float
// or signed integer; a Float32 value is rounded to float32. It is false for
// any other e.
func Float(e Scalar, v any) (float64, bool) {
	f, ok := AsFloat(v)
	switch {
	case !ok:
		return 0, false
	case e == Float32:
		return float64(float32(f)), true
	case e == Float64:
		return f, true
	}
	return 0, false
}

// FromInt returns the integer n as the Go value of numeric type e (int32,
// int64, float32 or float64). An int32 out of range is an error naming the
// type, as is a type that is not numeric.
func FromInt(e Scalar, n int64) (any, error) {
	switch e {
	case Int32:
		if n < math.MinInt32 || n > math.MaxInt32 {
			return nil, fmt.Errorf("%d does not fit int32", n)
		}
		return int32(n), nil
	case Int64:
		return n, nil
	case Float32:
		return float32(n), nil
	case Float64:
		return float64(n), nil
	}
	return nil, fmt.Errorf("%d is not a %s", n, e)
}

// FromFloat returns the float f as the Go value of float type e (float32
// or float64). A finite f beyond float32's range is an error naming the
// type, as is a type that is not a float.
func FromFloat(e Scalar, f float64) (any, error) {
	switch e {
	case Float32:
		x := float32(f)
		if math.IsInf(float64(x), 0) && !math.IsInf(f, 0) {
			return nil, fmt.Errorf("%g does not fit float32", f)
		}
		return x, nil
	case Float64:
		return f, nil
	}
	return nil, fmt.Errorf("%g is not a %s", f, e)
}

// FromMicros returns µs since the epoch as the Go value of type e: int32
// (unchecked), int64 or a UTC time.Time for Timestamp; nil for other
// types. It turns the integers that tiles hold back into their values.
func FromMicros(e Scalar, us int64) any {
	switch e {
	case Int32:
		return int32(us)
	case Int64:
		return us
	case Timestamp:
		return time.UnixMicro(us).UTC()
	}
	return nil
}

// Canon returns v as the canonical Go value of type t: int32, int64,
// float32, float64, bool, string, []byte, time.Time (UTC, whole µs), or a
// typed slice ([]float32, []int64 …) for lists. Bytes and lists are
// copied, so the result does not alias v. A v that does not hold t (see
// Append) is an error naming the value and the type; nil is an error too.
func Canon(t Type, v any) (any, error) {
	if v == nil {
		return nil, fmt.Errorf("null, want a value of type %s", t)
	}
	if !t.List {
		return canonScalar(t.Elem, v)
	}
	n, at, ok := Elems(v)
	if !ok {
		return nil, fmt.Errorf("%T is not a list", v)
	}
	out := MakeList(t.Elem, n)
	if out == nil {
		return nil, fmt.Errorf("unknown type %s", t)
	}
	for i := range n {
		e := at(i)
		if e == nil {
			return nil, fmt.Errorf("list element %d is null; lists hold no nulls", i)
		}
		x, err := canonScalar(t.Elem, e)
		if err != nil {
			return nil, fmt.Errorf("list element %d: %w", i, err)
		}
		out = AppendList(out, x)
	}
	return out, nil
}

func canonScalar(e Scalar, v any) (any, error) {
	switch e {
	case Int32:
		if i, ok := Int(e, v); ok {
			return int32(i), nil
		}
	case Int64:
		if i, ok := Int(e, v); ok {
			return i, nil
		}
	case Float32:
		if f, ok := Float(e, v); ok {
			return float32(f), nil
		}
	case Float64:
		if f, ok := Float(e, v); ok {
			return f, nil
		}
	case Bool:
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case String:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case Bytes:
		if b, ok := v.([]byte); ok {
			return append([]byte{}, b...), nil
		}
	case Timestamp:
		if t, ok := v.(time.Time); ok {
			return time.UnixMicro(t.UnixMicro()).UTC(), nil
		}
	default:
		return nil, fmt.Errorf("unknown type %s", e)
	}
	return nil, notA(e, v)
}

// Valid reports whether v is a non-null value of type t (one Canon takes),
// without copying it.
func Valid(t Type, v any) bool {
	if v == nil {
		return false
	}
	if !t.List {
		return validScalar(t.Elem, v)
	}
	n, at, ok := Elems(v)
	if !ok {
		return false
	}
	for i := range n {
		if e := at(i); e == nil || !validScalar(t.Elem, e) {
			return false
		}
	}
	return true
}

func validScalar(e Scalar, v any) bool {
	var ok bool
	switch e {
	case Int32, Int64:
		_, ok = Int(e, v)
	case Float32, Float64:
		_, ok = Float(e, v)
	case Bool:
		_, ok = v.(bool)
	case String:
		_, ok = v.(string)
	case Bytes:
		_, ok = v.([]byte)
	case Timestamp:
		_, ok = v.(time.Time)
	}
	return ok
}

// Elems gives indexed access to a list value of any element type: []any
// or a typed slice of a Go type that Canon takes. ok is false when v is
// not one.
func Elems(v any) (n int, at func(int) any, ok bool) {
	switch x := v.(type) {
	case []any:
		return len(x), func(i int) any { return x[i] }, true
	case []float32:
		return len(x), func(i int) any { return x[i] }, true
	case []float64:
		return len(x), func(i int) any { return x[i] }, true
	case []int64:
		return len(x), func(i int) any { return x[i] }, true
	case []int32:
		return len(x), func(i int) any { return x[i] }, true
	case []int:
		return len(x), func(i int) any { return x[i] }, true
	case []string:
		return len(x), func(i int) any { return x[i] }, true
	case []bool:
		return len(x), func(i int) any { return x[i] }, true
	case [][]byte:
		return len(x), func(i int) any { return x[i] }, true
	case []time.Time:
		return len(x), func(i int) any { return x[i] }, true
	}
	return 0, nil, false
}

// notA is the error for a value that does not hold a scalar type.
func notA(e Scalar, v any) error {
	switch e {
	case Int32, Int64:
		return fmt.Errorf("%v (%T) is not an %s", v, v, e)
	case Bytes:
		return fmt.Errorf("%T is not bytes", v)
	}
	return fmt.Errorf("%v (%T) is not a %s", v, v, e)
}
