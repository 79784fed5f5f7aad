package server

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
)

// protoValues is the canonical typed list of a column of Go values, as
// the gRPC conversions read them back: one typed list by the values'
// type, lists as list_values. ok is false for values of mixed types.
func protoValues(vals []any) (v *servingv1.Values, ok bool) {
	v = &servingv1.Values{}
	kind := ""
	for _, x := range vals {
		k := fmt.Sprintf("%T", x)
		if kind != "" && k != kind {
			return nil, false
		}
		kind = k
		switch x := x.(type) {
		case int32:
			v.Int32Values = append(v.Int32Values, x)
		case int64:
			v.Int64Values = append(v.Int64Values, x)
		case float32:
			v.FloatValues = append(v.FloatValues, x)
		case float64:
			v.DoubleValues = append(v.DoubleValues, x)
		case bool:
			v.BoolValues = append(v.BoolValues, x)
		case string:
			v.StringValues = append(v.StringValues, x)
		case []byte:
			v.BytesValues = append(v.BytesValues, x)
		case time.Time:
			v.TimestampValues = append(v.TimestampValues, x.UnixMicro())
		case []any:
			l, ok := protoValues(x)
			if !ok {
				return nil, false
			}
			v.ListValues = append(v.ListValues, l)
		default:
			return nil, false
		}
	}
	return v, true
}

func lookupSeeds() []*servingv1.GetOnlineFeaturesRequest {
	return []*servingv1.GetOnlineFeaturesRequest{
		{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1, 2, math.MinInt64}}}, Features: []string{"stats:rate"}},
		{Entities: map[string]*servingv1.EntityColumn{"rider_id": {StringValues: []string{"a", ""}}}, FeatureService: "svc", FullFeatureNames: true},
		{Entities: map[string]*servingv1.EntityColumn{"k": {Int64Values: []int64{1}, StringValues: []string{"x"}}, "": {}}},
		{Entities: map[string]*servingv1.EntityColumn{"driver_id": {Int64Values: []int64{1}}}, Features: []string{"scores:*"},
			RequestContext: map[string]*servingv1.Values{
				"surge": {DoubleValues: []float64{2, math.NaN(), math.Inf(1)}},
				"tags":  {ListValues: []*servingv1.Values{{StringValues: []string{"vip"}}, {}, {StringValues: []string{"x"}}}},
				"at": {TimestampValues: []int64{time.Date(-249, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro(),
					time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro(), math.MaxInt64}},
				"n":    {Int32Values: []int32{math.MinInt32}},
				"f":    {FloatValues: []float32{-0}},
				"ok":   {BoolValues: []bool{true}},
				"blob": {BytesValues: [][]byte{{0xff}, nil}},
			}},
		{RequestContext: map[string]*servingv1.Values{"surge": {DoubleValues: []float64{1}, StringValues: []string{"x"}}}},
		{RequestContext: map[string]*servingv1.Values{"deep": {ListValues: []*servingv1.Values{{ListValues: []*servingv1.Values{{Int64Values: []int64{1}, BoolValues: []bool{true}}}}}}}},
		{RequestContext: map[string]*servingv1.Values{strings.Repeat("n", 1<<12): {ListValues: []*servingv1.Values{{}, {Int32Values: []int32{1}, Int64Values: []int64{1}}}}}},
	}
}

// FuzzLookupRequest: the conversion of a gRPC lookup (entity columns,
// request context) never panics on any message; its errors are
// InvalidArgument and name the column; what it accepts keeps every entity
// value in order with its type, and its request context converts back to
// the same typed lists.
func FuzzLookupRequest(f *testing.F) {
	for _, req := range lookupSeeds() {
		b, err := proto.Marshal(req)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req servingv1.GetOnlineFeaturesRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		got, err := lookupRequest(&req)
		if err != nil {
			st, _ := status.FromError(err)
			require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
			if !strings.HasPrefix(st.Message(), "entity column ") && !strings.HasPrefix(st.Message(), "request_context.") {
				t.Fatalf("error names no column: %v", err)
			}
			return
		}
		require.Equal(t, req.GetFeatures(), got.Features)
		require.Equal(t, req.GetFeatureService(), got.FeatureService)
		require.Len(t, got.Entities, len(req.GetEntities()))
		for name, col := range req.GetEntities() {
			vals := got.Entities[name]
			if len(col.GetStringValues()) > 0 {
				require.Len(t, vals, len(col.GetStringValues()))
				for i, v := range col.GetStringValues() {
					require.Equal(t, v, vals[i])
				}
				continue
			}
			require.Len(t, vals, len(col.GetInt64Values()))
			for i, v := range col.GetInt64Values() {
				require.Equal(t, v, vals[i])
			}
		}
		require.Len(t, got.RequestContext, len(req.GetRequestContext()))
		for name, vals := range got.RequestContext {
			back, ok := protoValues(vals)
			if !ok {
				t.Fatalf("request_context.%s: values of mixed types %v", name, vals)
			}
			again, err := valuesColumn(back)
			require.NoError(t, err, "request_context.%s read back", name)
			require.Equal(t, fmt.Sprintf("%#v", vals), fmt.Sprintf("%#v", again), "request_context.%s", name)
		}
	})
}
