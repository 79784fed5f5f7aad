package stream

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/streamlog"
)

func TestPushAppliesOnlineAndLogs(t *testing.T) {
	f := newFixture(t)
	a, err := NewApplier(f.repo.Defs, f.store, f.root, nil, nil)
	require.NoError(t, err)
	a.MaxFuture = 100 * 365 * 24 * time.Hour // fixed event times, whatever the clock says
	ctx := context.Background()
	n, err := a.PushJSON(ctx, "driver_app", [][]byte{
		[]byte(`{"driver_id": 1001, "available": true, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"}`),
		[]byte(`{"driver_id": 1001, "available": false, "battery": 0.25, "ts": "2026-11-23T10:01:00Z"}`),
	})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	at := time.Date(2026, 11, 23, 10, 2, 0, 0, time.UTC)
	n, err = a.PushRows(ctx, "driver_app", [][]any{{int64(1002), nil, float32(0.75), at}})
	require.NoError(t, err)
	require.Equal(t, 1, n)

	lookup := online.NewLookup(f.store, online.LookupOptions{Now: func() time.Time { return at }})
	resp, err := lookup.Get(ctx, f.repo.Defs, &online.Request{Entities: map[string][]any{"driver_id": {int64(1001), int64(1002)}},
		Features: []string{"driver_status:*", "driver_pings:*"}})
	require.NoError(t, err)
	got := map[string][]any{}
	for _, fv := range resp.Features {
		got[fv.Name] = []any{fv.Value(0), fv.Value(1)}
	}
	require.Equal(t, map[string][]any{
		"available": {false, nil}, "battery": {float32(0.25), float32(0.75)},
		"pings_10m": {int64(2), int64(1)}, "min_battery_1h": {float32(0.25), float32(0.75)},
	}, got)
	require.Equal(t, 3, logRows(t, f.root, "driver_status"))
	require.Equal(t, 3, logRows(t, f.root, "driver_pings"))
}

func TestPushRefusesBadRowsWhole(t *testing.T) {
	f := newFixture(t)
	a, err := NewApplier(f.repo.Defs, f.store, f.root, nil, nil)
	require.NoError(t, err)
	ctx := context.Background()
	for _, c := range []struct {
		source string
		rows   [][]any
		want   string
	}{
		{"nope", nil, `"nope" is not a push source that an online view reads (push sources: [driver_app])`},
		{"trips", nil, "source trips is a kafka source; only push sources take pushed rows"},
		{"driver_app", [][]any{{int64(1), true, float32(1), time.Now()}, {"1", true, float32(1), time.Now()}}, "row 1: field driver_id: want int64, got string"},
		{"driver_app", [][]any{{int64(1), true, float32(1), nil}}, "row 0: field ts: is null"},
		{"driver_app", [][]any{{int64(1), true, float32(1)}}, "row 0: 3 values for the 4 fields of source driver_app"},
		{"driver_app", [][]any{{int64(1), true, float32(1), time.Now().Add(48 * time.Hour)}}, "is more than 24h0m0s ahead of the clock"},
		{"driver_app", [][]any{{int64(1), true, float32(1), time.Now()}, {int64(2), true, float32(1), time.Date(-249, 3, 1, 0, 0, 0, 0, time.UTC)}},
			"row 1: field ts: time year -249 (03-01T00:00:00Z) is out of range"},
	} {
		_, err := a.PushRows(ctx, c.source, c.rows)
		require.ErrorContains(t, err, c.want)
		require.True(t, errors.Is(err, ErrInvalidPush), err)
	}
	_, err = a.PushJSON(ctx, "driver_app", [][]byte{[]byte(`{"driver_id": 1}`)})
	require.ErrorContains(t, err, "row 0: field available: is missing")
	require.Equal(t, 0, logRows(t, f.root, "driver_status"), "a refused push applies nothing")
}

// TestPushLogFailureAppliesNothing: when the offline log cannot be
// written, the push fails and the online store does not take it either.
func TestPushLogFailureAppliesNothing(t *testing.T) {
	f := newFixture(t)
	a, err := NewApplier(f.repo.Defs, f.store, f.root, nil, nil)
	require.NoError(t, err)
	a.MaxFuture = 100 * 365 * 24 * time.Hour
	// A file where the log's date directory goes.
	dateDir := filepath.Join(streamlog.ViewDir(f.root, "driver_pings"), "date=2026-11-23")
	require.NoError(t, os.WriteFile(dateDir, nil, 0o644))
	ctx := context.Background()
	_, err = a.PushJSON(ctx, "driver_app", [][]byte{
		[]byte(`{"driver_id": 1001, "available": true, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"}`),
	})
	require.ErrorContains(t, err, "write offline log (nothing was applied)")
	require.False(t, errors.Is(err, ErrInvalidPush), "an outage, not a bad push")

	lookup := online.NewLookup(f.store, online.LookupOptions{Now: func() time.Time { return time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC) }})
	resp, err := lookup.Get(ctx, f.repo.Defs, &online.Request{Entities: map[string][]any{"driver_id": {int64(1001)}},
		Features: []string{"driver_status:*", "driver_pings:*"}})
	require.NoError(t, err)
	for _, fv := range resp.Features {
		require.Equal(t, online.NotFound, fv.Statuses[0], fv.Name)
	}
	require.Equal(t, 0, logRows(t, f.root, "driver_status"), "the other view's prepared files were removed")
	require.NoError(t, os.Remove(dateDir))
	n, err := a.PushJSON(ctx, "driver_app", [][]byte{
		[]byte(`{"driver_id": 1001, "available": true, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"}`),
	})
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, 1, logRows(t, f.root, "driver_status"))
	require.Equal(t, 1, logRows(t, f.root, "driver_pings"))
}

// logRowsIn counts the rows a view's committed manifests hold, below a
// data root on either kind of storage.
func logRowsIn(t *testing.T, st *storage.Store, root, view string) int {
	t.Helper()
	ms, err := streamlog.ReadManifests(context.Background(), st, root, view)
	require.NoError(t, err)
	n := 0
	for _, m := range ms {
		for _, f := range m.Files {
			n += int(f.Rows)
		}
	}
	return n
}

// Pushes logged below an s3:// data root: committed rows are in the log;
// a data object the store refuses fails the push before anything is
// applied, online or in the log.
func TestPushLogsBelowAnObjectStorageDataRoot(t *testing.T) {
	f := newFixture(t)
	srv := s3test.Start(t)
	st := storage.NewStore(storage.Config{S3: srv.Options()})
	root := "s3://" + srv.Bucket + "/data"
	ctx := context.Background()
	a, err := NewApplierStore(ctx, f.repo.Defs, f.store, root, st, nil, nil)
	require.NoError(t, err)
	a.MaxFuture = 100 * 365 * 24 * time.Hour
	n, err := a.PushJSON(ctx, "driver_app", [][]byte{
		[]byte(`{"driver_id": 1001, "available": true, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"}`),
		[]byte(`{"driver_id": 1001, "available": false, "battery": 0.25, "ts": "2026-11-24T10:01:00Z"}`),
	})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, 2, logRowsIn(t, st, root, "driver_status"))
	require.Equal(t, 2, logRowsIn(t, st, root, "driver_pings"))

	srv.FailNextMatching(1, http.StatusForbidden, func(r s3test.Request) bool {
		return r.Method == http.MethodPut && strings.Contains(r.Path, "/date=")
	})
	_, err = a.PushJSON(ctx, "driver_app", [][]byte{
		[]byte(`{"driver_id": 1002, "available": true, "battery": 0.5, "ts": "2026-11-23T10:00:00Z"}`),
	})
	require.ErrorContains(t, err, "write offline log (nothing was applied)")
	require.NotContains(t, err.Error(), s3test.SecretKey)
	lookup := online.NewLookup(f.store, online.LookupOptions{Now: func() time.Time { return time.Date(2026, 11, 23, 10, 1, 0, 0, time.UTC) }})
	resp, err := lookup.Get(ctx, f.repo.Defs, &online.Request{Entities: map[string][]any{"driver_id": {int64(1002)}},
		Features: []string{"driver_status:*", "driver_pings:*"}})
	require.NoError(t, err)
	for _, fv := range resp.Features {
		require.Equal(t, online.NotFound, fv.Statuses[0], fv.Name)
	}
	require.Equal(t, 2, logRowsIn(t, st, root, "driver_status"))
	require.Equal(t, 2, logRowsIn(t, st, root, "driver_pings"))
	removed, err := a.Recover(0)
	require.NoError(t, err)
	require.Zero(t, removed, "the refused push's other objects were removed as it failed")
}

// Two appliers logging the same offsets of a partition below an s3://
// data root (a consumer the partition moved away from, and its
// successor): the batch is committed once, and the second writer counts
// it as logged rather than failing for ever.
func TestSameOffsetsLoggedTwiceCommitOnceOnObjectStorage(t *testing.T) {
	f := newFixture(t)
	srv := s3test.Start(t)
	st := storage.NewStore(storage.Config{S3: srv.Options()})
	root := "s3://" + srv.Bucket + "/data"
	ctx := context.Background()
	var appliers [2]*Applier
	for i := range appliers {
		a, err := NewApplierStore(ctx, f.repo.Defs, f.store, root, st, nil, nil)
		require.NoError(t, err)
		appliers[i] = a
	}
	d, err := appliers[0].Decoder("trips")
	require.NoError(t, err)
	ts := trips(20, 3, time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), 7)
	events := make([]streamlog.Event, len(ts))
	for i, tr := range ts {
		events[i].Offset = int64(100 + i)
		require.NoError(t, d.Decode(tr.JSON(), &events[i]))
	}
	var logged [2]map[string]int64
	for i, a := range appliers {
		logged[i], err = a.Logged("trips", "trips", 2)
		require.NoError(t, err)
	}
	require.NotEmpty(t, logged[0])
	for i, a := range appliers {
		require.NoError(t, a.AppendLog("trips", "trips", 2, events, logged[i]), "writer %d", i)
		for view, last := range logged[i] {
			require.Equal(t, int64(119), last, "writer %d, view %s", i, view)
		}
	}
	for view := range logged[0] {
		ms, err := streamlog.ReadManifests(ctx, st, root, view)
		require.NoError(t, err)
		require.Len(t, ms, 1, view)
		require.Equal(t, 20, logRowsIn(t, st, root, view))
		_, objs, err := streamlog.Objects(ctx, st, root, view)
		require.NoError(t, err)
		b, _, err := st.Open(ctx, root)
		require.NoError(t, err)
		all, err := b.List(ctx, "data/_stream/"+view+"/date=")
		require.NoError(t, err)
		require.Equal(t, len(objs), len(all), "the second writer's objects were removed")
	}
}
