package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/testutil/logtest"
	"github.com/quiverdata/quiver/internal/testutil/quicktest"
	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/sdk"
	"github.com/quiverdata/quiver/server"
)

// logRows counts the rows of a view's offline log.
var logRows = logtest.Rows

func TestClientPush(t *testing.T) {
	ctx := context.Background()
	repo, snap := quicktest.Repo(t)
	store, err := online.Open(ctx, repo.Config)
	require.NoError(t, err)
	defer store.Close()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	lookup := online.NewLookup(store, online.LookupOptions{Now: func() time.Time { return at.Add(2 * time.Minute) }})
	serving := server.NewServing(lookup, func() *registry.Snapshot { return snap }, server.Limits{}, "test")
	applier, err := stream.NewApplier(snap.Defs, store, repo.Config.DataRoot(), nil, nil)
	require.NoError(t, err)
	serving.SetPusher(applier)
	srv, err := server.New(server.Config{GRPCAddr: "127.0.0.1:0", AuthToken: "t"}, serving, func(context.Context) error { return nil })
	require.NoError(t, err)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	c, err := sdk.Dial(srv.GRPCAddr().String(), sdk.Options{Token: "t"})
	require.NoError(t, err)
	defer c.Close()

	// Plain Go values: an int driver id, a float64 battery for a float32
	// field, a nil availability.
	n, err := c.Push(ctx, "driver_app", []map[string]any{
		{"driver_id": 1001, "available": true, "battery": 0.5, "ts": at},
		{"driver_id": int64(1001), "available": false, "battery": float32(0.25), "ts": at.Add(time.Minute)},
		{"driver_id": int32(1002), "available": nil, "battery": 1, "ts": at.Add(time.Minute)},
	})
	require.NoError(t, err)
	require.Equal(t, 3, n)

	got, err := c.OnlineFeatures(ctx, sdk.Request{Entities: map[string]any{"driver_id": []int64{1001, 1002}},
		Features: []string{"driver_status:*", "driver_pings:*"}})
	require.NoError(t, err)
	for name, want := range map[string][]any{
		"available": {false, nil}, "battery": {float32(0.25), float32(1)},
		"pings_10m": {int64(2), int64(1)}, "min_battery_1h": {float32(0.25), float32(1)},
	} {
		require.Equal(t, want, []any{got.Value(name, 0), got.Value(name, 1)}, name)
	}
	require.Equal(t, online.NullValue, got.Status("available", 1))
	require.Equal(t, 3, logRows(t, repo.Config.DataRoot(), "driver_status"))
	require.Equal(t, 3, logRows(t, repo.Config.DataRoot(), "driver_pings"))

	for _, tc := range []struct {
		rows []map[string]any
		code codes.Code
		want string
	}{
		{[]map[string]any{{"driver_id": 1, "available": true, "battery": 0.5, "ts": at}, {"driver_id": 2, "available": true, "ts": at}},
			codes.OK, "push driver_app: row 1 has no battery (give nil for null)"},
		{[]map[string]any{{"driver_id": 1, "available": true, "battery": 0.5, "ts": at}, {"driver_id": "2", "available": true, "battery": 0.5, "ts": at}},
			codes.OK, "push driver_app: column driver_id: row 0 is int, row 1 is string"},
		{[]map[string]any{{"driver_id": 1, "available": true, "battery": 0.5, "ts": at, "speed": 3.5}},
			codes.InvalidArgument, `unknown column "speed"`},
		{[]map[string]any{{"driver_id": 1, "available": "yes", "battery": 0.5, "ts": at}},
			codes.InvalidArgument, "column available: want bool_values (bool), got string_values"},
		{[]map[string]any{{"driver_id": nil, "available": true, "battery": 0.5, "ts": at}},
			codes.InvalidArgument, "row 0: field driver_id: is null"},
	} {
		_, err := c.Push(ctx, "driver_app", tc.rows)
		require.ErrorContains(t, err, tc.want)
		if tc.code != codes.OK {
			require.Equal(t, tc.code, status.Code(err), "%v", err)
		}
	}
	require.Equal(t, 3, logRows(t, repo.Config.DataRoot(), "driver_status"), "a refused push applies nothing")
}
