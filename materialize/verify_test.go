package materialize

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/streamlog"
)

// counts is a feature's outcome without its example.
type counts struct{ Equal, Mismatch, Missing, Extra int }

func verifyCounts(t *testing.T, rep *VerifyReport) map[string]counts {
	t.Helper()
	out := map[string]counts{}
	for _, v := range rep.Views {
		for _, f := range v.Features {
			out[v.View+":"+f.Feature] = counts{f.Equal, f.Mismatch, f.Missing, f.Extra}
		}
	}
	return out
}

// TestVerify: pushed rows are online and in the log alike, and Verify
// finds them equal; an event applied online that the log lacks is a
// mismatch, and an online store that lacks the entities is missing them.
// The log is below a local data root, or below an s3:// one on a test
// server, where Verify reads the manifests and the objects they name.
func TestVerify(t *testing.T) {
	t.Run("local", func(t *testing.T) {
		f := newFixture(t)
		testVerify(t, f, f.repo.Config.DataRoot(), nil, f.off)
	})
	t.Run("s3", func(t *testing.T) {
		f := newFixture(t)
		srv := s3test.Start(t)
		cfg := storage.Config{S3: srv.Options()}
		root := "s3://" + srv.Bucket + "/repo/data"
		off, err := offline.Open(offline.Options{DataRoot: root, Threads: 2, Storage: cfg,
			Cache: offline.CacheOptions{Dir: filepath.Join(t.TempDir(), "cache")}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, off.Close()) })
		st := storage.NewStore(cfg)
		testVerify(t, f, root, st, off)

		// The objects are what is read: without the settings that open
		// the bucket, Verify says so.
		_, err = Verify(context.Background(), VerifyOptions{Defs: f.repo.Defs, Offline: off, Online: f.store, DataRoot: root})
		require.ErrorContains(t, err, "is on object storage, and no storage settings were given")
		srv.ResetRequests()
		_, err = Verify(context.Background(), VerifyOptions{Defs: f.repo.Defs, Offline: off, Online: f.store, DataRoot: root, Store: st, Views: []string{"driver_status"}})
		require.NoError(t, err)
		var gets int
		for _, r := range srv.Requests() {
			if r.Method == http.MethodGet && strings.HasSuffix(r.Path, ".parquet") {
				gets++
			}
		}
		require.Positive(t, gets, "the log's objects are read from the bucket")
	})
}

func testVerify(t *testing.T, f *fixture, root string, st *storage.Store, off *offline.Engine) {
	ctx := context.Background()
	a, err := stream.NewApplierStore(ctx, f.repo.Defs, f.store, root, st, nil, nil)
	require.NoError(t, err)
	a.MaxFuture = 100 * 365 * 24 * time.Hour // fixed event times, whatever the clock says
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var rows [][]any
	for i := range 20 {
		rows = append(rows, []any{int64(1001 + i%5), i%2 == 0, float32(i) / 20, at.Add(time.Duration(i) * time.Minute)})
	}
	_, err = a.PushRows(ctx, "driver_app", rows)
	require.NoError(t, err)

	opts := VerifyOptions{Defs: f.repo.Defs, Offline: off, Online: f.store, DataRoot: root, Store: st, Views: []string{"driver_status", "driver_pings"}}
	rep, err := Verify(ctx, opts)
	require.NoError(t, err)
	require.True(t, rep.OK(), "%+v", rep)
	for _, v := range rep.Views {
		require.Equal(t, at.Add(19*time.Minute), v.At, "the watermark is the log's latest event")
		require.Equal(t, 5, v.Entities)
	}
	all := func(c counts) map[string]counts {
		return map[string]counts{"driver_status:available": c, "driver_status:battery": c, "driver_pings:pings_10m": c, "driver_pings:min_battery_1h": c}
	}
	require.Equal(t, all(counts{Equal: 5}), verifyCounts(t, rep))

	// Driver 1003's last logged event is at minute 17; one at minute 18
	// goes online only, as if the stream had not logged it yet.
	late := []any{int64(1003), true, float32(0.99), at.Add(18 * time.Minute)}
	require.NoError(t, a.ApplyOnline(ctx, "driver_app", 0, []streamlog.Event{{Values: late, Time: at.Add(18 * time.Minute), Offset: streamlog.NoOffset}}))
	rep, err = Verify(ctx, opts)
	require.NoError(t, err)
	require.False(t, rep.OK())
	require.Equal(t, map[string]counts{
		"driver_status:available":     {Equal: 4, Mismatch: 1}, // false at minute 17
		"driver_status:battery":       {Equal: 4, Mismatch: 1},
		"driver_pings:pings_10m":      {Equal: 4, Mismatch: 1}, // one ping more
		"driver_pings:min_battery_1h": {Equal: 5},              // 0.99 is no new minimum
	}, verifyCounts(t, rep))
	for _, v := range rep.Views {
		for _, fr := range v.Features {
			if fr.Mismatch > 0 {
				require.Contains(t, fr.Example, "1003", "the example names the entity")
			}
		}
	}

	// An online store without the entities misses every one of them.
	empty, err := online.OpenEmbedded(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, empty.Close()) })
	opts.Online = empty
	rep, err = Verify(ctx, opts)
	require.NoError(t, err)
	require.Equal(t, all(counts{Missing: 5}), verifyCounts(t, rep))

	_, err = Verify(ctx, VerifyOptions{Defs: f.repo.Defs, Offline: off, Online: f.store, DataRoot: root, Store: st, Views: []string{"driver_hourly"}})
	require.ErrorContains(t, err, "view driver_hourly reads batch source driver_stats")
}

// TestVerifyStopsWhenCancelled: reading the log's files follows the
// caller's context, so a cancelled verify stops instead of reading every
// file to the end.
func TestVerifyStopsWhenCancelled(t *testing.T) {
	f := newFixture(t)
	root := f.repo.Config.DataRoot()
	a, err := stream.NewApplier(f.repo.Defs, f.store, root, nil, nil)
	require.NoError(t, err)
	a.MaxFuture = 100 * 365 * 24 * time.Hour
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		_, err = a.PushRows(context.Background(), "driver_app", [][]any{{int64(1001 + i), true, float32(0.5), at.Add(time.Duration(i) * time.Minute)}})
		require.NoError(t, err)
	}
	files, err := logFiles(context.Background(), VerifyOptions{DataRoot: root}, "driver_status")
	require.NoError(t, err)
	require.Len(t, files, 3)
	src := f.repo.Defs.Source("driver_app")
	keys := f.repo.Defs.JoinKeys(f.repo.Defs.FeatureView("driver_status"))

	ctx, cancel := context.WithCancel(context.Background())
	got, err := sampleEntities(ctx, files, src, keys, 10, 1)
	require.NoError(t, err)
	require.Len(t, got, 3)
	cancel()
	_, err = sampleEntities(ctx, files, src, keys, 10, 1)
	require.ErrorIs(t, err, context.Canceled)
	_, err = Verify(ctx, VerifyOptions{Defs: f.repo.Defs, Offline: f.off, Online: f.store, DataRoot: root, Views: []string{"driver_status"}})
	require.ErrorIs(t, err, context.Canceled)
}
