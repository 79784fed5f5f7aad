package quickstart

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

func TestGenerateIsDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	opts := GenerateOptions{Drivers: 5, Days: 2}
	require.NoError(t, Generate(a, opts))
	require.NoError(t, Generate(b, opts))
	files, err := filepath.Glob(filepath.Join(a, "driver_stats", "*.parquet"))
	require.NoError(t, err)
	require.Len(t, files, 2)
	for _, f := range files {
		x, err := os.ReadFile(f)
		require.NoError(t, err)
		y, err := os.ReadFile(filepath.Join(b, "driver_stats", filepath.Base(f)))
		require.NoError(t, err)
		require.True(t, bytes.Equal(x, y), "%s differs between runs", filepath.Base(f))
	}
	rows, err := parquet.ReadFile[DriverStat](files[0])
	require.NoError(t, err)
	require.Len(t, rows, 24*5)
	r := rows[0]
	require.Equal(t, int64(1001), r.DriverID)
	require.Equal(t, time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC), r.EventTimestamp.UTC())
	require.True(t, r.Created.After(r.EventTimestamp))
	require.Len(t, r.Embedding, EmbeddingDim)
}

func TestScaffoldLoads(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, Scaffold(dir, GenerateOptions{Drivers: 2, Days: 1}))
	repo, err := registry.LoadRepo(dir, registry.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }})
	require.NoError(t, err)
	require.Equal(t, "rides", repo.Defs.Project)
	require.Equal(t, []string{"features/drivers.yaml", "features/entities.yaml", "features/ranking.yaml", "features/status.yaml", "features/trips.yaml"}, repo.Files)
	require.Equal(t, []string{"127.0.0.1:9092"}, repo.Config.Kafka.Brokers)
	require.Error(t, Scaffold(dir, GenerateOptions{}), "scaffolding over a repository is refused")
}
