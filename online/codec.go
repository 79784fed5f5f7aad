package online

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
)

// Row format, version 1 (value.FormatRow):
//
//	[0:13]   the header (value.Header): format 1, the event time, and the
//	         fingerprint of the view's feature names and types (FNV-32a)
//	[13:]    null bitmap (one bit per feature), then each non-null value
//	         as value.Append writes it (lists hold no null elements).
//
// Row format 2 (value.FormatTiles) holds the aggregation tiles of a view
// with aggregations (package aggregate). It has the same header, its event
// time being the greatest event time applied and its fingerprint the
// aggregate.Spec's, so that stores guard writes of both formats alike.
const (
	rowVersion     = value.FormatRow
	tileRowVersion = value.FormatTiles
	headerLen      = value.HeaderLen
	eventTimeFrom  = 1 // the event time's bytes in the header
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
	dst = value.AppendHeader(dst, value.Header{Format: rowVersion, EventMicros: eventTime.UnixMicro(), Fingerprint: c.fingerprint})
	bitmap := len(dst)
	dst = append(dst, make([]byte, (len(values)+7)/8)...)
	var err error
	for i, v := range values {
		if v == nil {
			dst[bitmap+i/8] |= 1 << (i % 8)
			continue
		}
		if dst, err = value.Append(dst, c.types[i], v); err != nil {
			return nil, fmt.Errorf("feature %s: %w", c.names[i], err)
		}
	}
	return dst, nil
}

// Decode decodes a row into out (one slot per feature; nil for null) and
// returns its event time. ok is false when the row was written for a
// different set of features (the view changed since): its values are not
// decoded.
func (c *Codec) Decode(row []byte, out []any) (eventTime time.Time, ok bool, err error) {
	if len(out) != len(c.types) {
		return time.Time{}, false, fmt.Errorf("decode row: %d slots for %d features", len(out), len(c.types))
	}
	at, ok, bitmap, rest, err := c.frame(row)
	if !ok || err != nil {
		return at, false, err
	}
	for i, t := range c.types {
		if bitmap[i/8]&(1<<(i%8)) != 0 {
			out[i] = nil
			continue
		}
		var v any
		if v, rest, err = value.Read(rest, t); err != nil {
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
func (c *Codec) frame(row []byte) (at time.Time, ok bool, bitmap, rest []byte, err error) {
	h, err := header(row)
	if err != nil {
		return time.Time{}, false, nil, nil, err
	}
	at = time.UnixMicro(h.EventMicros).UTC()
	if h.Format != rowVersion || h.Fingerprint != c.fingerprint {
		return at, false, nil, nil, nil
	}
	nb := (len(c.types) + 7) / 8
	if len(row) < headerLen+nb {
		return time.Time{}, false, nil, nil, fmt.Errorf("%w: %d bytes", ErrCorruptRow, len(row))
	}
	return at, true, row[headerLen : headerLen+nb], row[headerLen+nb:], nil
}

// header reads the header of a row of either format.
func header(row []byte) (value.Header, error) {
	h, ok := value.ReadHeader(row)
	if !ok || (h.Format != rowVersion && h.Format != tileRowVersion) {
		return value.Header{}, fmt.Errorf("%w: not a row of format %d or %d", ErrCorruptRow, rowVersion, tileRowVersion)
	}
	return h, nil
}

// eventMicros reads the event time of a row of either format.
func eventMicros(row []byte) (int64, error) {
	h, err := header(row)
	return h.EventMicros, err
}

// asInt reads any Go signed integer.
func asInt(v any) (int64, bool) { return value.AsInt(v) }

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
