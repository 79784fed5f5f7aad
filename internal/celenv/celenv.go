// Package celenv declares the CEL environment of on-demand expressions, so
// that the registry's validation and the transform package's evaluation
// build exactly the same one.
//
// Every input view, and the request, is a variable of a typed object type
// whose fields are the view's features (the request's fields). An
// expression reads driver_hourly.conv_rate and request.surge with their
// declared types, tests presence with has(driver_hourly.conv_rate), and
// may use CEL's optional syntax (driver_hourly.?conv_rate.orValue(0.0)).
//
// At evaluation time each object is a *Record. A field whose code is not
// zero is null: has() reports it unset, optional selection yields none, and
// reading it directly fails with an error that carries the code (the caller
// decides what codes mean; the online lookup passes its statuses).
package celenv

import (
	"errors"
	"fmt"
	"reflect"
	"sort"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
)

// Field is one field of an object.
type Field struct {
	Name string
	Type *cel.Type
}

// Object is a variable of the environment and its fields.
type Object struct {
	// Var is the variable's name in expressions (a view name, or
	// "request").
	Var    string
	Fields []Field
}

// TypeName is the CEL type name of the object bound to variable v.
func TypeName(v string) string { return "quiver.input." + v }

// New returns an environment that declares objects, with CEL's optional
// types and the strings, math, lists and encoders extensions.
func New(objects []Object) (*cel.Env, error) {
	base, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	p := &provider{Registry: base, structs: make(map[string]*structType)}
	opts := []cel.EnvOption{cel.OptionalTypes(), ext.Strings(), ext.Math(), ext.Lists(), ext.Encoders()}
	for _, o := range objects {
		name := TypeName(o.Var)
		st := &structType{fields: make(map[string]*types.FieldType, len(o.Fields))}
		for i, f := range o.Fields {
			st.names = append(st.names, f.Name)
			ft := fieldType(o.Var, i)
			ft.Type = f.Type
			st.fields[f.Name] = ft
		}
		sort.Strings(st.names)
		p.structs[name] = st
		opts = append(opts, cel.Variable(o.Var, cel.ObjectType(name)))
	}
	return cel.NewEnv(append([]cel.EnvOption{cel.CustomTypeProvider(p)}, opts...)...)
}

// Record is one row of an object's fields, in the order its Object
// declared them. Values[i] matters only where Codes[i] is zero. A Record
// is a CEL value, so that optional selection can take it as an operand.
type Record struct {
	Values []ref.Val
	Codes  []uint8
	// Miss is where a read of a null field reports itself.
	Miss  *Miss
	obj   *Object
	index map[string]int
	typ   *types.Type
}

// NewRecord returns a record of o's fields, all null with code 1, that
// reports null reads to miss.
func NewRecord(o Object, miss *Miss) *Record {
	r := &Record{Values: make([]ref.Val, len(o.Fields)), Codes: make([]uint8, len(o.Fields)), Miss: miss,
		obj: &o, index: make(map[string]int, len(o.Fields)), typ: types.NewObjectType(TypeName(o.Var))}
	for i, f := range o.Fields {
		r.index[f.Name] = i
		r.Codes[i] = 1
	}
	return r
}

// Set sets field i to v (present).
func (r *Record) Set(i int, v ref.Val) { r.Values[i], r.Codes[i] = v, 0 }

// SetNull makes field i null with code (which must not be zero).
func (r *Record) SetNull(i int, code uint8) { r.Values[i], r.Codes[i] = nil, code }

// field returns field i, or ErrNull (recorded in Miss) when it is null.
func (r *Record) field(i int) (ref.Val, error) {
	if code := r.Codes[i]; code != 0 {
		if r.Miss != nil && r.Miss.Code == 0 {
			*r.Miss = Miss{Code: code, Var: r.obj.Var, Field: r.obj.Fields[i].Name}
		}
		return nil, ErrNull
	}
	return r.Values[i], nil
}

// ConvertToNative implements ref.Val.
func (r *Record) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("%s cannot be converted to %v", r.obj.Var, t)
}

// ConvertToType implements ref.Val.
func (r *Record) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return r.typ
	}
	return types.NewErr("%s cannot be converted to %s", r.obj.Var, t.TypeName())
}

// Equal implements ref.Val: records are equal only to themselves.
func (r *Record) Equal(o ref.Val) ref.Val { return types.Bool(o == r) }

// Type implements ref.Val.
func (r *Record) Type() ref.Type { return r.typ }

// Value implements ref.Val; it is the record itself, which the field
// accessors take.
func (r *Record) Value() any { return r }

// IsSet implements traits.FieldTester.
func (r *Record) IsSet(field ref.Val) ref.Val {
	i, ok := r.lookup(field)
	if !ok {
		return types.NewErr("no such field %v", field)
	}
	return types.Bool(r.Codes[i] == 0)
}

// Get implements traits.Indexer.
func (r *Record) Get(field ref.Val) ref.Val {
	i, ok := r.lookup(field)
	if !ok {
		return types.NewErr("no such field %v", field)
	}
	v, err := r.field(i)
	if err != nil {
		return types.WrapErr(err)
	}
	return v
}

func (r *Record) lookup(field ref.Val) (int, bool) {
	s, ok := field.(types.String)
	if !ok {
		return 0, false
	}
	i, ok := r.index[string(s)]
	return i, ok
}

// Miss records the first null field an evaluation read directly.
type Miss struct {
	Code  uint8
	Var   string
	Field string
}

// Reset forgets the recorded read.
func (m *Miss) Reset() { *m = Miss{} }

// Hit reports whether a null field was read.
func (m *Miss) Hit() bool { return m.Code != 0 }

// ErrNull is the error of reading a null field without has() or optional
// syntax; the Record's Miss says which field.
var ErrNull = errors.New("quiver: null input")

type structType struct {
	names  []string
	fields map[string]*types.FieldType
}

// provider adds the objects' struct types to CEL's standard registry.
type provider struct {
	*types.Registry
	structs map[string]*structType
}

func (p *provider) FindStructType(name string) (*types.Type, bool) {
	if _, ok := p.structs[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Registry.FindStructType(name)
}

func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	if st, ok := p.structs[name]; ok {
		return st.names, true
	}
	return p.Registry.FindStructFieldNames(name)
}

func (p *provider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	if st, ok := p.structs[name]; ok {
		ft, ok := st.fields[field]
		return ft, ok
	}
	return p.Registry.FindStructFieldType(name, field)
}

func (p *provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := p.structs[name]; ok {
		return types.NewErr("%s cannot be constructed in an expression", name)
	}
	return p.Registry.NewValue(name, fields)
}

func fieldType(v string, i int) *types.FieldType {
	return &types.FieldType{
		IsSet: func(target any) bool {
			r, ok := target.(*Record)
			return ok && r.Codes[i] == 0
		},
		GetFrom: func(target any) (any, error) {
			r, ok := target.(*Record)
			if !ok {
				return nil, fmt.Errorf("%s: not an input record (%T)", v, target)
			}
			return r.field(i)
		},
	}
}
