package sdk

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/value"
	"github.com/quiverdata/quiver/wire"
)

// malformedServing answers every lookup with the response it holds.
type malformedServing struct {
	servingv1.UnimplementedServingServer
	resp *servingv1.GetOnlineFeaturesResponse
}

func (m *malformedServing) GetOnlineFeatures(context.Context, *servingv1.GetOnlineFeaturesRequest) (*servingv1.GetOnlineFeaturesResponse, error) {
	return m.resp, nil
}

// TestClientMalformedResponse: a response whose columns are shorter than
// its rows is an error naming the feature, never a panic.
func TestClientMalformedResponse(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := &malformedServing{}
	g := grpc.NewServer()
	servingv1.RegisterServingServer(g, m)
	go func() { _ = g.Serve(lis) }() // Serve returns when the test stops g
	t.Cleanup(g.Stop)
	c, err := Dial(lis.Addr().String(), Options{})
	require.NoError(t, err)
	defer c.Close()
	req := Request{Entities: map[string]any{"driver_id": []int64{1, 2}}, Features: []string{"v:f"}}
	present := []servingv1.Status{servingv1.Status_PRESENT, servingv1.Status_PRESENT}
	for _, tc := range []struct {
		resp *servingv1.GetOnlineFeaturesResponse
		want string
	}{
		{&servingv1.GetOnlineFeaturesResponse{Rows: 2, Features: []*servingv1.FeatureVector{{Name: "f", Type: "float64", Statuses: present,
			EventTimestamps: []int64{1}, Values: &servingv1.Values{DoubleValues: []float64{1, 2}}}}}, "feature f: 1 event timestamps for 2 rows"},
		{&servingv1.GetOnlineFeaturesResponse{Rows: 2, Features: []*servingv1.FeatureVector{{Name: "f", Type: "float64", Statuses: present[:1],
			EventTimestamps: []int64{1, 2}}}}, "feature f: 1 statuses for 2 rows"},
		{&servingv1.GetOnlineFeaturesResponse{Rows: -1}, "-1 rows"},
	} {
		m.resp = tc.resp
		_, err := c.OnlineFeatures(context.Background(), req)
		require.ErrorContains(t, err, "malformed response")
		require.ErrorContains(t, err, tc.want)
	}
	// Short or missing value columns read as absent values.
	m.resp = &servingv1.GetOnlineFeaturesResponse{Rows: 2, Features: []*servingv1.FeatureVector{
		{Name: "f", Type: "float64", Statuses: present, EventTimestamps: []int64{1, 2}, Values: &servingv1.Values{DoubleValues: []float64{1}}},
		{Name: "g", Type: "list<float32>", Statuses: present, EventTimestamps: []int64{1, 2}},
	}}
	f, err := c.OnlineFeatures(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, 1.0, f.Value("f", 0))
	require.Nil(t, f.Value("f", 1))
	require.Nil(t, f.Value("g", 0))
}

// FuzzFeatures: reading a lookup answer never panics on any message a
// server (or something posing as one) sends; what is read has its
// features once each in order, a status and an event time per row, and a
// value of the feature's Go type exactly where the status is PRESENT
// (nil where the column is short); every accessor agrees with Value.
func FuzzFeatures(f *testing.F) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixMicro()
	present, missing := servingv1.Status_PRESENT, servingv1.Status_NOT_FOUND
	for _, resp := range []*servingv1.GetOnlineFeaturesResponse{
		{Rows: 2, RegistryVersion: 3, Features: []*servingv1.FeatureVector{
			{Name: "stats:rate", Type: "float32", Statuses: []servingv1.Status{present, missing}, EventTimestamps: []int64{at, 0},
				Values: &servingv1.Values{FloatValues: []float32{0.5, 0}}},
			{Name: "stats:trips", Type: "int64", Statuses: []servingv1.Status{present, present}, EventTimestamps: []int64{at, math.MinInt64},
				Values: &servingv1.Values{Int64Values: []int64{7}}},
			{Name: "emb", Type: "list<float32>", Statuses: []servingv1.Status{present, present}, EventTimestamps: []int64{at, math.MaxInt64},
				Values: &servingv1.Values{ListValues: []*servingv1.Values{{FloatValues: []float32{1, 2}}, {}}}},
			{Name: "times", Type: "list<timestamp>", Statuses: []servingv1.Status{present, 99}, EventTimestamps: []int64{at, at},
				Values: &servingv1.Values{ListValues: []*servingv1.Values{{TimestampValues: []int64{time.Date(-249, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()}}}}},
			{Name: "at", Type: "timestamp", Statuses: []servingv1.Status{present, present}, EventTimestamps: []int64{at, at},
				Values: &servingv1.Values{TimestampValues: []int64{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()}, StringValues: []string{"x"}}},
		}},
		{Rows: 1, Features: []*servingv1.FeatureVector{{Name: "s", Type: "string", Statuses: []servingv1.Status{present}, EventTimestamps: []int64{at},
			Values: &servingv1.Values{StringValues: []string{"a"}}}}},
		{Rows: 1, Features: []*servingv1.FeatureVector{{Name: "s", Type: "string", Statuses: []servingv1.Status{present}}}},
		{Rows: 1, Features: []*servingv1.FeatureVector{{Name: "s", Type: "list<list<int32>>", Statuses: []servingv1.Status{present}, EventTimestamps: []int64{0}}}},
		{Rows: 1, Features: []*servingv1.FeatureVector{{Name: "s", Type: "bool", Statuses: []servingv1.Status{present}, EventTimestamps: []int64{0}},
			{Name: "s", Type: "bool", Statuses: []servingv1.Status{present}, EventTimestamps: []int64{0}}}},
		{Rows: -1}, {Rows: math.MaxInt32}, {},
	} {
		b, err := proto.Marshal(resp)
		require.NoError(f, err)
		f.Add(b)
	}
	goTypes := map[value.Scalar]string{value.Int32: "int32", value.Int64: "int64", value.Float32: "float32",
		value.Float64: "float64", value.Bool: "bool", value.String: "string", value.Bytes: "[]uint8", value.Timestamp: "time.Time"}
	f.Fuzz(func(t *testing.T, data []byte) {
		var resp servingv1.GetOnlineFeaturesResponse
		if proto.Unmarshal(data, &resp) != nil {
			return
		}
		out, err := features(&resp)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "malformed response: ") && !strings.HasPrefix(err.Error(), "feature ") {
				t.Fatalf("error: %v", err)
			}
			return
		}
		require.Equal(t, int(resp.GetRows()), out.Rows())
		require.Len(t, out.Names(), len(resp.GetFeatures()))
		for k, fv := range resp.GetFeatures() {
			name := out.Names()[k]
			require.Equal(t, fv.GetName(), name)
			typ, err := value.Parse(fv.GetType())
			require.NoError(t, err)
			want := goTypes[typ.Elem]
			if typ.List {
				want = "[]" + want
			}
			for i := -1; i <= out.Rows(); i++ {
				st, v := out.Status(name, i), out.Value(name, i)
				if i < 0 || i == out.Rows() {
					require.Equal(t, wire.NotFound, st)
					require.Nil(t, v)
					require.True(t, out.EventTime(name, i).IsZero())
					continue
				}
				require.Equal(t, wire.Status(fv.GetStatuses()[i]), st)
				if ts := fv.GetEventTimestamps()[i]; ts != 0 {
					require.Equal(t, ts, out.EventTime(name, i).UnixMicro())
					require.Equal(t, time.UTC, out.EventTime(name, i).Location())
				} else {
					require.True(t, out.EventTime(name, i).IsZero())
				}
				if st != wire.Present {
					require.Nil(t, v, "row %d of %s is %v", i, name, st)
				} else if v != nil {
					require.Equal(t, want, fmt.Sprintf("%T", v), "row %d of %s (%s)", i, name, fv.GetType())
				}
				f64, ok := out.Float64(name, i)
				require.Equal(t, v != nil && (typ == value.Type{Elem: value.Float32} || typ == value.Type{Elem: value.Float64}), ok)
				if x, is32 := v.(float32); is32 && !math.IsNaN(f64) {
					require.Equal(t, float64(x), f64, "row %d of %s", i, name)
				}
				_, ok = out.Int64(name, i)
				require.Equal(t, v != nil && (typ == value.Type{Elem: value.Int32} || typ == value.TypeInt64), ok)
				_, ok = out.String(name, i)
				require.Equal(t, v != nil && typ == value.TypeString, ok)
				_, ok = out.Float32s(name, i)
				require.Equal(t, v != nil && typ == value.Type{Elem: value.Float32, List: true}, ok)
			}
		}
	})
}

func TestFeaturesRefusesMalformedAnswers(t *testing.T) {
	vec := func(name string, statuses, times int) *servingv1.FeatureVector {
		return &servingv1.FeatureVector{Name: name, Type: "int64", Statuses: make([]servingv1.Status, statuses), EventTimestamps: make([]int64, times)}
	}
	for want, resp := range map[string]*servingv1.GetOnlineFeaturesResponse{
		"malformed response: -1 rows":                                  {Rows: -1},
		"malformed response: feature a: 1 statuses for 2 rows":         {Rows: 2, Features: []*servingv1.FeatureVector{vec("a", 1, 2)}},
		"malformed response: feature a: 1 event timestamps for 2 rows": {Rows: 2, Features: []*servingv1.FeatureVector{vec("a", 2, 1)}},
		"malformed response: feature a appears twice":                  {Rows: 1, Features: []*servingv1.FeatureVector{vec("a", 1, 1), vec("a", 1, 1)}},
	} {
		_, err := features(resp)
		require.EqualError(t, err, want)
	}
}

// TestNewFeatures: Features built in process read as the server's answer
// does, and a column of the wrong length or a repeated name is refused.
func TestNewFeatures(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	f, err := NewFeatures(2, []Column{
		{Name: "conv_rate", Values: []any{float32(0.5), nil}, Statuses: []wire.Status{wire.Present, wire.NotFound}, EventTimes: []time.Time{at, {}}},
		{Name: "trips", Values: []any{int64(3), nil}, Statuses: []wire.Status{wire.Present, wire.NullValue}, EventTimes: []time.Time{at, at}},
	})
	require.NoError(t, err)
	require.Equal(t, 2, f.Rows())
	require.Equal(t, []string{"conv_rate", "trips"}, f.Names())
	rate, ok := f.Float64("conv_rate", 0)
	require.True(t, ok)
	require.Equal(t, 0.5, rate)
	require.Equal(t, wire.NotFound, f.Status("conv_rate", 1))
	require.True(t, f.EventTime("conv_rate", 1).IsZero())
	require.Equal(t, wire.NullValue, f.Status("trips", 1))
	require.Equal(t, at, f.EventTime("trips", 1))
	n, ok := f.Int64("trips", 0)
	require.True(t, ok)
	require.Equal(t, int64(3), n)
	require.Equal(t, wire.NotFound, f.Status("nope", 0))

	_, err = NewFeatures(2, []Column{{Name: "a", Values: []any{1}, Statuses: make([]wire.Status, 2), EventTimes: make([]time.Time, 2)}})
	require.EqualError(t, err, "feature a: 1 values, 2 statuses and 2 event times for 2 rows")
	col := Column{Name: "a", Values: make([]any, 1), Statuses: make([]wire.Status, 1), EventTimes: make([]time.Time, 1)}
	_, err = NewFeatures(1, []Column{col, col})
	require.EqualError(t, err, "feature a appears twice")
	_, err = NewFeatures(-1, nil)
	require.EqualError(t, err, "-1 rows")
}

func TestRequestColumns(t *testing.T) {
	ents, ctx, err := Request{
		Entities:       map[string]any{"driver_id": []int64{1, 2}, "rider": []string{"a", "b"}},
		RequestContext: map[string]any{"surge": []float64{1.5, 2}, "tags": [][]string{{"x"}, nil}},
	}.Columns()
	require.NoError(t, err)
	require.Equal(t, map[string][]any{"driver_id": {int64(1), int64(2)}, "rider": {"a", "b"}}, ents)
	require.Equal(t, map[string][]any{"surge": {1.5, 2.0}, "tags": {[]string{"x"}, []string(nil)}}, ctx)

	_, _, err = Request{Entities: map[string]any{"driver_id": []int32{1}}}.Columns()
	require.EqualError(t, err, "entity column driver_id is []int32; give []int64 or []string")
	_, _, err = Request{Entities: map[string]any{"driver_id": []int64{1}}, RequestContext: map[string]any{"surge": 1.5}}.Columns()
	require.EqualError(t, err, "request context surge: float64 is not a column")
}
