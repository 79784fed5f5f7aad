package server

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/quiverdata/quiver/materialize/stream"
	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
)

// Pusher applies pushed rows of push sources online and to the offline
// log; *stream.Applier is one. Errors wrapping stream.ErrInvalidPush
// refuse a push whole. The server calls it with one push per source at a
// time, as the Applier requires of a source partition.
type Pusher interface {
	// PushJSON applies rows that are JSON objects, one per row.
	PushJSON(ctx context.Context, source string, rows [][]byte) (int, error)
	// PushRows applies typed rows: one value per field of the source's
	// schema, in schema order.
	PushRows(ctx context.Context, source string, rows [][]any) (int, error)
	// Decoder returns a stream source's decoder; its Fields are the
	// schema that PushRows takes values in.
	Decoder(source string) (*stream.Decoder, error)
}

var _ Pusher = (*stream.Applier)(nil)

// errNoPusher answers pushes to a server that was given no Pusher.
var errNoPusher = errors.New("quiver: this server takes no pushes: it was built without a Pusher (quiver serve and quiver dev have one)")

// pushLockStripes is how many locks pushes of different sources spread
// over.
const pushLockStripes = 16

// SetPusher lets the service take pushes (gRPC Push, HTTP POST /v1/push)
// through p. Call it before serving; without it pushes are refused as
// unimplemented.
func (s *Serving) SetPusher(p Pusher) { s.pusher = p }

// Push implements servingv1.ServingServer.
func (s *Serving) Push(ctx context.Context, req *servingv1.PushRequest) (*servingv1.PushResponse, error) {
	if s.pusher == nil {
		return nil, grpcError(errNoPusher)
	}
	source := req.GetSource()
	if source == "" {
		return nil, grpcError(fmt.Errorf("%w: source is required", stream.ErrInvalidPush))
	}
	d, err := s.pusher.Decoder(source)
	if err != nil {
		return nil, grpcError(fmt.Errorf("%w: %v", stream.ErrInvalidPush, err))
	}
	rows, err := pushColumns(source, d.Fields(), req.GetColumns(), req.GetNulls(), s.limits.MaxPushRows)
	if err != nil {
		return nil, grpcError(fmt.Errorf("%w: %v", stream.ErrInvalidPush, err))
	}
	n, err := s.push(ctx, source, func(ctx context.Context) (int, error) {
		return s.pusher.PushRows(ctx, source, rows)
	})
	if err != nil {
		return nil, grpcError(err)
	}
	return &servingv1.PushResponse{Rows: int64(n)}, nil
}

// push runs one push of a source, after the pushes of that source before
// it. Once it has started it runs to completion even when the client goes
// away, so that the online store and the offline log do not part.
func (s *Serving) push(ctx context.Context, source string, apply func(context.Context) (int, error)) (int, error) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(source)) // a hash.Hash never fails to write
	lock := s.pushLocks[h.Sum32()%pushLockStripes]
	select {
	case lock <- struct{}{}:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	defer func() { <-lock }()
	return apply(context.WithoutCancel(ctx))
}

// checkPushRows enforces the row limit of a push.
func (s *Serving) checkPushRows(n int) error {
	if n > s.limits.MaxPushRows {
		return fmt.Errorf("%w: %d rows; the limit is %d per push", stream.ErrInvalidPush, n, s.limits.MaxPushRows)
	}
	return nil
}

// pushColumns turns the typed columns of a push into rows of values, one
// per field in schema order, as stream.Decoder.Check takes them. Every
// field needs its column; all columns have the same length, at most maxRows.
func pushColumns(source string, fields []*registry.Field, cols map[string]*servingv1.Values, nulls map[string]*servingv1.NullMask, maxRows int) ([][]any, error) {
	names := make([]string, len(fields))
	known := make(map[string]bool, len(fields))
	for i, f := range fields {
		names[i] = f.Name
		known[f.Name] = true
	}
	for _, name := range sortedKeys(cols) {
		if !known[name] {
			return nil, fmt.Errorf("unknown column %q: source %s has %s", name, source, strings.Join(names, ", "))
		}
	}
	for _, name := range sortedKeys(nulls) {
		if !known[name] {
			return nil, fmt.Errorf("nulls name unknown column %q: source %s has %s", name, source, strings.Join(names, ", "))
		}
	}

	readers := make([]func(int) (any, error), len(fields))
	masks := make([][]bool, len(fields))
	n, first := -1, ""
	for j, f := range fields {
		col, ok := cols[f.Name]
		if !ok || col == nil {
			return nil, fmt.Errorf("missing column %s (%s)", f.Name, f.Type)
		}
		read, length, err := columnReader(f.Type, col)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", f.Name, err)
		}
		mask := nulls[f.Name].GetNull()
		switch {
		case read == nil && mask != nil:
			length = len(mask) // a column of nulls only
		case mask != nil && len(mask) != length:
			return nil, fmt.Errorf("column %s: nulls has %d entries for %d rows", f.Name, len(mask), length)
		}
		if n < 0 {
			n, first = length, f.Name
		} else if length != n {
			return nil, fmt.Errorf("column %s has %d rows, column %s has %d: all columns have the same length", f.Name, length, first, n)
		}
		if n > maxRows {
			return nil, fmt.Errorf("%d rows; the limit is %d per push", n, maxRows)
		}
		readers[j], masks[j] = read, mask
	}
	if n <= 0 {
		return nil, nil
	}

	rows := make([][]any, n)
	values := make([]any, n*len(fields))
	for i := range rows {
		rows[i] = values[i*len(fields) : (i+1)*len(fields) : (i+1)*len(fields)]
	}
	for j, f := range fields {
		read, mask := readers[j], masks[j]
		for i := range n {
			if mask != nil && mask[i] {
				continue // nil
			}
			if read == nil {
				return nil, fmt.Errorf("column %s row %d: not null, but the column holds no values", f.Name, i)
			}
			v, err := read(i)
			if err != nil {
				return nil, fmt.Errorf("column %s row %d: %w", f.Name, i, err)
			}
			rows[i][j] = v
		}
	}
	return rows, nil
}

// columnReader returns how to read row i of a column of type t, and how
// many rows the column holds; read is nil when it sets no typed list.
func columnReader(t registry.ValueType, v *servingv1.Values) (read func(int) (any, error), n int, err error) {
	if !t.List {
		return scalarReader(t.Elem, v)
	}
	set, err := typedList(v)
	switch {
	case err != nil:
		return nil, 0, err
	case set == "":
		return nil, 0, nil
	case set != "list_values":
		return nil, 0, fmt.Errorf("want list_values (%s), got %s", t, set)
	}
	lists := v.GetListValues()
	return func(i int) (any, error) {
		read, m, err := scalarReader(t.Elem, lists[i])
		if err != nil {
			return nil, err
		}
		out := make([]any, m)
		for k := range out {
			if out[k], err = read(k); err != nil {
				return nil, fmt.Errorf("element %d: %w", k, err)
			}
		}
		return out, nil
	}, len(lists), nil
}

// scalarReader returns how to read value i of v as scalar type e,
// converting numbers as JSON numbers convert, and how many values v holds.
func scalarReader(e registry.Scalar, v *servingv1.Values) (read func(int) (any, error), n int, err error) {
	set, err := typedList(v)
	if err != nil || set == "" {
		return nil, 0, err
	}
	// Numbers convert as value.FromInt and value.FromFloat say (an int32
	// or a float32 out of range is an error); integers become floats, not
	// floats integers.
	switch set {
	case "int32_values":
		if xs := v.GetInt32Values(); e.Numeric() {
			return func(i int) (any, error) { return value.FromInt(e, int64(xs[i])) }, len(xs), nil
		}
	case "int64_values":
		if xs := v.GetInt64Values(); e.Numeric() {
			return func(i int) (any, error) { return value.FromInt(e, xs[i]) }, len(xs), nil
		}
	case "float_values":
		if xs := v.GetFloatValues(); e == registry.Float32 || e == registry.Float64 {
			return func(i int) (any, error) { return value.FromFloat(e, float64(xs[i])) }, len(xs), nil
		}
	case "double_values":
		if xs := v.GetDoubleValues(); e == registry.Float32 || e == registry.Float64 {
			return func(i int) (any, error) { return value.FromFloat(e, xs[i]) }, len(xs), nil
		}
	case "bool_values":
		if xs := v.GetBoolValues(); e == registry.Bool {
			return func(i int) (any, error) { return xs[i], nil }, len(xs), nil
		}
	case "string_values":
		if xs := v.GetStringValues(); e == registry.String {
			return func(i int) (any, error) { return xs[i], nil }, len(xs), nil
		}
	case "bytes_values":
		if xs := v.GetBytesValues(); e == registry.Bytes {
			return func(i int) (any, error) { return xs[i], nil }, len(xs), nil
		}
	case "timestamp_values":
		if xs := v.GetTimestampValues(); e == registry.Timestamp {
			return func(i int) (any, error) { return time.UnixMicro(xs[i]).UTC(), nil }, len(xs), nil
		}
	}
	return nil, 0, fmt.Errorf("want %s (%s), got %s", wantList(e), e, set)
}

// wantList names the typed lists a scalar type is read from.
func wantList(e registry.Scalar) string {
	switch e {
	case registry.Int32, registry.Int64:
		return "int32_values or int64_values"
	case registry.Float32, registry.Float64:
		return "float_values or double_values"
	case registry.Bool:
		return "bool_values"
	case registry.String:
		return "string_values"
	case registry.Bytes:
		return "bytes_values"
	case registry.Timestamp:
		return "timestamp_values"
	}
	return "a typed list"
}

// typedList names the one typed list v sets ("" for none).
func typedList(v *servingv1.Values) (string, error) {
	var set []string
	for _, l := range []struct {
		name string
		n    int
	}{
		{"int32_values", len(v.GetInt32Values())}, {"int64_values", len(v.GetInt64Values())},
		{"float_values", len(v.GetFloatValues())}, {"double_values", len(v.GetDoubleValues())},
		{"bool_values", len(v.GetBoolValues())}, {"string_values", len(v.GetStringValues())},
		{"bytes_values", len(v.GetBytesValues())}, {"timestamp_values", len(v.GetTimestampValues())},
		{"list_values", len(v.GetListValues())},
	} {
		if l.n > 0 {
			set = append(set, l.name)
		}
	}
	switch len(set) {
	case 0:
		return "", nil
	case 1:
		return set[0], nil
	}
	return "", fmt.Errorf("sets %s; set the one typed list of the field's type", strings.Join(set, " and "))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
