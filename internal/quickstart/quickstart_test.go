package quickstart

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
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
	pf, err := file.OpenParquetFile(files[0], false)
	require.NoError(t, err)
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	require.NoError(t, err)
	tbl, err := fr.ReadTable(context.Background())
	require.NoError(t, err)
	defer tbl.Release()
	for i, want := range DriverStatsSchema.Fields() {
		got := tbl.Schema().Field(i)
		require.Equal(t, want.Name, got.Name)
		require.False(t, got.Nullable, "%s is required", got.Name)
		require.True(t, arrow.TypeEqual(want.Type, got.Type), "%s is %s, want %s", got.Name, got.Type, want.Type)
	}
	require.Equal(t, int64(24*5), tbl.NumRows())
	col := func(i int) arrow.Array { return tbl.Column(i).Data().Chunk(0) }
	require.Equal(t, int64(1001), col(0).(*array.Int64).Value(0))
	event := col(1).(*array.Timestamp).Value(0).ToTime(arrow.Microsecond)
	require.Equal(t, time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC), event)
	require.True(t, col(2).(*array.Timestamp).Value(0).ToTime(arrow.Microsecond).After(event))
	emb := col(6).(*array.List)
	start, end := emb.ValueOffsets(0)
	require.Equal(t, int64(EmbeddingDim), end-start)
}

// TestExampleIsTheScaffold: examples/quickstart, the repository users
// read, holds exactly the definitions quiver init writes.
func TestExampleIsTheScaffold(t *testing.T) {
	n := 0
	err := fs.WalkDir(Files, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		n++
		want, err := Files.ReadFile(p)
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join("..", "..", "examples", "quickstart", filepath.FromSlash(p)))
		require.NoError(t, err, "examples/quickstart lacks %s: copy internal/quickstart/%s there", p, p)
		require.Equal(t, string(want), string(got), "examples/quickstart/%s differs from internal/quickstart/%s, which quiver init writes: keep them equal", p, p)
		return nil
	})
	require.NoError(t, err)
	example, err := filepath.Glob(filepath.Join("..", "..", "examples", "quickstart", "features", "*.yaml"))
	require.NoError(t, err)
	require.Equal(t, n, len(example)+1, "examples/quickstart has definition files the scaffold lacks")
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
