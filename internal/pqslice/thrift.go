package pqslice

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/thrift/lib/go/thrift"
)

// A Parquet footer is a Thrift struct in the compact protocol. It is
// decoded here into a generic tree that keeps every field, known or not,
// so that a slice can drop and rewrite the few fields it knows and write
// the rest back unchanged.

// maxDepth bounds the nesting of decoded structs and containers.
const maxDepth = 32

// value is one Thrift value of type typ.
type value struct {
	typ  thrift.TType
	b    bool
	i    int64   // BYTE, I16, I32, I64
	d    float64 // DOUBLE
	s    []byte  // STRING (binary)
	st   *tstruct
	elem thrift.TType // LIST, SET: element type; MAP: key type
	val  thrift.TType // MAP: value type
	list []value      // LIST, SET elements; MAP keys and values interleaved
}

type field struct {
	id int16
	v  value
}

// tstruct is a decoded struct: its fields in the order they came.
type tstruct struct{ fields []field }

// get returns the field id, or nil.
func (s *tstruct) get(id int16) *value {
	if s == nil {
		return nil
	}
	for i := range s.fields {
		if s.fields[i].id == id {
			return &s.fields[i].v
		}
	}
	return nil
}

// int returns the integer field id, and whether it is there.
func (s *tstruct) int(id int16) (int64, bool) {
	v := s.get(id)
	if v == nil {
		return 0, false
	}
	switch v.typ {
	case thrift.BYTE, thrift.I16, thrift.I32, thrift.I64:
		return v.i, true
	}
	return 0, false
}

// str returns the binary field id.
func (s *tstruct) str(id int16) ([]byte, bool) {
	v := s.get(id)
	if v == nil || v.typ != thrift.STRING {
		return nil, false
	}
	return v.s, true
}

// child returns the struct field id, or nil.
func (s *tstruct) child(id int16) *tstruct {
	v := s.get(id)
	if v == nil || v.typ != thrift.STRUCT {
		return nil
	}
	return v.st
}

// structs returns the elements of the list field id, when they are
// structs.
func (s *tstruct) structs(id int16) ([]*tstruct, bool) {
	v := s.get(id)
	if v == nil || v.typ != thrift.LIST || v.elem != thrift.STRUCT {
		return nil, false
	}
	out := make([]*tstruct, len(v.list))
	for i := range v.list {
		out[i] = v.list[i].st
	}
	return out, true
}

// set replaces (or adds) field id with v.
func (s *tstruct) set(id int16, v value) {
	if p := s.get(id); p != nil {
		*p = v
		return
	}
	s.fields = append(s.fields, field{id: id, v: v})
}

// setInt sets the integer field id, keeping its type when it is there.
func (s *tstruct) setInt(id int16, typ thrift.TType, n int64) {
	if p := s.get(id); p != nil && (p.typ == thrift.I32 || p.typ == thrift.I64 || p.typ == thrift.I16) {
		typ = p.typ
	}
	s.set(id, value{typ: typ, i: n})
}

// drop removes field id.
func (s *tstruct) drop(id int16) {
	out := s.fields[:0]
	for _, f := range s.fields {
		if f.id != id {
			out = append(out, f)
		}
	}
	s.fields = out
}

// setStructs sets the list-of-structs field id.
func (s *tstruct) setStructs(id int16, sts []*tstruct) {
	l := make([]value, len(sts))
	for i, st := range sts {
		l[i] = value{typ: thrift.STRUCT, st: st}
	}
	s.set(id, value{typ: thrift.LIST, elem: thrift.STRUCT, list: l})
}

// errMalformed wraps every decoding failure.
var errMalformed = errors.New("malformed Parquet footer")

// decodeStruct decodes one compact-protocol struct from b.
func decodeStruct(b []byte) (*tstruct, error) {
	buf := thrift.NewTMemoryBufferLen(len(b))
	if _, err := buf.Write(b); err != nil {
		return nil, err
	}
	conf := &thrift.TConfiguration{MaxMessageSize: int32(min(len(b)+1, 1<<30))}
	p := thrift.NewTCompactProtocolConf(buf, conf)
	d := decoder{p: p, left: len(b)}
	st, err := d.readStruct(context.Background(), 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	return st, nil
}

type decoder struct {
	p *thrift.TCompactProtocol
	// left bounds the elements a container may declare: every element
	// takes at least one byte, except booleans of a struct's fields.
	left int
}

func (d *decoder) readStruct(ctx context.Context, depth int) (*tstruct, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxDepth)
	}
	if _, err := d.p.ReadStructBegin(ctx); err != nil {
		return nil, err
	}
	st := &tstruct{}
	for {
		_, typ, id, err := d.p.ReadFieldBegin(ctx)
		if err != nil {
			return nil, err
		}
		if typ == thrift.STOP {
			break
		}
		v, err := d.readValue(ctx, typ, depth+1)
		if err != nil {
			return nil, fmt.Errorf("field %d: %w", id, err)
		}
		st.fields = append(st.fields, field{id: id, v: v})
		if len(st.fields) > d.left {
			return nil, errors.New("more fields than bytes")
		}
	}
	return st, d.p.ReadStructEnd(ctx)
}

func (d *decoder) readValue(ctx context.Context, typ thrift.TType, depth int) (value, error) {
	v := value{typ: typ}
	var err error
	switch typ {
	case thrift.BOOL:
		v.b, err = d.p.ReadBool(ctx)
	case thrift.BYTE:
		var n int8
		n, err = d.p.ReadByte(ctx)
		v.i = int64(n)
	case thrift.I16:
		var n int16
		n, err = d.p.ReadI16(ctx)
		v.i = int64(n)
	case thrift.I32:
		var n int32
		n, err = d.p.ReadI32(ctx)
		v.i = int64(n)
	case thrift.I64:
		v.i, err = d.p.ReadI64(ctx)
	case thrift.DOUBLE:
		v.d, err = d.p.ReadDouble(ctx)
	case thrift.STRING:
		v.s, err = d.p.ReadBinary(ctx)
	case thrift.STRUCT:
		v.st, err = d.readStruct(ctx, depth)
	case thrift.LIST, thrift.SET:
		var n int
		if typ == thrift.LIST {
			v.elem, n, err = d.p.ReadListBegin(ctx)
		} else {
			v.elem, n, err = d.p.ReadSetBegin(ctx)
		}
		if err != nil {
			return v, err
		}
		if n < 0 || n > d.left {
			return v, fmt.Errorf("a list of %d elements in %d bytes", n, d.left)
		}
		if depth > maxDepth {
			return v, fmt.Errorf("nested deeper than %d", maxDepth)
		}
		v.list = make([]value, 0, min(n, 1024))
		for range n {
			e, err := d.readValue(ctx, v.elem, depth+1)
			if err != nil {
				return v, err
			}
			v.list = append(v.list, e)
		}
	case thrift.MAP:
		var n int
		v.elem, v.val, n, err = d.p.ReadMapBegin(ctx)
		if err != nil {
			return v, err
		}
		if n < 0 || n > d.left {
			return v, fmt.Errorf("a map of %d entries in %d bytes", n, d.left)
		}
		if depth > maxDepth {
			return v, fmt.Errorf("nested deeper than %d", maxDepth)
		}
		for range n {
			k, err := d.readValue(ctx, v.elem, depth+1)
			if err != nil {
				return v, err
			}
			val, err := d.readValue(ctx, v.val, depth+1)
			if err != nil {
				return v, err
			}
			v.list = append(v.list, k, val)
		}
	default:
		return v, fmt.Errorf("unknown type %d", typ)
	}
	return v, err
}

// encodeStruct encodes st in the compact protocol.
func encodeStruct(st *tstruct) ([]byte, error) {
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{})
	ctx := context.Background()
	if err := writeStruct(ctx, p, st); err != nil {
		return nil, err
	}
	if err := p.Flush(ctx); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeStruct(ctx context.Context, p *thrift.TCompactProtocol, st *tstruct) error {
	if err := p.WriteStructBegin(ctx, ""); err != nil {
		return err
	}
	for _, f := range st.fields {
		if err := p.WriteFieldBegin(ctx, "", f.v.typ, f.id); err != nil {
			return err
		}
		if err := writeValue(ctx, p, f.v); err != nil {
			return err
		}
		if err := p.WriteFieldEnd(ctx); err != nil {
			return err
		}
	}
	if err := p.WriteFieldStop(ctx); err != nil {
		return err
	}
	return p.WriteStructEnd(ctx)
}

func writeValue(ctx context.Context, p *thrift.TCompactProtocol, v value) error {
	switch v.typ {
	case thrift.BOOL:
		return p.WriteBool(ctx, v.b)
	case thrift.BYTE:
		return p.WriteByte(ctx, int8(v.i))
	case thrift.I16:
		return p.WriteI16(ctx, int16(v.i))
	case thrift.I32:
		return p.WriteI32(ctx, int32(v.i))
	case thrift.I64:
		return p.WriteI64(ctx, v.i)
	case thrift.DOUBLE:
		return p.WriteDouble(ctx, v.d)
	case thrift.STRING:
		return p.WriteBinary(ctx, v.s)
	case thrift.STRUCT:
		return writeStruct(ctx, p, v.st)
	case thrift.LIST, thrift.SET:
		var err error
		if v.typ == thrift.LIST {
			err = p.WriteListBegin(ctx, v.elem, len(v.list))
		} else {
			err = p.WriteSetBegin(ctx, v.elem, len(v.list))
		}
		if err != nil {
			return err
		}
		for _, e := range v.list {
			if err := writeValue(ctx, p, e); err != nil {
				return err
			}
		}
		return nil
	case thrift.MAP:
		if err := p.WriteMapBegin(ctx, v.elem, v.val, len(v.list)/2); err != nil {
			return err
		}
		for _, e := range v.list {
			if err := writeValue(ctx, p, e); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("cannot write type %d", v.typ)
}
