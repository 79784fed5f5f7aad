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

	"github.com/quiverdata/quiver/examples/quickstart"
	"github.com/quiverdata/quiver/materialize"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	servingv1 "github.com/quiverdata/quiver/proto/quiver/serving/v1"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/server"
)

// quickstartRepo scaffolds, applies and materializes the quickstart.
func quickstartRepo(t *testing.T) (*registry.Repo, *registry.Snapshot) {
	dir := t.TempDir()
	require.NoError(t, quickstart.Scaffold(dir, quickstart.GenerateOptions{Drivers: 10, Days: 1, End: time.Now().UTC().Truncate(time.Hour)}))
	repo, err := registry.LoadRepo(dir, registry.LoadOptions{})
	require.NoError(t, err)
	reg, err := registry.OpenStore(repo.Config.RegistryPath())
	require.NoError(t, err)
	res, err := reg.Apply(context.Background(), repo.Defs, registry.ApplyOptions{})
	require.NoError(t, err)
	off, err := offline.Open(offline.OptionsFromConfig(repo.Config))
	require.NoError(t, err)
	defer off.Close()
	store, err := online.Open(context.Background(), repo.Config)
	require.NoError(t, err)
	defer store.Close()
	_, err = (&materialize.Materializer{Offline: off, Online: store}).Incremental(context.Background(), repo.Defs, time.Now(), materialize.Options{})
	require.NoError(t, err)
	return repo, res.Snapshot
}

func TestEmbeddedAndClientAgree(t *testing.T) {
	ctx := context.Background()
	repo, snap := quickstartRepo(t)
	req := Request{Entities: map[string]any{"driver_id": []int64{1001, 1002, 9999}},
		Features:       []string{"driver_hourly:conv_rate", "driver_hourly:avg_daily_trips", "driver_hourly:embedding", "driver_scores:adjusted_conv"},
		RequestContext: map[string]any{"surge": []float64{1.5, 2, 3}}}

	emb, err := OpenEmbedded(ctx, repo.Dir)
	require.NoError(t, err)
	local, err := emb.OnlineFeatures(ctx, req)
	require.NoError(t, err)
	require.NoError(t, emb.Close())

	store, err := online.Open(ctx, repo.Config)
	require.NoError(t, err)
	defer store.Close()
	serving := server.NewServing(online.NewLookup(store, online.LookupOptions{}), func() *registry.Snapshot { return snap }, server.Limits{}, "test")
	srv, err := server.New(server.Config{GRPCAddr: "127.0.0.1:0", AuthToken: "t"}, serving, func(context.Context) error { return nil })
	require.NoError(t, err)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()

	c, err := Dial(srv.GRPCAddr().String(), Options{Token: "t"})
	require.NoError(t, err)
	defer c.Close()
	remote, err := c.OnlineFeatures(ctx, req)
	require.NoError(t, err)

	require.Equal(t, 3, remote.Rows())
	require.Equal(t, local.Names(), remote.Names())
	for _, name := range remote.Names() {
		for i := range 3 {
			require.Equal(t, local.Value(name, i), remote.Value(name, i), "%s row %d", name, i)
			require.Equal(t, local.Status(name, i), remote.Status(name, i))
			require.Equal(t, local.EventTime(name, i), remote.EventTime(name, i))
		}
	}
	rate, ok := remote.Float64("conv_rate", 0)
	require.True(t, ok)
	require.Greater(t, rate, 0.0)
	trips, ok := remote.Int64("avg_daily_trips", 1)
	require.True(t, ok)
	require.GreaterOrEqual(t, trips, int64(0))
	emb32, ok := remote.Float32s("embedding", 0)
	require.True(t, ok)
	require.Len(t, emb32, quickstart.EmbeddingDim)
	adjusted, ok := remote.Float64("adjusted_conv", 0)
	require.True(t, ok)
	require.InDelta(t, 1.5*rate, adjusted, 1e-6, "on-demand: conv_rate × surge")
	require.Equal(t, online.NotFound, remote.Status("conv_rate", 2))
	require.Equal(t, online.NotFound, remote.Status("adjusted_conv", 2))
	_, ok = remote.Float64("conv_rate", 2)
	require.False(t, ok)

	_, err = c.OnlineFeatures(ctx, Request{Entities: map[string]any{"driver_id": []int{1}}, Features: []string{"driver_hourly:conv_rate"}})
	require.ErrorContains(t, err, "give []int64 or []string")
}

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
	goTypes := map[registry.Scalar]string{registry.Int32: "int32", registry.Int64: "int64", registry.Float32: "float32",
		registry.Float64: "float64", registry.Bool: "bool", registry.String: "string", registry.Bytes: "[]uint8", registry.Timestamp: "time.Time"}
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
			typ, err := registry.ParseValueType(fv.GetType())
			require.NoError(t, err)
			want := goTypes[typ.Elem]
			if typ.List {
				want = "[]" + want
			}
			for i := -1; i <= out.Rows(); i++ {
				st, v := out.Status(name, i), out.Value(name, i)
				if i < 0 || i == out.Rows() {
					require.Equal(t, online.NotFound, st)
					require.Nil(t, v)
					require.True(t, out.EventTime(name, i).IsZero())
					continue
				}
				require.Equal(t, online.Status(fv.GetStatuses()[i]), st)
				if ts := fv.GetEventTimestamps()[i]; ts != 0 {
					require.Equal(t, ts, out.EventTime(name, i).UnixMicro())
					require.Equal(t, time.UTC, out.EventTime(name, i).Location())
				} else {
					require.True(t, out.EventTime(name, i).IsZero())
				}
				if st != online.Present {
					require.Nil(t, v, "row %d of %s is %v", i, name, st)
				} else if v != nil {
					require.Equal(t, want, fmt.Sprintf("%T", v), "row %d of %s (%s)", i, name, fv.GetType())
				}
				f64, ok := out.Float64(name, i)
				require.Equal(t, v != nil && (typ == registry.ValueType{Elem: registry.Float32} || typ == registry.ValueType{Elem: registry.Float64}), ok)
				if x, is32 := v.(float32); is32 && !math.IsNaN(f64) {
					require.Equal(t, float64(x), f64, "row %d of %s", i, name)
				}
				_, ok = out.Int64(name, i)
				require.Equal(t, v != nil && (typ == registry.ValueType{Elem: registry.Int32} || typ == registry.TypeInt64), ok)
				_, ok = out.String(name, i)
				require.Equal(t, v != nil && typ == registry.TypeString, ok)
				_, ok = out.Float32s(name, i)
				require.Equal(t, v != nil && typ == registry.ValueType{Elem: registry.Float32, List: true}, ok)
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
