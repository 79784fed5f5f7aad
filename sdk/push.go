package sdk

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	"google.golang.org/grpc/metadata"

	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
)

// Push sends rows of a push source, each a map from source field name to
// value, and returns how many the server applied: online, and durably to
// the offline log, before it answers. Every row names every field of the
// source's schema; values are Go integers (int, int32, int64, …), float32
// or float64, bool, string, []byte, time.Time, slices of those for list
// fields, and nil for null. Numbers convert to the field's type on the
// server as JSON numbers do. A refused push (codes.InvalidArgument, naming
// the column and row) applies nothing; a retried push that had succeeded
// counts twice in aggregations.
func (c *Client) Push(ctx context.Context, source string, rows []map[string]any) (int, error) {
	req, err := pushRequest(source, rows)
	if err != nil {
		return 0, err
	}
	if c.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	resp, err := c.api.Push(ctx, req)
	if err != nil {
		return 0, err
	}
	return int(resp.GetRows()), nil
}

// pushRequest turns rows into the typed columns of a push.
func pushRequest(source string, rows []map[string]any) (*servingv1.PushRequest, error) {
	req := &servingv1.PushRequest{Source: source, Columns: map[string]*servingv1.Values{}}
	seen := map[string]bool{}
	var names []string
	for _, row := range rows {
		for name := range row {
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	slices.Sort(names) // errors name the same column every time
	col := make([]any, len(rows))
	for _, name := range names {
		for i, row := range rows {
			v, ok := row[name]
			if !ok {
				return nil, fmt.Errorf("push %s: row %d has no %s (give nil for null)", source, i, name)
			}
			col[i] = v
		}
		vals, nulls, err := pushColumn(col)
		if err != nil {
			return nil, fmt.Errorf("push %s: column %s: %w", source, name, err)
		}
		req.Columns[name] = vals
		if nulls != nil {
			if req.Nulls == nil {
				req.Nulls = map[string]*servingv1.NullMask{}
			}
			req.Nulls[name] = &servingv1.NullMask{Null: nulls}
		}
	}
	return req, nil
}

// kind is what typed list a Go value goes to.
type kind int

const (
	kindNone kind = iota
	kindInt
	kindFloat32
	kindFloat64
	kindBool
	kindString
	kindBytes
	kindTime
	kindList
)

func kindOf(v any) kind {
	switch v.(type) {
	case float32:
		return kindFloat32
	case float64:
		return kindFloat64
	case bool:
		return kindBool
	case string:
		return kindString
	case []byte:
		return kindBytes
	case time.Time:
		return kindTime
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return kindInt
	case reflect.Slice, reflect.Array:
		return kindList
	}
	return kindNone
}

// pushColumn builds the typed column of a push's values: one typed list
// (numbers of mixed types as double_values), a zero value at each nil,
// whose row the mask marks null (nulls is nil when there are none).
func pushColumn(vals []any) (*servingv1.Values, []bool, error) {
	var nulls []bool
	k, first := kindNone, -1
	for i, v := range vals {
		if v == nil {
			if nulls == nil {
				nulls = make([]bool, len(vals))
			}
			nulls[i] = true
			continue
		}
		vk := kindOf(v)
		switch {
		case vk == kindNone:
			return nil, nil, fmt.Errorf("row %d: %T is not a push value", i, v)
		case k == kindNone:
			k, first = vk, i
		case vk == k:
		case isNumber(vk) && isNumber(k):
			k = kindFloat64
		default:
			return nil, nil, fmt.Errorf("row %d is %T, row %d is %T", first, vals[first], i, v)
		}
	}
	if k == kindNone {
		return &servingv1.Values{}, nulls, nil // all null, or no rows
	}
	out, err := typedColumn(k, vals)
	return out, nulls, err
}

func isNumber(k kind) bool { return k == kindInt || k == kindFloat32 || k == kindFloat64 }

// typedColumn puts vals, all of kind k or nil, in the typed list of k.
func typedColumn(k kind, vals []any) (*servingv1.Values, error) {
	out := &servingv1.Values{}
	for i, v := range vals {
		var err error
		switch k {
		case kindInt:
			var n int64
			if v != nil {
				n, err = toInt64(v)
			}
			out.Int64Values = append(out.Int64Values, n)
		case kindFloat32:
			f, _ := v.(float32) // nil: the zero placeholder
			out.FloatValues = append(out.FloatValues, f)
		case kindFloat64:
			var f float64
			if v != nil {
				f, err = toFloat64(v)
			}
			out.DoubleValues = append(out.DoubleValues, f)
		case kindBool:
			b, _ := v.(bool)
			out.BoolValues = append(out.BoolValues, b)
		case kindString:
			s, _ := v.(string)
			out.StringValues = append(out.StringValues, s)
		case kindBytes:
			b, _ := v.([]byte)
			out.BytesValues = append(out.BytesValues, b)
		case kindTime:
			var us int64
			if t, ok := v.(time.Time); ok {
				us = t.UnixMicro()
			}
			out.TimestampValues = append(out.TimestampValues, us)
		case kindList:
			l := &servingv1.Values{}
			if v != nil {
				l, err = listValues(v)
			}
			out.ListValues = append(out.ListValues, l)
		}
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", i, err)
		}
	}
	return out, nil
}

// listValues builds the Values of one row's list; lists hold no nulls.
func listValues(v any) (*servingv1.Values, error) {
	switch v.(type) {
	case []int32, []int64, []float32, []float64, []bool, []string, [][]byte:
		out, _ := servingv1.ValuesOf(v) // typed slices go in without a copy
		return out, nil
	}
	rv := reflect.ValueOf(v)
	elems := make([]any, rv.Len())
	for i := range elems {
		elems[i] = rv.Index(i).Interface()
	}
	out, nulls, err := pushColumn(elems)
	switch {
	case err != nil:
		return nil, fmt.Errorf("list: %w", err)
	case nulls != nil:
		return nil, fmt.Errorf("list element %d is nil; lists hold no nulls", slices.Index(nulls, true))
	case len(out.GetListValues()) > 0:
		return nil, fmt.Errorf("a list of lists is not a push value")
	}
	return out, nil
}

func toInt64(v any) (int64, error) {
	rv := reflect.ValueOf(v)
	if rv.CanInt() {
		return rv.Int(), nil
	}
	if u := rv.Uint(); u <= math.MaxInt64 {
		return int64(u), nil
	}
	return 0, fmt.Errorf("%v does not fit int64", v)
}

func toFloat64(v any) (float64, error) {
	switch x := v.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	n, err := toInt64(v)
	return float64(n), err
}
