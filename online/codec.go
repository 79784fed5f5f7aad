package online

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/quiverdata/quiver/internal/valenc"
	"github.com/quiverdata/quiver/registry"
)

// Row format, version 1:
//
//	[0]      format version (1)
//	[1:9]    event time, microseconds since the Unix epoch, big-endian with
//	         the sign bit flipped, so that values compare like the times
//	[9:13]   fingerprint of the view's feature names and types (FNV-32a)
//	[13:]    null bitmap (one bit per feature), then each non-null value:
//	         int32, int64, timestamp (µs): zigzag varint; float32: 4 bytes,
//	         float64: 8 bytes (IEEE 754, little-endian); bool: 1 byte;
//	         string, bytes: uvarint length, bytes; list<T>: uvarint count,
//	         then the elements as above (lists hold no null elements).
//
// Row format 2 holds the aggregation tiles of a view with aggregations
// (package aggregate). It has the same header, its event time being the
// greatest event time applied and its fingerprint the aggregate.Spec's, so
// that stores guard writes of both formats alike.
const (
	rowVersion     = 1
	tileRowVersion = 2
	headerLen      = 13
	eventTimeFrom  = 1
	eventTimeTo    = 9
)

// Codec encodes and decodes one view's rows. It is immutable and safe for
// concurrent use.
type Codec struct {
	names       []string
	types       []registry.ValueType
	fingerprint uint32
}

// NewCodec returns the codec of a view's features (OutputFeatures order).
func NewCodec(v *registry.FeatureView) *Codec {
	feats := v.OutputFeatures()
	c := &Codec{names: make([]string, len(feats)), types: make([]registry.ValueType, len(feats))}
	h := fnv.New32a()
	for i, f := range feats {
		c.names[i], c.types[i] = f.Name, f.Type
		fmt.Fprintf(h, "%s:%s;", f.Name, f.Type)
	}
	c.fingerprint = h.Sum32()
	return c
}

// Names returns the features in row order.
func (c *Codec) Names() []string { return c.names }

// Types returns the feature types in row order.
func (c *Codec) Types() []registry.ValueType { return c.types }

// Encode appends the row of values (one per feature, nil for null) at
// eventTime to dst. Values may be any Go type that holds the feature's
// type without loss: int, int32, int64 for integers; float32, float64 for
// floats; bool; string; []byte; time.Time; and slices of those for lists.
func (c *Codec) Encode(dst []byte, eventTime time.Time, values []any) ([]byte, error) {
	if len(values) != len(c.types) {
		return nil, fmt.Errorf("encode row: %d values for %d features", len(values), len(c.types))
	}
	dst = append(dst, rowVersion)
	dst = binary.BigEndian.AppendUint64(dst, uint64(eventTime.UnixMicro())^(1<<63))
	dst = binary.LittleEndian.AppendUint32(dst, c.fingerprint)
	bitmap := len(dst)
	dst = append(dst, make([]byte, (len(values)+7)/8)...)
	var err error
	for i, v := range values {
		if v == nil {
			dst[bitmap+i/8] |= 1 << (i % 8)
			continue
		}
		if dst, err = appendValue(dst, c.types[i], v); err != nil {
			return nil, fmt.Errorf("feature %s: %w", c.names[i], err)
		}
	}
	return dst, nil
}

// Decode decodes a row into out (one slot per feature; nil for null) and
// returns its event time. ok is false when the row was written for a
// different set of features (the view changed since): its values are not
// decoded.
func (c *Codec) Decode(value []byte, out []any) (eventTime time.Time, ok bool, err error) {
	if len(out) != len(c.types) {
		return time.Time{}, false, fmt.Errorf("decode row: %d slots for %d features", len(out), len(c.types))
	}
	at, ok, bitmap, rest, err := c.frame(value)
	if !ok || err != nil {
		return at, false, err
	}
	for i, t := range c.types {
		if bitmap[i/8]&(1<<(i%8)) != 0 {
			out[i] = nil
			continue
		}
		var v any
		if v, rest, err = valenc.Read(rest, t); err != nil {
			return time.Time{}, false, fmt.Errorf("%w: feature %s: %v", ErrCorruptRow, c.names[i], err)
		}
		out[i] = v
	}
	if len(rest) != 0 {
		return time.Time{}, false, fmt.Errorf("%w: %d trailing bytes", ErrCorruptRow, len(rest))
	}
	return at, true, nil
}

// frame splits a row into its event time, null bitmap and values. ok is
// false (and nothing else is returned) when the row was written for other
// features than the codec's, or is a tile row.
func (c *Codec) frame(value []byte) (at time.Time, ok bool, bitmap, rest []byte, err error) {
	us, err := eventMicros(value)
	if err != nil {
		return time.Time{}, false, nil, nil, err
	}
	at = time.UnixMicro(us).UTC()
	if value[0] != rowVersion || binary.LittleEndian.Uint32(value[eventTimeTo:headerLen]) != c.fingerprint {
		return at, false, nil, nil, nil
	}
	nb := (len(c.types) + 7) / 8
	if len(value) < headerLen+nb {
		return time.Time{}, false, nil, nil, fmt.Errorf("%w: %d bytes", ErrCorruptRow, len(value))
	}
	return at, true, value[headerLen : headerLen+nb], value[headerLen+nb:], nil
}

// eventMicros reads the event time of a row of either format.
func eventMicros(value []byte) (int64, error) {
	if len(value) < headerLen || (value[0] != rowVersion && value[0] != tileRowVersion) {
		return 0, fmt.Errorf("%w: not a row of format %d or %d", ErrCorruptRow, rowVersion, tileRowVersion)
	}
	return int64(binary.BigEndian.Uint64(value[eventTimeFrom:eventTimeTo]) ^ (1 << 63)), nil
}

// appendValue encodes one value in the encoding of package valenc, which
// reads it back (valenc.Read), converting Go numbers to the column's type
// and refusing values that do not fit it.
func appendValue(dst []byte, t registry.ValueType, v any) ([]byte, error) {
	if t.List {
		n, at, err := listElems(v)
		if err != nil {
			return nil, err
		}
		dst = binary.AppendUvarint(dst, uint64(n))
		et := registry.ValueType{Elem: t.Elem}
		for i := range n {
			e := at(i)
			if e == nil {
				return nil, fmt.Errorf("list element %d is null; lists hold no nulls", i)
			}
			if dst, err = appendValue(dst, et, e); err != nil {
				return nil, fmt.Errorf("list element %d: %w", i, err)
			}
		}
		return dst, nil
	}
	switch t.Elem {
	case registry.Int32:
		i, ok := asInt(v)
		if !ok || i < math.MinInt32 || i > math.MaxInt32 {
			return nil, fmt.Errorf("%v (%T) is not an int32", v, v)
		}
		return binary.AppendVarint(dst, i), nil
	case registry.Int64:
		i, ok := asInt(v)
		if !ok {
			return nil, fmt.Errorf("%v (%T) is not an int64", v, v)
		}
		return binary.AppendVarint(dst, i), nil
	case registry.Float32:
		f, ok := asFloat(v)
		if !ok {
			return nil, fmt.Errorf("%v (%T) is not a float32", v, v)
		}
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(f))), nil
	case registry.Float64:
		f, ok := asFloat(v)
		if !ok {
			return nil, fmt.Errorf("%v (%T) is not a float64", v, v)
		}
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f)), nil
	case registry.Bool:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("%v (%T) is not a bool", v, v)
		}
		if b {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case registry.String:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%v (%T) is not a string", v, v)
		}
		return append(binary.AppendUvarint(dst, uint64(len(s))), s...), nil
	case registry.Bytes:
		b, ok := v.([]byte)
		if !ok {
			return nil, fmt.Errorf("%T is not bytes", v)
		}
		return append(binary.AppendUvarint(dst, uint64(len(b))), b...), nil
	case registry.Timestamp:
		ts, ok := v.(time.Time)
		if !ok {
			return nil, fmt.Errorf("%v (%T) is not a timestamp", v, v)
		}
		return binary.AppendVarint(dst, ts.UnixMicro()), nil
	}
	return nil, fmt.Errorf("unknown type %s", t)
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	if i, ok := asInt(v); ok {
		return float64(i), true
	}
	return 0, false
}

// listElems gives indexed access to a slice of any element type.
func listElems(v any) (int, func(int) any, error) {
	switch x := v.(type) {
	case []any:
		return len(x), func(i int) any { return x[i] }, nil
	case []float32:
		return len(x), func(i int) any { return x[i] }, nil
	case []float64:
		return len(x), func(i int) any { return x[i] }, nil
	case []int64:
		return len(x), func(i int) any { return x[i] }, nil
	case []int32:
		return len(x), func(i int) any { return x[i] }, nil
	case []int:
		return len(x), func(i int) any { return x[i] }, nil
	case []string:
		return len(x), func(i int) any { return x[i] }, nil
	case []bool:
		return len(x), func(i int) any { return x[i] }, nil
	case [][]byte:
		return len(x), func(i int) any { return x[i] }, nil
	case []time.Time:
		return len(x), func(i int) any { return x[i] }, nil
	}
	return 0, nil, fmt.Errorf("%T is not a list", v)
}

// EncodeEntity encodes join-key values (int64 or string, in the view's
// join-key order) as the readable text that keys carry: integers in
// decimal, strings with %, ',', '{', '}', ':' and non-printable bytes
// percent-escaped, joined by commas.
func EncodeEntity(types []registry.ValueType, values []any) ([]byte, error) {
	if len(types) != len(values) {
		return nil, fmt.Errorf("%d key values for %d join keys", len(values), len(types))
	}
	var b []byte
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		switch types[i] {
		case registry.TypeInt64:
			n, ok := asInt(v)
			if !ok {
				return nil, fmt.Errorf("join key value %v (%T) is not an int64", v, v)
			}
			b = strconv.AppendInt(b, n, 10)
		case registry.TypeString:
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("join key value %v (%T) is not a string", v, v)
			}
			b = appendEscaped(b, s)
		default:
			return nil, fmt.Errorf("join keys are int64 or string, not %s", types[i])
		}
	}
	return b, nil
}

func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || strings.IndexByte("%,{}:", c) >= 0 {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return b
}
