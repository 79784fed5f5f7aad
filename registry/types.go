package registry

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/quiverdata/quiver/value"
)

// The value types are defined in package value; these names keep the
// registry's vocabulary (registry.Int64, registry.ValueType).
type (
	// Scalar is a scalar value type.
	Scalar = value.Scalar
	// ValueType is the type of a feature or field: a scalar, or a list of one.
	ValueType = value.Type
)

// The scalar types.
const (
	Int32     = value.Int32
	Int64     = value.Int64
	Float32   = value.Float32
	Float64   = value.Float64
	Bool      = value.Bool
	String    = value.String
	Bytes     = value.Bytes
	Timestamp = value.Timestamp
)

// Common value types.
var (
	TypeInt64     = value.TypeInt64
	TypeString    = value.TypeString
	TypeTimestamp = value.TypeTimestamp
)

// ParseValueType parses "float32", "list<float32>" and the like.
func ParseValueType(s string) (ValueType, error) { return value.Parse(s) }

// MakeList is value.MakeList.
func MakeList(e Scalar, n int) any { return value.MakeList(e, n) }

// AppendList is value.AppendList.
func AppendList(l, v any) any { return value.AppendList(l, v) }

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
