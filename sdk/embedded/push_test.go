package embedded

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/logtest"
	"github.com/quiverdata/quiver/internal/testutil/quicktest"
	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/sdk"
)

// logRows counts the rows of a view's offline log.
var logRows = logtest.Rows

func TestEmbeddedPush(t *testing.T) {
	ctx := context.Background()
	repo, _ := quicktest.Repo(t)
	emb, err := Open(ctx, repo.Dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, emb.Close()) }()

	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	n, err := emb.Push(ctx, "driver_app", []map[string]any{
		{"driver_id": 1001, "available": true, "battery": float32(0.5), "ts": at},
		{"driver_id": 1002, "available": nil, "battery": 0.75, "ts": at},
	})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	got, err := emb.OnlineFeatures(ctx, sdk.Request{Entities: map[string]any{"driver_id": []int64{1001, 1002}},
		Features: []string{"driver_status:*", "driver_pings:pings_10m"}})
	require.NoError(t, err)
	require.Equal(t, true, got.Value("available", 0))
	require.Equal(t, online.NullValue, got.Status("available", 1))
	require.Equal(t, float32(0.75), got.Value("battery", 1))
	require.Equal(t, at, got.EventTime("battery", 0))
	require.Equal(t, int64(1), got.Value("pings_10m", 0))
	require.Equal(t, 2, logRows(t, repo.Config.DataRoot(), "driver_status"))

	_, err = emb.Push(ctx, "driver_app", []map[string]any{{"driver_id": 1001, "available": true, "ts": at}})
	require.ErrorContains(t, err, "row 0: field battery: is missing")
	require.True(t, errors.Is(err, stream.ErrInvalidPush), err)
	_, err = emb.Push(ctx, "driver_app", []map[string]any{{"driver_id": 1001, "available": true, "battery": math.NaN(), "ts": at}})
	require.ErrorContains(t, err, "push driver_app: row 0: json: unsupported value: NaN")
	_, err = emb.Push(ctx, "trips", nil)
	require.ErrorContains(t, err, "source trips is a kafka source")
	require.Equal(t, 2, logRows(t, repo.Config.DataRoot(), "driver_status"))
}
