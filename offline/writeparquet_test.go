package offline

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

// TestWriteParquetLeavesNothingOnFailure makes the final rename fail (the
// output path is a directory) and checks that no temporary file is left,
// through DuckDB's COPY and through the on-demand (Go) writer; then that a
// good write replaces the file whole.
func TestWriteParquetLeavesNothingOnFailure(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(data, 0o755))
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT i::BIGINT AS id, TIMESTAMP '2026-01-01' + to_minutes(i) AS ts, i * 1.5 AS v
		FROM range(10) r(i)) TO '%s' (FORMAT parquet)`, filepath.Join(data, "src.parquet")))
	require.NoError(t, err)
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT i::BIGINT AS id, TIMESTAMP '2026-01-02' AS event_timestamp
		FROM range(10) r(i)) TO '%s' (FORMAT parquet)`, filepath.Join(dir, "entities.parquet")))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	defs, errs := registry.ParseDefinitions("w", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(`
entities: [{name: thing, join_keys: [{name: id, type: int64}]}]
sources: [{name: src, kind: parquet, path: src.parquet, timestamp_field: ts}]
feature_views:
  - {name: fv, entities: [thing], source: src, ttl: 30d, features: [{name: v, type: float64}]}
on_demand_feature_views:
  - {name: od, inputs: [fv], features: [{name: twice, type: float64, expr: "fv.v * 2.0"}]}
`)})
	require.NoError(t, errs.Err())
	eng := openEngine(t, data)

	outDir := filepath.Join(dir, "out")
	for name, features := range map[string][]string{"copy": {"fv:v"}, "on-demand": {"fv:v", "od:twice"}} {
		t.Run(name, func(t *testing.T) {
			target := filepath.Join(outDir, name, "set.parquet")
			require.NoError(t, os.MkdirAll(filepath.Join(target, "inside"), 0o755)) // a non-empty directory: rename onto it fails
			req := &Request{Defs: defs, Entities: EntitiesFromParquet(filepath.Join(dir, "entities.parquet")), Features: features}
			_, err := eng.WriteParquet(ctx, req, target)
			require.ErrorContains(t, err, "write training set to "+target)
			entries, err := os.ReadDir(filepath.Dir(target))
			require.NoError(t, err)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			require.Equal(t, []string{"set.parquet"}, names, "the temporary file is removed")

			// With the directory gone, the write lands whole.
			require.NoError(t, os.RemoveAll(target))
			n, err := eng.WriteParquet(ctx, req, target)
			require.NoError(t, err)
			require.EqualValues(t, 10, n)
			entries, err = os.ReadDir(filepath.Dir(target))
			require.NoError(t, err)
			require.Len(t, entries, 1)
			cols, rows, err := eng.Head(ctx, target, 20)
			require.NoError(t, err)
			require.Contains(t, cols, "v")
			require.Len(t, rows, 10)
		})
	}
}
