package server

import (
	"context"
	"errors"
	"fmt"
	"runtime"
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
	// MaxPushRows is the most rows per push (default 10,000).
	MaxPushRows int
	// MaxConcurrentTrainingSets bounds the training sets Arrow Flight
	// builds at once; further requests wait (default the number of CPUs).
	MaxConcurrentTrainingSets int
}

func (l *Limits) ensureDefaults() {
	if l.MaxEntities <= 0 {
		l.MaxEntities = 1000
	}
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = 4 << 20
	}
	if l.MaxPushRows <= 0 {
		l.MaxPushRows = 10000
	}
	if l.MaxConcurrentTrainingSets <= 0 {
		l.MaxConcurrentTrainingSets = runtime.NumCPU()
	}
}

// Serving implements the gRPC service over an online lookup and, given a
// Pusher, pushes.
type Serving struct {
	servingv1.UnimplementedServingServer
	lookup   *online.Lookup
	snapshot func() *registry.Snapshot
	limits   Limits
	version  string
	// onEvalErrors, when set, is told of responses with on-demand
	// evaluation errors (the server counts them).
	onEvalErrors func(*online.Response)
	// pusher takes pushes when set; pushLocks serialize the pushes of a
	// source (striped by its name).
	pusher    Pusher
	pushLocks [pushLockStripes]chan struct{}
}

// NewServing returns the service. snapshot returns the registry version
// to answer with; it is called once per request.
func NewServing(lookup *online.Lookup, snapshot func() *registry.Snapshot, limits Limits, version string) *Serving {
	limits.ensureDefaults()
	s := &Serving{lookup: lookup, snapshot: snapshot, limits: limits, version: version}
	for i := range s.pushLocks {
		s.pushLocks[i] = make(chan struct{}, 1)
	}
	return s
}

// GetOnlineFeatures implements servingv1.ServingServer.
func (s *Serving) GetOnlineFeatures(ctx context.Context, req *servingv1.GetOnlineFeaturesRequest) (*servingv1.GetOnlineFeaturesResponse, error) {
	lreq, err := lookupRequest(req)
	if err != nil {
		return nil, err
	}
	snap := s.snapshot()
	resp, err := s.get(ctx, snap, lreq)
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

// lookupRequest converts a gRPC lookup to the core's request: entity
// columns of int64 or string values, request-context columns of the one
// typed list each sets. Its errors are InvalidArgument and name the column.
func lookupRequest(req *servingv1.GetOnlineFeaturesRequest) (*online.Request, error) {
	ents := make(map[string][]any, len(req.GetEntities()))
	for name, col := range req.GetEntities() {
		ints, strs := col.GetInt64Values(), col.GetStringValues()
		switch {
		case len(ints) > 0 && len(strs) > 0:
			return nil, status.Errorf(codes.InvalidArgument, "entity column %s has both int64 and string values", registry.Clip(name))
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
	reqCtx := make(map[string][]any, len(req.GetRequestContext()))
	for name, col := range req.GetRequestContext() {
		vals, err := valuesColumn(col)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "request_context.%s: %v", registry.Clip(name), err)
		}
		reqCtx[name] = vals
	}
	return &online.Request{Entities: ents, Features: req.GetFeatures(), FeatureService: req.GetFeatureService(),
		FullFeatureNames: req.GetFullFeatureNames(), RequestContext: reqCtx}, nil
}

// get checks limits and runs the lookup; shared by gRPC and HTTP.
func (s *Serving) get(ctx context.Context, snap *registry.Snapshot, req *online.Request) (*online.Response, error) {
	for name, col := range req.Entities {
		if len(col) > s.limits.MaxEntities {
			return nil, fmt.Errorf("%w: entity column %s has %d rows; the limit is %d per request", online.ErrInvalidRequest, name, len(col), s.limits.MaxEntities)
		}
	}
	resp, err := s.lookup.Get(ctx, snap.Defs, req)
	if err == nil && resp.EvaluationErrors > 0 && s.onEvalErrors != nil {
		s.onEvalErrors(resp)
	}
	return resp, err
}

// valuesColumn turns a request-context column into Go values: the one
// typed list it sets (timestamps as times, lists as typed slices).
func valuesColumn(v *servingv1.Values) ([]any, error) {
	var out []any
	set := 0
	add := func(n int, at func(i int) any) {
		if n == 0 {
			return
		}
		set++
		out = make([]any, n)
		for i := range out {
			out[i] = at(i)
		}
	}
	add(len(v.GetInt32Values()), func(i int) any { return v.GetInt32Values()[i] })
	add(len(v.GetInt64Values()), func(i int) any { return v.GetInt64Values()[i] })
	add(len(v.GetFloatValues()), func(i int) any { return v.GetFloatValues()[i] })
	add(len(v.GetDoubleValues()), func(i int) any { return v.GetDoubleValues()[i] })
	add(len(v.GetBoolValues()), func(i int) any { return v.GetBoolValues()[i] })
	add(len(v.GetStringValues()), func(i int) any { return v.GetStringValues()[i] })
	add(len(v.GetBytesValues()), func(i int) any { return v.GetBytesValues()[i] })
	add(len(v.GetTimestampValues()), func(i int) any { return time.UnixMicro(v.GetTimestampValues()[i]).UTC() })
	var listErr error
	add(len(v.GetListValues()), func(i int) any {
		l, err := valuesColumn(v.GetListValues()[i])
		if err != nil && listErr == nil {
			listErr = fmt.Errorf("list %d: %w", i, err)
		}
		if l == nil {
			l = []any{}
		}
		return l
	})
	switch {
	case listErr != nil:
		return nil, listErr
	case set > 1:
		return nil, errors.New("sets more than one typed list; set the one of the field's type")
	}
	return out, nil
}

// GetServerInfo implements servingv1.ServingServer.
func (s *Serving) GetServerInfo(ctx context.Context, _ *servingv1.GetServerInfoRequest) (*servingv1.GetServerInfoResponse, error) {
	snap := s.snapshot()
	return &servingv1.GetServerInfoResponse{Version: s.version, Project: snap.Project, RegistryVersion: snap.Version, RegistryHash: snap.Hash}, nil
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
	out.Values = columnProto(&fv.Values)
	return out
}

// columnProto hands a typed column to the proto without copying scalars.
func columnProto(c *online.Column) *servingv1.Values {
	if c.Type.List {
		v := &servingv1.Values{ListValues: make([]*servingv1.Values, len(c.Lists))}
		for i, l := range c.Lists {
			v.ListValues[i] = listProto(l)
		}
		return v
	}
	v := &servingv1.Values{Int32Values: c.Int32s, Int64Values: c.Int64s, FloatValues: c.Float32s, DoubleValues: c.Float64s,
		BoolValues: c.Bools, StringValues: c.Strings, BytesValues: c.Bytes}
	if c.Times != nil {
		v.TimestampValues = make([]int64, len(c.Times))
		for i, t := range c.Times {
			if !t.IsZero() {
				v.TimestampValues[i] = t.UnixMicro()
			}
		}
	}
	return v
}

// listProto converts one row's list (a typed slice, nil when absent).
func listProto(l any) *servingv1.Values {
	if v, ok := servingv1.ValuesOf(l); ok {
		return v
	}
	return &servingv1.Values{}
}
