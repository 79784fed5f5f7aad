package sdk

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

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
