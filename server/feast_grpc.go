package server

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/quiverdata/quiver/online"
	feastservingpb "github.com/quiverdata/quiver/proto/feast/serving"
	feasttypespb "github.com/quiverdata/quiver/proto/feast/types"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
)

// feastService is Feast's gRPC ServingService over a Serving, registered
// on the gRPC listener beside quiver.serving.v1.Serving, under the same
// interceptors (token, request timeout, metrics, panic recovery). It only
// converts: the lookup is feastLookup (feast.go).
type feastService struct {
	feastservingpb.UnimplementedServingServiceServer
	serving *Serving
}

var _ feastservingpb.ServingServiceServer = (*feastService)(nil)

// GetFeastServingInfo answers with Quiver's version.
func (f *feastService) GetFeastServingInfo(context.Context, *feastservingpb.GetFeastServingInfoRequest) (*feastservingpb.GetFeastServingInfoResponse, error) {
	return &feastservingpb.GetFeastServingInfoResponse{Version: f.serving.version}, nil
}

// GetOnlineFeatures implements feastservingpb.ServingServiceServer.
func (f *feastService) GetOnlineFeatures(ctx context.Context, req *feastservingpb.GetOnlineFeaturesRequest) (*feastservingpb.GetOnlineFeaturesResponse, error) {
	freq, err := feastRequestProto(req)
	if err != nil {
		return nil, grpcError(err)
	}
	ans, err := f.serving.feastLookup(ctx, freq)
	if err != nil {
		return nil, grpcError(err)
	}
	return feastProto(ans), nil
}

// feastRequestProto converts a Feast gRPC lookup. Its errors wrap
// online.ErrInvalidRequest and name the column and row.
func feastRequestProto(req *feastservingpb.GetOnlineFeaturesRequest) (*feastRequest, error) {
	ents, err := feastColumnsProto("entities", req.GetEntities())
	if err != nil {
		return nil, err
	}
	rc, err := feastColumnsProto("request_context", req.GetRequestContext())
	if err != nil {
		return nil, err
	}
	return &feastRequest{Entities: ents, RequestContext: rc, Features: req.GetFeatures().GetVal(),
		FeatureService: req.GetFeatureService(), FullFeatureNames: req.GetFullFeatureNames(),
		ViewMetadata: req.GetIncludeFeatureViewVersionMetadata()}, nil
}

func feastColumnsProto(what string, cols map[string]*feasttypespb.RepeatedValue) (map[string][]any, error) {
	if len(cols) == 0 {
		return nil, nil
	}
	out := make(map[string][]any, len(cols))
	for name, col := range cols {
		vals := make([]any, len(col.GetVal()))
		for i, v := range col.GetVal() {
			x, err := feastGoValue(v)
			if err != nil {
				return nil, fmt.Errorf("%w: %s.%s[%d]: %v", online.ErrInvalidRequest, what, registry.Clip(name), i, err)
			}
			vals[i] = x
		}
		out[name] = vals
	}
	return out, nil
}

// feastGoValue converts a Feast Value to the Go value the lookup takes:
// scalars as their Go type, unix_timestamp seconds as a UTC time, lists
// as []any; a Value that sets nothing, or null_val, is nil. A Value that
// sets a member of Feast's Value that Quiver does not declare (a map, a
// set, a UUID…) arrives as unknown fields, and is refused.
func feastGoValue(v *feasttypespb.Value) (any, error) {
	if v == nil {
		return nil, nil
	}
	if unknown := v.ProtoReflect().GetUnknown(); len(unknown) > 0 {
		num, _, _ := protowire.ConsumeTag(unknown)
		return nil, fmt.Errorf("sets Value field %d, a value type Quiver does not take (it takes the scalars, their lists and null)", num)
	}
	list := func(n int, at func(int) any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = at(i)
		}
		return out
	}
	switch x := v.GetVal().(type) {
	case nil, *feasttypespb.Value_NullVal:
		return nil, nil
	case *feasttypespb.Value_BytesVal:
		return x.BytesVal, nil
	case *feasttypespb.Value_StringVal:
		return x.StringVal, nil
	case *feasttypespb.Value_Int32Val:
		return x.Int32Val, nil
	case *feasttypespb.Value_Int64Val:
		return x.Int64Val, nil
	case *feasttypespb.Value_DoubleVal:
		return x.DoubleVal, nil
	case *feasttypespb.Value_FloatVal:
		return x.FloatVal, nil
	case *feasttypespb.Value_BoolVal:
		return x.BoolVal, nil
	case *feasttypespb.Value_UnixTimestampVal:
		return time.Unix(x.UnixTimestampVal, 0).UTC(), nil
	case *feasttypespb.Value_BytesListVal:
		l := x.BytesListVal.GetVal()
		return list(len(l), func(i int) any { return l[i] }), nil
	case *feasttypespb.Value_StringListVal:
		l := x.StringListVal.GetVal()
		return list(len(l), func(i int) any { return l[i] }), nil
	case *feasttypespb.Value_Int32ListVal:
		l := x.Int32ListVal.GetVal()
		return list(len(l), func(i int) any { return l[i] }), nil
	case *feasttypespb.Value_Int64ListVal:
		l := x.Int64ListVal.GetVal()
		return list(len(l), func(i int) any { return l[i] }), nil
	case *feasttypespb.Value_DoubleListVal:
		l := x.DoubleListVal.GetVal()
		return list(len(l), func(i int) any { return l[i] }), nil
	case *feasttypespb.Value_FloatListVal:
		l := x.FloatListVal.GetVal()
		return list(len(l), func(i int) any { return l[i] }), nil
	case *feasttypespb.Value_BoolListVal:
		l := x.BoolListVal.GetVal()
		return list(len(l), func(i int) any { return l[i] }), nil
	case *feasttypespb.Value_UnixTimestampListVal:
		l := x.UnixTimestampListVal.GetVal()
		return list(len(l), func(i int) any { return time.Unix(l[i], 0).UTC() }), nil
	}
	return nil, fmt.Errorf("unknown Value member %T", v.GetVal())
}

// feastProto writes an answer as Feast's gRPC response.
func feastProto(a *feastAnswer) *feastservingpb.GetOnlineFeaturesResponse {
	out := &feastservingpb.GetOnlineFeaturesResponse{
		Metadata: &feastservingpb.GetOnlineFeaturesResponseMetadata{FeatureNames: &feastservingpb.FeatureList{Val: a.Names}},
		Results:  make([]*feastservingpb.GetOnlineFeaturesResponse_FeatureVector, len(a.Cols)),
	}
	for _, v := range a.Views {
		out.Metadata.FeatureViewMetadata = append(out.Metadata.FeatureViewMetadata, &feastservingpb.FeatureViewMetadata{Name: v})
	}
	noTime := &timestamppb.Timestamp{} // Feast's "no event time": the epoch
	for j := range a.Cols {
		c := &a.Cols[j]
		fv := &feastservingpb.GetOnlineFeaturesResponse_FeatureVector{Values: make([]*feasttypespb.Value, a.Rows),
			Statuses: make([]feastservingpb.FieldStatus, a.Rows), EventTimestamps: make([]*timestamppb.Timestamp, a.Rows)}
		for i := range a.Rows {
			fv.Values[i] = feastValue(c.Type, c.value(i))
			fv.Statuses[i] = c.status(i)
			if t := c.eventTime(i); t.IsZero() {
				fv.EventTimestamps[i] = noTime
			} else {
				fv.EventTimestamps[i] = timestamppb.New(t)
			}
		}
		out.Results[j] = fv
	}
	return out
}

// feastValue is a value of type t as a Feast Value: each scalar in its
// member (timestamps as unix_timestamp seconds), lists in their *_list
// member, nil as a Value that sets nothing (Feast's null).
func feastValue(t registry.ValueType, v any) *feasttypespb.Value {
	switch x := v.(type) {
	case nil:
		return &feasttypespb.Value{}
	case int32:
		return &feasttypespb.Value{Val: &feasttypespb.Value_Int32Val{Int32Val: x}}
	case int64:
		return &feasttypespb.Value{Val: &feasttypespb.Value_Int64Val{Int64Val: x}}
	case float32:
		return &feasttypespb.Value{Val: &feasttypespb.Value_FloatVal{FloatVal: x}}
	case float64:
		return &feasttypespb.Value{Val: &feasttypespb.Value_DoubleVal{DoubleVal: x}}
	case bool:
		return &feasttypespb.Value{Val: &feasttypespb.Value_BoolVal{BoolVal: x}}
	case string:
		return &feasttypespb.Value{Val: &feasttypespb.Value_StringVal{StringVal: x}}
	case []byte:
		return &feasttypespb.Value{Val: &feasttypespb.Value_BytesVal{BytesVal: x}}
	case time.Time:
		return &feasttypespb.Value{Val: &feasttypespb.Value_UnixTimestampVal{UnixTimestampVal: x.Unix()}}
	case []int32:
		return &feasttypespb.Value{Val: &feasttypespb.Value_Int32ListVal{Int32ListVal: &feasttypespb.Int32List{Val: x}}}
	case []int64:
		return &feasttypespb.Value{Val: &feasttypespb.Value_Int64ListVal{Int64ListVal: &feasttypespb.Int64List{Val: x}}}
	case []float32:
		return &feasttypespb.Value{Val: &feasttypespb.Value_FloatListVal{FloatListVal: &feasttypespb.FloatList{Val: x}}}
	case []float64:
		return &feasttypespb.Value{Val: &feasttypespb.Value_DoubleListVal{DoubleListVal: &feasttypespb.DoubleList{Val: x}}}
	case []bool:
		return &feasttypespb.Value{Val: &feasttypespb.Value_BoolListVal{BoolListVal: &feasttypespb.BoolList{Val: x}}}
	case []string:
		return &feasttypespb.Value{Val: &feasttypespb.Value_StringListVal{StringListVal: &feasttypespb.StringList{Val: x}}}
	case [][]byte:
		return &feasttypespb.Value{Val: &feasttypespb.Value_BytesListVal{BytesListVal: &feasttypespb.BytesList{Val: x}}}
	case []time.Time:
		secs := make([]int64, len(x))
		for i, e := range x {
			secs[i] = e.Unix()
		}
		return &feasttypespb.Value{Val: &feasttypespb.Value_UnixTimestampListVal{UnixTimestampListVal: &feasttypespb.Int64List{Val: secs}}}
	case []any: // a list not in its typed form: make it so
		if c, err := value.Canon(t, x); err == nil {
			return feastValue(t, c)
		}
	}
	return &feasttypespb.Value{}
}
