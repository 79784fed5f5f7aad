package value

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The row format. Every row an online store holds starts with a header of
// HeaderLen bytes:
//
//	[0]      format: FormatRow (1) or FormatTiles (2)
//	[1:9]    event time, microseconds since the Unix epoch, big-endian with
//	         the sign bit flipped, so that values compare like the times
//	[9:13]   fingerprint of what the payload holds, little-endian
//
// A plain row (format 1) follows it with a null bitmap and its values; the
// aggregation tiles of a view (format 2, package aggregate) with their
// payload. Both encode single values as Append writes them and Read reads
// them back:
//
//	int32, int64, timestamp (µs since the epoch): zigzag varint
//	float32, float64: 4 and 8 bytes, IEEE 754 little-endian
//	bool: one byte, 0 or 1
//	string, bytes: uvarint length, then the bytes
//	list<T>: uvarint count, then the elements as above (no nulls)
//
// Stores hold rows written by every earlier version: this format does not
// change.
const (
	FormatRow   = 1
	FormatTiles = 2
	HeaderLen   = 13
)

// Header is the start of a stored row.
type Header struct {
	Format      byte
	EventMicros int64
	Fingerprint uint32
}

// AppendHeader appends h's encoding (HeaderLen bytes) to dst.
func AppendHeader(dst []byte, h Header) []byte {
	dst = append(dst, h.Format)
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.EventMicros)^(1<<63))
	return binary.LittleEndian.AppendUint32(dst, h.Fingerprint)
}

// ReadHeader reads the header at the start of row; ok is false when row is
// shorter than a header. It does not check the format.
func ReadHeader(row []byte) (h Header, ok bool) {
	if len(row) < HeaderLen {
		return Header{}, false
	}
	return Header{
		Format:      row[0],
		EventMicros: int64(binary.BigEndian.Uint64(row[1:9]) ^ (1 << 63)),
		Fingerprint: binary.LittleEndian.Uint32(row[9:13]),
	}, true
}

// ErrShort reports a value cut off before its end.
var ErrShort = errors.New("truncated value")

var (
	errVarint     = errors.New("bad varint")
	errLength     = errors.New("bad length")
	errListLength = errors.New("bad list length")
	errBool       = errors.New("bad bool")
	errInt32      = errors.New("int32 out of range")
)

// Append appends the encoding of v, a value of type t, to dst. v may be
// any Go value that holds t without loss: any Go integer for int32 and
// int64 (in range); a float or an integer for float32 and float64; bool;
// string; []byte; time.Time; for lists, a slice of those ([]float32, []any
// …) without nulls. A value that does not hold t is an error naming the
// value and the type.
func Append(dst []byte, t Type, v any) ([]byte, error) {
	if t.List {
		n, at, ok := Elems(v)
		if !ok {
			return nil, fmt.Errorf("%T is not a list", v)
		}
		dst = binary.AppendUvarint(dst, uint64(n))
		et := Type{Elem: t.Elem}
		var err error
		for i := range n {
			e := at(i)
			if e == nil {
				return nil, fmt.Errorf("list element %d is null; lists hold no nulls", i)
			}
			if dst, err = Append(dst, et, e); err != nil {
				return nil, fmt.Errorf("list element %d: %w", i, err)
			}
		}
		return dst, nil
	}
	switch t.Elem {
	case Int32, Int64:
		i, ok := Int(t.Elem, v)
		if !ok {
			return nil, notA(t.Elem, v)
		}
		return binary.AppendVarint(dst, i), nil
	case Float32:
		if x, ok := v.(float32); ok { // exact, NaN payloads too
			return binary.LittleEndian.AppendUint32(dst, math.Float32bits(x)), nil
		}
		f, ok := Float(Float32, v)
		if !ok {
			return nil, notA(t.Elem, v)
		}
		return binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(f))), nil
	case Float64:
		f, ok := Float(Float64, v)
		if !ok {
			return nil, notA(t.Elem, v)
		}
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f)), nil
	case Bool:
		b, ok := v.(bool)
		if !ok {
			return nil, notA(t.Elem, v)
		}
		if b {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case String:
		s, ok := v.(string)
		if !ok {
			return nil, notA(t.Elem, v)
		}
		return append(binary.AppendUvarint(dst, uint64(len(s))), s...), nil
	case Bytes:
		b, ok := v.([]byte)
		if !ok {
			return nil, notA(t.Elem, v)
		}
		return append(binary.AppendUvarint(dst, uint64(len(b))), b...), nil
	case Timestamp:
		ts, ok := v.(time.Time)
		if !ok {
			return nil, notA(t.Elem, v)
		}
		return binary.AppendVarint(dst, ts.UnixMicro()), nil
	}
	return nil, fmt.Errorf("unknown type %s", t)
}

// Read decodes one value of type t from the start of b and returns it with
// the rest of b. Scalars come back as their Go types (int32, int64,
// float32, float64, bool, string, []byte copied out of b, time.Time in
// UTC), lists as typed slices (MakeList). It never panics on corrupt
// input: it returns an error instead.
func Read(b []byte, t Type) (any, []byte, error) {
	if t.Elem < Int32 || t.Elem > Timestamp {
		return nil, nil, errors.New("unknown type " + t.String()) // an empty list of it too
	}
	if t.List {
		n, rest, err := readCount(b)
		if err != nil {
			return nil, nil, err
		}
		b = rest
		et := Type{Elem: t.Elem}
		out := MakeList(t.Elem, n)
		for range n {
			var v any
			if v, b, err = Read(b, et); err != nil {
				return nil, nil, err
			}
			out = AppendList(out, v)
		}
		return out, b, nil
	}
	switch t.Elem {
	case Int32, Int64, Timestamp:
		i, rest, err := ReadInt(b, t.Elem)
		if err != nil {
			return nil, nil, err
		}
		switch t.Elem {
		case Int32:
			return int32(i), rest, nil
		case Timestamp:
			return time.UnixMicro(i).UTC(), rest, nil
		}
		return i, rest, nil
	case Float32:
		f, rest, err := ReadFloat32(b)
		return f, rest, err
	case Float64:
		f, rest, err := ReadFloat64(b)
		return f, rest, err
	case Bool:
		v, rest, err := ReadBool(b)
		return v, rest, err
	case String:
		s, rest, err := readRaw(b)
		if err != nil {
			return nil, nil, err
		}
		return string(s), rest, nil
	}
	s, rest, err := readRaw(b)
	if err != nil {
		return nil, nil, err
	}
	return append([]byte{}, s...), rest, nil
}

// ReadInt decodes an int32, int64 or timestamp (µs), as e says, without
// boxing it; an int32 out of range is an error.
func ReadInt(b []byte, e Scalar) (int64, []byte, error) {
	i, k := binary.Varint(b)
	if k <= 0 {
		return 0, nil, errVarint
	}
	if e == Int32 && (i < math.MinInt32 || i > math.MaxInt32) {
		return 0, nil, errInt32
	}
	return i, b[k:], nil
}

// ReadFloat32 decodes a float32.
func ReadFloat32(b []byte) (float32, []byte, error) {
	if len(b) < 4 {
		return 0, nil, ErrShort
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(b)), b[4:], nil
}

// ReadFloat64 decodes a float64.
func ReadFloat64(b []byte) (float64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, ErrShort
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:], nil
}

// ReadBool decodes a bool.
func ReadBool(b []byte) (bool, []byte, error) {
	if len(b) < 1 || b[0] > 1 {
		return false, nil, errBool
	}
	return b[0] == 1, b[1:], nil
}

// ReadString decodes a string (copied out of b).
func ReadString(b []byte) (string, []byte, error) {
	s, rest, err := readRaw(b)
	if err != nil {
		return "", nil, err
	}
	return string(s), rest, nil
}

// ReadBytes decodes bytes (copied out of b).
func ReadBytes(b []byte) ([]byte, []byte, error) {
	s, rest, err := readRaw(b)
	if err != nil {
		return nil, nil, err
	}
	return append([]byte{}, s...), rest, nil
}

// readRaw reads a length-prefixed string or bytes, aliasing b.
func readRaw(b []byte) ([]byte, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, errLength
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

// readCount reads a list's element count, which cannot exceed the bytes
// left (every element takes at least one).
func readCount(b []byte) (int, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return 0, nil, errListLength
	}
	return int(n), b[k:], nil
}

// Skip steps over one value of type t without materializing it. It
// refuses what Read refuses (an int32 out of range, a bool that is not 0
// or 1), so that a row reads the same whichever of its values are asked
// for.
func Skip(b []byte, t Type) ([]byte, error) {
	if t.Elem < Int32 || t.Elem > Timestamp {
		return nil, errors.New("unknown type " + t.String()) // an empty list of it too
	}
	if t.List {
		n, rest, err := readCount(b)
		if err != nil {
			return nil, err
		}
		b = rest
		et := Type{Elem: t.Elem}
		for range n {
			if b, err = Skip(b, et); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	switch t.Elem {
	case Int32, Int64, Timestamp:
		_, rest, err := ReadInt(b, t.Elem)
		return rest, err
	case Float32:
		if len(b) < 4 {
			return nil, ErrShort
		}
		return b[4:], nil
	case Float64:
		if len(b) < 8 {
			return nil, ErrShort
		}
		return b[8:], nil
	case Bool:
		_, rest, err := ReadBool(b)
		return rest, err
	case String, Bytes:
		_, rest, err := readRaw(b)
		return rest, err
	}
	return nil, errors.New("unknown type " + t.String())
}
