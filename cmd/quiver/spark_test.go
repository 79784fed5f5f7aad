//go:build spark

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/sparktest"
	"github.com/quiverdata/quiver/offline"
)

// TestSparkEngineCommands: the quickstart with offline.engine: spark on a
// real Spark Connect server, from the CLI: training sets written by the
// cluster equal the DuckDB engine's, an Arrow stream on stdout, Spark's
// plan from --explain, on-demand features, stream views over an empty
// log, and a materialization whose online values equal the DuckDB
// engine's.
func TestSparkEngineCommands(t *testing.T) {
	srv := sparktest.Start(t)
	ctx := context.Background()
	duckDir, sparkDir := initRepo(t), initRepo(t)
	cfg := filepath.Join(sparkDir, "quiver.yaml")
	b, err := os.ReadFile(cfg)
	require.NoError(t, err)
	b = bytes.Replace(b, []byte("  # engine: spark"), []byte("  engine: spark\n  spark: {remote: \""+srv.Remote()+"\"}\n  #"), 1)
	require.NoError(t, os.WriteFile(cfg, b, 0o644))
	for _, dir := range []string{duckDir, sparkDir} {
		code, _, stderr := quiver(t, "apply", "--repo", dir)
		require.Equal(t, 0, code, stderr)
	}
	head, err := offline.Open(offline.Options{DataRoot: t.TempDir()})
	require.NoError(t, err)
	defer head.Close()

	for _, features := range []string{"driver_hourly:*", "driver_hourly:conv_rate,driver_scores:adjusted_conv", "ranking_v1"} {
		flag := "--features"
		if !strings.Contains(features, ":") {
			flag = "--feature-service"
		}
		var want [][]string
		for _, dir := range []string{duckDir, sparkDir} {
			out := filepath.Join(dir, "data", "sets", "ts.parquet")
			code, stdout, stderr := quiver(t, "training-set", "--repo", dir, "--entities", filepath.Join(dir, "data", "driver_labels.parquet"),
				flag, features, "--out", out)
			require.Equal(t, 0, code, stderr)
			require.Contains(t, stdout, "Wrote 1000 rows to "+out)
			cols, rows, err := head.Head(ctx, out, 2000)
			require.NoError(t, err)
			got := append([][]string{cols}, rows...)
			if want == nil {
				want = got
				continue
			}
			require.Equal(t, want, got, features)
		}
	}

	var ipcOut, errb bytes.Buffer
	code := run(ctx, []string{"training-set", "--repo", sparkDir, "--entities", filepath.Join(sparkDir, "data", "driver_labels.parquet"),
		"--features", "driver_hourly:*", "--full-feature-names", "--out", "-"}, &ipcOut, &errb)
	require.Equal(t, 0, code, errb.String())
	rd, err := ipc.NewReader(&ipcOut)
	require.NoError(t, err)
	var rows int64
	for rd.Next() {
		rows += rd.RecordBatch().NumRows()
	}
	require.NoError(t, rd.Err())
	rd.Release()
	require.EqualValues(t, 1000, rows)

	code, stdout, stderr := quiver(t, "training-set", "--repo", sparkDir, "--entities", filepath.Join(sparkDir, "data", "driver_labels.parquet"),
		"--features", "driver_hourly:conv_rate", "--explain")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stdout, "Physical Plan")

	var online []string
	for _, dir := range []string{duckDir, sparkDir} {
		code, out, stderr := quiver(t, "materialize", "--repo", dir, "--incremental")
		require.Equal(t, 0, code, stderr)
		require.Contains(t, out, "driver_hourly: 100 entities, 100 written")
		code, out, stderr = quiver(t, "online", "--repo", dir, "--entity", "driver_id=1001,1002,1050", "--features", "driver_hourly:*", "--json")
		require.Equal(t, 0, code, stderr)
		online = append(online, out)
	}
	require.JSONEq(t, online[0], online[1], "online values after materializing from each engine")
}
