package embedded

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/internal/testutil/quicktest"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/sdk"
	"github.com/quiverdata/quiver/server"
)

func TestEmbeddedAndClientAgree(t *testing.T) {
	ctx := context.Background()
	repo, snap := quicktest.Repo(t)
	req := sdk.Request{Entities: map[string]any{"driver_id": []int64{1001, 1002, 9999}},
		Features:       []string{"driver_hourly:conv_rate", "driver_hourly:avg_daily_trips", "driver_hourly:embedding", "driver_scores:adjusted_conv"},
		RequestContext: map[string]any{"surge": []float64{1.5, 2, 3}}}

	emb, err := Open(ctx, repo.Dir)
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

	c, err := sdk.Dial(srv.GRPCAddr().String(), sdk.Options{Token: "t"})
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

	_, err = c.OnlineFeatures(ctx, sdk.Request{Entities: map[string]any{"driver_id": []int{1}}, Features: []string{"driver_hourly:conv_rate"}})
	require.ErrorContains(t, err, "give []int64 or []string")
}
