package servingv1

import "time"

// ValuesOf puts a typed Go slice in the Values field of its type, without
// copying scalars ([]time.Time becomes microseconds since the epoch, the
// zero time 0). It reports false for other types.
func ValuesOf(s any) (*Values, bool) {
	v := &Values{}
	switch x := s.(type) {
	case []int32:
		v.Int32Values = x
	case []int64:
		v.Int64Values = x
	case []float32:
		v.FloatValues = x
	case []float64:
		v.DoubleValues = x
	case []bool:
		v.BoolValues = x
	case []string:
		v.StringValues = x
	case [][]byte:
		v.BytesValues = x
	case []time.Time:
		v.TimestampValues = make([]int64, len(x))
		for i, t := range x {
			if !t.IsZero() {
				v.TimestampValues[i] = t.UnixMicro()
			}
		}
	default:
		return nil, false
	}
	return v, true
}
