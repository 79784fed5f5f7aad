package offline

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

// TestLargeJoin runs a join whose inputs take several times DuckDB's
// memory limit (3M source rows with a 100-byte payload, about 400 MB in
// memory, against a 96 MB limit; without a temp directory DuckDB fails it
// with "Out of Memory"), so DuckDB must spill, and checks the result
// equals the unconstrained one. Then it cancels a join midway.
func TestLargeJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("out-of-core test skipped in -short mode")
	}
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(filepath.Join(data, "big"), 0o755))
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT (hash(i, 'k') %% 200000)::BIGINT AS id,
		TIMESTAMP '2026-01-01' + to_seconds((hash(i, 't') %% 8640000)::BIGINT) AS ts,
		repeat(chr(65 + (i %% 26)::INTEGER), 100) AS payload, i AS n
		FROM range(3000000) r(i)) TO '%s' (FORMAT parquet)`, filepath.Join(data, "big", "part.parquet")))
	require.NoError(t, err)
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT (hash(i, 'e') %% 250000)::BIGINT AS id,
		TIMESTAMP '2026-01-01' + to_seconds((hash(i, 'et') %% 8640000)::BIGINT) AS event_timestamp
		FROM range(300000) r(i)) TO '%s' (FORMAT parquet)`, filepath.Join(dir, "entities.parquet")))
	require.NoError(t, err)
	require.NoError(t, db.Close())

	defs, errs := registry.ParseDefinitions("ooc", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(`
entities: [{name: thing, join_keys: [{name: id, type: int64}]}]
sources: [{name: big_src, kind: parquet, path: "big/*.parquet", timestamp_field: ts}]
feature_views:
  - {name: big, entities: [thing], source: big_src, ttl: 30d, features: [{name: payload, type: string}, {name: n, type: int64}]}
`)})
	require.NoError(t, errs.Err())
	req := func() *Request {
		return &Request{Defs: defs, Entities: EntitiesFromParquet(filepath.Join(dir, "entities.parquet")), Features: []string{"big:*"}}
	}

	small, err := Open(Options{DataRoot: data, MemoryLimit: "96MB", Threads: 1, TempDirectory: filepath.Join(dir, "spill")})
	require.NoError(t, err)
	start := time.Now()
	n, err := small.WriteParquet(ctx, req(), filepath.Join(dir, "small.parquet"))
	require.NoError(t, err, "the join must complete within a 96 MB memory limit by spilling")
	require.EqualValues(t, 300000, n)
	t.Logf("constrained join: %s", time.Since(start))
	require.NoError(t, small.Close())

	big := openEngine(t, data)
	n, err = big.WriteParquet(ctx, req(), filepath.Join(dir, "big.parquet"))
	require.NoError(t, err)
	require.EqualValues(t, 300000, n)

	check, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer check.Close()
	var diff int64
	a, b := filepath.Join(dir, "small.parquet"), filepath.Join(dir, "big.parquet")
	require.NoError(t, check.QueryRow(fmt.Sprintf(`SELECT count(*) FROM (
		(SELECT * FROM read_parquet('%[1]s') EXCEPT ALL SELECT * FROM read_parquet('%[2]s'))
		UNION ALL
		(SELECT * FROM read_parquet('%[2]s') EXCEPT ALL SELECT * FROM read_parquet('%[1]s')))`, a, b)).Scan(&diff))
	require.Zero(t, diff, "the constrained result equals the unconstrained one")
	// And the order is the input order in both.
	var outOfOrder int64
	require.NoError(t, check.QueryRow(fmt.Sprintf(`SELECT count(*) FROM read_parquet('%s') s
		POSITIONAL JOIN read_parquet('%s') e WHERE s.id IS DISTINCT FROM e.id OR s.event_timestamp IS DISTINCT FROM e.event_timestamp`,
		a, filepath.Join(dir, "entities.parquet"))).Scan(&outOfOrder))
	require.Zero(t, outOfOrder)

	t.Run("cancel", func(t *testing.T) {
		eng := openEngine(t, data)
		cctx, cancel := context.WithCancel(ctx)
		rr, err := eng.TrainingSet(cctx, req())
		if err == nil {
			// The query finished before the cancel; cancel while reading.
			cancel()
			for rr.Next() {
			}
			require.ErrorIs(t, rr.Err(), context.Canceled)
			rr.Release()
		} else {
			require.ErrorIs(t, err, context.Canceled)
		}
		cancel()
	})
	t.Run("cancel during the join", func(t *testing.T) {
		eng := openEngine(t, data)
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := eng.WriteParquet(cctx, req(), filepath.Join(dir, "cancelled.parquet"))
			done <- err
		}()
		time.Sleep(50 * time.Millisecond) // let the join start
		cancel()
		select {
		case err := <-done:
			require.ErrorIs(t, err, context.Canceled)
		case <-time.After(time.Minute):
			t.Fatal("the join did not stop when its context was cancelled")
		}
		_, err := os.Stat(filepath.Join(dir, "cancelled.parquet"))
		require.True(t, os.IsNotExist(err), "a cancelled write leaves no output file")
		// The engine still works after a cancelled query.
		n, err := eng.WriteParquet(ctx, req(), filepath.Join(dir, "after.parquet"))
		require.NoError(t, err)
		require.EqualValues(t, 300000, n)
	})
}
