package sdk

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/quiverdata/quiver/internal/text"
	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/value"
	"github.com/quiverdata/quiver/wire"
)

// Request names entities and features. Entities holds one column per join
// key: []int64 or []string, all of the same length.
//
// RequestContext holds the request fields of the requested on-demand
// views, one column each, as long as the entity columns: []float64,
// []float32, []int64, []int32, []bool, []string, [][]byte, []time.Time, or
// for list fields a slice of those ([][]float32, ...).
type Request struct {
	Entities         map[string]any
	Features         []string
	FeatureService   string
	FullFeatureNames bool
	RequestContext   map[string]any
}

// Columns returns the request's entity and request-context columns as Go
// values row by row, the form an in-process lookup (package
// sdk/embedded) takes. An entity column that is not []int64 or []string,
// or a context value that is not a column, is an error naming it.
func (r Request) Columns() (entities, context map[string][]any, err error) {
	entities = make(map[string][]any, len(r.Entities))
	for name, col := range r.Entities {
		switch col.(type) {
		case []int64, []string:
		default:
			return nil, nil, fmt.Errorf("entity column %s is %T; give []int64 or []string", name, col)
		}
		if entities[name], err = contextColumn(col); err != nil {
			return nil, nil, fmt.Errorf("entity column %s: %w", name, err)
		}
	}
	context = make(map[string][]any, len(r.RequestContext))
	for name, col := range r.RequestContext {
		if context[name], err = contextColumn(col); err != nil {
			return nil, nil, fmt.Errorf("request context %s: %w", name, err)
		}
	}
	return entities, context, nil
}

// contextValues converts a request-context column to its proto column.
func contextValues(col any) (*servingv1.Values, error) {
	if v, ok := servingv1.ValuesOf(col); ok {
		return v, nil
	}
	// A column of lists: one Values per row.
	rows, err := contextColumn(col)
	if err != nil {
		return nil, err
	}
	v := &servingv1.Values{}
	for i, row := range rows {
		l, err := contextValues(row)
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", i, err)
		}
		v.ListValues = append(v.ListValues, l)
	}
	return v, nil
}

// contextColumn converts a request-context column to Go values per row.
func contextColumn(col any) ([]any, error) {
	rv := reflect.ValueOf(col)
	if rv.Kind() != reflect.Slice {
		return nil, fmt.Errorf("%T is not a column", col)
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, nil
}

// Features is a lookup's result, columnar: feature by name, row by index.
type Features struct {
	rows    int
	names   []string
	vectors map[string]*vector
}

type vector struct {
	values   []any
	statuses []wire.Status
	times    []time.Time
}

// Column is one feature of a lookup's result: per entity row a value (nil
// unless the status is wire.Present), a status and an event time (zero
// when not found).
type Column struct {
	Name       string
	Values     []any
	Statuses   []wire.Status
	EventTimes []time.Time
}

// NewFeatures returns the result of a lookup answered without the gRPC
// client (package sdk/embedded looks up in process): rows entity rows and
// the columns in request order, each with a value, a status and an event
// time per row and a name of its own. Features holds the slices given.
func NewFeatures(rows int, cols []Column) (*Features, error) {
	if rows < 0 {
		return nil, fmt.Errorf("%d rows", rows)
	}
	out := &Features{rows: rows, vectors: make(map[string]*vector, len(cols))}
	for _, c := range cols {
		if len(c.Values) != rows || len(c.Statuses) != rows || len(c.EventTimes) != rows {
			return nil, fmt.Errorf("feature %s: %d values, %d statuses and %d event times for %d rows",
				text.Clip(c.Name), len(c.Values), len(c.Statuses), len(c.EventTimes), rows)
		}
		if out.vectors[c.Name] != nil {
			return nil, fmt.Errorf("feature %s appears twice", text.Clip(c.Name))
		}
		out.names = append(out.names, c.Name)
		out.vectors[c.Name] = &vector{values: c.Values, statuses: c.Statuses, times: c.EventTimes}
	}
	return out, nil
}

// Rows is the number of entity rows.
func (f *Features) Rows() int { return f.rows }

// Names lists the features in request order.
func (f *Features) Names() []string { return f.names }

// Status returns the status of a feature's value for entity row i.
func (f *Features) Status(name string, i int) wire.Status {
	v := f.vectors[name]
	if v == nil || i < 0 || i >= len(v.statuses) {
		return wire.NotFound
	}
	return v.statuses[i]
}

// EventTime returns when a value was produced (zero when not found).
func (f *Features) EventTime(name string, i int) time.Time {
	v := f.vectors[name]
	if v == nil || i < 0 || i >= len(v.times) {
		return time.Time{}
	}
	return v.times[i]
}

// Value returns a feature's value for entity row i, nil unless PRESENT.
func (f *Features) Value(name string, i int) any {
	v := f.vectors[name]
	if v == nil || i < 0 || i >= len(v.values) {
		return nil
	}
	return v.values[i]
}

// Float64 returns a float feature's value as float64 and whether it is
// present.
func (f *Features) Float64(name string, i int) (float64, bool) {
	switch x := f.Value(name, i).(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// Int64 returns an integer feature's value and whether it is present.
func (f *Features) Int64(name string, i int) (int64, bool) {
	switch x := f.Value(name, i).(type) {
	case int32:
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

// String returns a string feature's value and whether it is present.
func (f *Features) String(name string, i int) (string, bool) {
	s, ok := f.Value(name, i).(string)
	return s, ok
}

// Float32s returns a list<float32> feature's value (an embedding).
func (f *Features) Float32s(name string, i int) ([]float32, bool) {
	l, ok := f.Value(name, i).([]float32)
	return l, ok
}

// Client looks features up over gRPC.
type Client struct {
	conn  *grpc.ClientConn
	api   servingv1.ServingClient
	token string
}

// Options configure a Client.
type Options struct {
	// Token is sent as a bearer token when set.
	Token string
	// DialOptions replace the default (plaintext) transport options.
	DialOptions []grpc.DialOption
}

// Dial returns a client of the server at addr (host:port).
func Dial(addr string, opts Options) (*Client, error) {
	dial := opts.DialOptions
	if len(dial) == 0 {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(addr, dial...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &Client{conn: conn, api: servingv1.NewServingClient(conn), token: opts.Token}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// OnlineFeatures looks features up.
func (c *Client) OnlineFeatures(ctx context.Context, req Request) (*Features, error) {
	pr := &servingv1.GetOnlineFeaturesRequest{Entities: map[string]*servingv1.EntityColumn{},
		Features: req.Features, FeatureService: req.FeatureService, FullFeatureNames: req.FullFeatureNames}
	for name, col := range req.Entities {
		switch x := col.(type) {
		case []int64:
			pr.Entities[name] = &servingv1.EntityColumn{Int64Values: x}
		case []string:
			pr.Entities[name] = &servingv1.EntityColumn{StringValues: x}
		default:
			return nil, fmt.Errorf("entity column %s is %T; give []int64 or []string", name, col)
		}
	}
	for name, col := range req.RequestContext {
		v, err := contextValues(col)
		if err != nil {
			return nil, fmt.Errorf("request context %s: %w", name, err)
		}
		if pr.RequestContext == nil {
			pr.RequestContext = map[string]*servingv1.Values{}
		}
		pr.RequestContext[name] = v
	}
	if c.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
	}
	resp, err := c.api.GetOnlineFeatures(ctx, pr)
	if err != nil {
		return nil, err
	}
	return features(resp)
}

// features reads the server's answer, checking its shape: a status and an
// event time per row for every feature.
func features(resp *servingv1.GetOnlineFeaturesResponse) (*Features, error) {
	if resp.GetRows() < 0 {
		return nil, fmt.Errorf("malformed response: %d rows", resp.Rows)
	}
	out := &Features{rows: int(resp.GetRows()), vectors: map[string]*vector{}}
	for _, fv := range resp.GetFeatures() {
		t, err := value.Parse(fv.Type)
		if err != nil {
			return nil, fmt.Errorf("feature %s: %w", text.Clip(fv.Name), err)
		}
		if err := checkVector(fv, out.rows); err != nil {
			return nil, fmt.Errorf("malformed response: feature %s: %w", text.Clip(fv.Name), err)
		}
		if out.vectors[fv.Name] != nil {
			return nil, fmt.Errorf("malformed response: feature %s appears twice", text.Clip(fv.Name))
		}
		v := &vector{values: make([]any, len(fv.Statuses)), statuses: make([]wire.Status, len(fv.Statuses)), times: make([]time.Time, len(fv.Statuses))}
		for i, st := range fv.Statuses {
			v.statuses[i] = wire.Status(st)
			if ts := fv.EventTimestamps[i]; ts != 0 {
				v.times[i] = time.UnixMicro(ts).UTC()
			}
			if st == servingv1.Status_PRESENT {
				v.values[i] = valueAt(t, fv.Values, i)
			}
		}
		out.names = append(out.names, fv.Name)
		out.vectors[fv.Name] = v
	}
	return out, nil
}

// checkVector checks that a feature vector of the server's answer holds a
// status and an event time per row.
func checkVector(fv *servingv1.FeatureVector, rows int) error {
	if n := len(fv.GetStatuses()); n != rows {
		return fmt.Errorf("%d statuses for %d rows", n, rows)
	}
	if n := len(fv.GetEventTimestamps()); n != rows {
		return fmt.Errorf("%d event timestamps for %d rows", n, rows)
	}
	return nil
}

// valueAt reads row i of a typed column (nil where the column is short).
func valueAt(t value.Type, v *servingv1.Values, i int) any {
	if t.List {
		lists := v.GetListValues()
		if i >= len(lists) {
			return nil
		}
		l := lists[i]
		switch t.Elem {
		case value.Int32:
			return l.GetInt32Values()
		case value.Int64:
			return l.GetInt64Values()
		case value.Float32:
			return l.GetFloatValues()
		case value.Float64:
			return l.GetDoubleValues()
		case value.Bool:
			return l.GetBoolValues()
		case value.String:
			return l.GetStringValues()
		case value.Bytes:
			return l.GetBytesValues()
		case value.Timestamp:
			out := make([]time.Time, len(l.GetTimestampValues()))
			for j, us := range l.GetTimestampValues() {
				out[j] = time.UnixMicro(us).UTC()
			}
			return out
		}
		return nil
	}
	switch t.Elem {
	case value.Int32:
		return at(v.GetInt32Values(), i)
	case value.Int64:
		return at(v.GetInt64Values(), i)
	case value.Float32:
		return at(v.GetFloatValues(), i)
	case value.Float64:
		return at(v.GetDoubleValues(), i)
	case value.Bool:
		return at(v.GetBoolValues(), i)
	case value.String:
		return at(v.GetStringValues(), i)
	case value.Bytes:
		return at(v.GetBytesValues(), i)
	case value.Timestamp:
		if us, ok := at(v.GetTimestampValues(), i).(int64); ok {
			return time.UnixMicro(us).UTC()
		}
	}
	return nil
}

func at[T any](s []T, i int) any {
	if i < len(s) {
		return s[i]
	}
	return nil
}
