package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/online"
	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/registry"
)

// Limits bound requests.
type Limits struct {
	// MaxEntities is the most entity rows per request (default 1,000).
	MaxEntities int
	// MaxRequestBytes bounds request bodies and messages (default 4 MiB).
	MaxRequestBytes int
}

func (l *Limits) ensureDefaults() {
	if l.MaxEntities <= 0 {
		l.MaxEntities = 1000
	}
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = 4 << 20
	}
}

// Serving implements the gRPC service over an online lookup.
type Serving struct {
	servingv1.UnimplementedServingServer
	lookup   *online.Lookup
	snapshot func() *registry.Snapshot
	limits   Limits
	version  string
}

// NewServing returns the service. snapshot returns the registry version
// to answer with; it is called once per request.
func NewServing(lookup *online.Lookup, snapshot func() *registry.Snapshot, limits Limits, version string) *Serving {
	limits.ensureDefaults()
	return &Serving{lookup: lookup, snapshot: snapshot, limits: limits, version: version}
}

// GetOnlineFeatures implements servingv1.ServingServer.
func (s *Serving) GetOnlineFeatures(ctx context.Context, req *servingv1.GetOnlineFeaturesRequest) (*servingv1.GetOnlineFeaturesResponse, error) {
	ents := make(map[string][]any, len(req.GetEntities()))
	for name, col := range req.GetEntities() {
		ints, strs := col.GetInt64Values(), col.GetStringValues()
		switch {
		case len(ints) > 0 && len(strs) > 0:
			return nil, status.Errorf(codes.InvalidArgument, "entity column %s has both int64 and string values", name)
		case len(strs) > 0:
			vals := make([]any, len(strs))
			for i, v := range strs {
				vals[i] = v
			}
			ents[name] = vals
		default:
			vals := make([]any, len(ints))
			for i, v := range ints {
				vals[i] = v
			}
			ents[name] = vals
		}
	}
	snap := s.snapshot()
	resp, err := s.get(ctx, snap, &online.Request{Entities: ents, Features: req.GetFeatures(),
		FeatureService: req.GetFeatureService(), FullFeatureNames: req.GetFullFeatureNames()})
	if err != nil {
		return nil, grpcError(err)
	}
	out := &servingv1.GetOnlineFeaturesResponse{Rows: int32(resp.Rows), RegistryVersion: snap.Version,
		Features: make([]*servingv1.FeatureVector, len(resp.Features))}
	for i := range resp.Features {
		out.Features[i] = vectorProto(&resp.Features[i])
	}
	return out, nil
}

// get checks limits and runs the lookup; shared by gRPC and HTTP.
func (s *Serving) get(ctx context.Context, snap *registry.Snapshot, req *online.Request) (*online.Response, error) {
	for name, col := range req.Entities {
		if len(col) > s.limits.MaxEntities {
			return nil, fmt.Errorf("%w: entity column %s has %d rows; the limit is %d per request", online.ErrInvalidRequest, name, len(col), s.limits.MaxEntities)
		}
	}
	return s.lookup.Get(ctx, snap.Defs, req)
}

// GetServerInfo implements servingv1.ServingServer.
func (s *Serving) GetServerInfo(ctx context.Context, _ *servingv1.GetServerInfoRequest) (*servingv1.GetServerInfoResponse, error) {
	snap := s.snapshot()
	return &servingv1.GetServerInfoResponse{Version: s.version, Project: snap.Project, RegistryVersion: snap.Version, RegistryHash: snap.Hash}, nil
}

// grpcError maps core errors to status codes.
func grpcError(err error) error {
	switch {
	case errors.Is(err, online.ErrInvalidRequest):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, online.ErrUnavailable):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// vectorProto converts a feature vector to its typed proto column.
func vectorProto(fv *online.FeatureVector) *servingv1.FeatureVector {
	out := &servingv1.FeatureVector{Name: fv.Name, Type: fv.Type.String(),
		Statuses: make([]servingv1.Status, len(fv.Statuses)), EventTimestamps: make([]int64, len(fv.EventTimes))}
	for i, st := range fv.Statuses {
		out.Statuses[i] = servingv1.Status(st)
		if !fv.EventTimes[i].IsZero() {
			out.EventTimestamps[i] = fv.EventTimes[i].UnixMicro()
		}
	}
	out.Values = valuesProto(fv.Type, fv.Values)
	return out
}

func valuesProto(t registry.ValueType, vals []any) *servingv1.Values {
	v := &servingv1.Values{}
	if t.List {
		et := registry.ValueType{Elem: t.Elem}
		v.ListValues = make([]*servingv1.Values, len(vals))
		for i, x := range vals {
			v.ListValues[i] = valuesProto(et, listAny(x))
		}
		return v
	}
	n := len(vals)
	switch t.Elem {
	case registry.Int32:
		v.Int32Values = make([]int32, n)
		for i, x := range vals {
			v.Int32Values[i], _ = x.(int32)
		}
	case registry.Int64:
		v.Int64Values = make([]int64, n)
		for i, x := range vals {
			v.Int64Values[i], _ = x.(int64)
		}
	case registry.Float32:
		v.FloatValues = make([]float32, n)
		for i, x := range vals {
			v.FloatValues[i], _ = x.(float32)
		}
	case registry.Float64:
		v.DoubleValues = make([]float64, n)
		for i, x := range vals {
			v.DoubleValues[i], _ = x.(float64)
		}
	case registry.Bool:
		v.BoolValues = make([]bool, n)
		for i, x := range vals {
			v.BoolValues[i], _ = x.(bool)
		}
	case registry.String:
		v.StringValues = make([]string, n)
		for i, x := range vals {
			v.StringValues[i], _ = x.(string)
		}
	case registry.Bytes:
		v.BytesValues = make([][]byte, n)
		for i, x := range vals {
			v.BytesValues[i], _ = x.([]byte)
		}
	case registry.Timestamp:
		v.TimestampValues = make([]int64, n)
		for i, x := range vals {
			if ts, ok := x.(time.Time); ok {
				v.TimestampValues[i] = ts.UnixMicro()
			}
		}
	}
	return v
}

// listAny turns a decoded list (a typed slice) into []any.
func listAny(x any) []any {
	switch l := x.(type) {
	case []float32:
		return toAny(l)
	case []float64:
		return toAny(l)
	case []int64:
		return toAny(l)
	case []int32:
		return toAny(l)
	case []string:
		return toAny(l)
	case []bool:
		return toAny(l)
	case [][]byte:
		return toAny(l)
	case []time.Time:
		return toAny(l)
	}
	return nil
}

func toAny[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
