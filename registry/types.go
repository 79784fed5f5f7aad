package registry

import (
	"fmt"
	"strconv"
	"strings"
	"time"
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

// ValueType is the type of a feature or field: a scalar, or a list of one.
// Embeddings are list<float32>.
type ValueType struct {
	Elem Scalar
	List bool
}

// Common value types.
var (
	TypeInt64     = ValueType{Elem: Int64}
	TypeString    = ValueType{Elem: String}
	TypeTimestamp = ValueType{Elem: Timestamp}
)

func (t ValueType) String() string {
	if t.List {
		return "list<" + t.Elem.String() + ">"
	}
	return t.Elem.String()
}

// IsZero reports whether t is unset.
func (t ValueType) IsZero() bool { return t.Elem == 0 }

const typeHint = "one of int32, int64, float32, float64, bool, string, bytes, timestamp, or list<T> of one of them"

// ParseValueType parses "float32", "list<float32>" and the like.
func ParseValueType(s string) (ValueType, error) {
	in := strings.TrimSpace(s)
	var t ValueType
	if rest, ok := strings.CutPrefix(in, "list<"); ok {
		inner, ok := strings.CutSuffix(rest, ">")
		if !ok {
			return ValueType{}, fmt.Errorf("%q is not a type (lists are written list<float32>)", Clip(s))
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
		return ValueType{}, fmt.Errorf("%q is not a type (lists of lists are not supported)", Clip(s))
	}
	return ValueType{}, fmt.Errorf("%q is not a type (%s)%s", Clip(s), typeHint, didYouMean(in, scalarNames[1:]))
}

// MarshalText implements encoding.TextMarshaler.
func (t ValueType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *ValueType) UnmarshalText(b []byte) error {
	v, err := ParseValueType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

func (t *ValueType) parseScalar(s string) error { return t.UnmarshalText([]byte(s)) }

// Duration is a non-negative length of time written like Go durations with
// two more units: d (24h) and w (7d). "0" means zero.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d canonically, Go style without zero units: 48h, 1h30m, 90s → 1m30s.
func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

var durationUnits = map[string]time.Duration{
	"ns": time.Nanosecond, "us": time.Microsecond, "µs": time.Microsecond, "ms": time.Millisecond,
	"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour,
}

// ParseDuration parses a duration such as 48h, 7d, 1h30m, 500ms or 0.
func ParseDuration(s string) (Duration, error) {
	bad := fmt.Errorf("%q is not a duration (e.g. 72h, 7d, 30m)", Clip(s))
	in := strings.TrimSpace(s)
	if in == "0" {
		return 0, nil
	}
	if in == "" {
		return 0, bad
	}
	var total time.Duration
	for in != "" {
		i := 0
		for i < len(in) && (in[i] >= '0' && in[i] <= '9' || in[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, bad
		}
		num, err := strconv.ParseFloat(in[:i], 64)
		if err != nil {
			return 0, bad
		}
		in = in[i:]
		j := 0
		for j < len(in) && !(in[j] >= '0' && in[j] <= '9' || in[j] == '.') {
			j++
		}
		unit, ok := durationUnits[in[:j]]
		if !ok {
			return 0, bad
		}
		in = in[j:]
		part := num * float64(unit)
		if part > float64(1<<62) || total > time.Duration(1<<62) {
			return 0, fmt.Errorf("%q is too long a duration", Clip(s))
		}
		total += time.Duration(part)
	}
	return Duration(total), nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func (d *Duration) parseScalar(s string) error { return d.UnmarshalText([]byte(s)) }

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
