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

	"github.com/quiverdata/quiver/internal/testutil/parquettest"
	"github.com/quiverdata/quiver/registry"
)

// The merge join over compacted copies gives the reference's training
// sets on the random scenarios (exact ties, ttl edges, null keys and
// times, created-time and source-order tie-breaks, as of a time), on
// Parquet and Arrow entity tables, and it is the merge that ran.
func TestMergeJoinMatchesReference(t *testing.T) {
	ctx := context.Background()
	seeds := 30
	if testing.Short() {
		seeds = 8
	}
	for seed := range seeds {
		size := []int{3, 10, 40, 300}[seed%4]
		t.Run(fmt.Sprintf("seed%d_size%d", seed, size), func(t *testing.T) {
			s := newScenario(t, uint64(seed), size)
			if seed%3 == 2 {
				s = newAsOfScenario(t, uint64(seed), size)
			}
			eng, err := Open(Options{DataRoot: filepath.Join(s.dir, "data"), Threads: 2, CompactDir: t.TempDir()})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, eng.Close()) })
			res, err := eng.Compact(ctx, s.defs)
			require.NoError(t, err)
			require.Len(t, res, 3)
			entities := EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))
			if seed%2 == 1 {
				entities = EntitiesFromArrow(s.arrowEntities(t, 7))
			}
			req := s.request(entities)
			if s.asOf != nil {
				req.AsOf = *s.asOf
			}
			s.checkRun(t, eng, req)
			require.EqualValues(t, 1, eng.merged.Load(), "the merge join ran")
		})
	}
}

// A compacted copy goes stale when a source file changes, is added or
// removed: the training set is then the SQL join's over the new files,
// never the old copy's; compacting again makes the merge run again.
func TestCompactedCopyGoesStale(t *testing.T) {
	ctx := context.Background()
	s := newScenario(t, 41, 40)
	eng, err := Open(Options{DataRoot: filepath.Join(s.dir, "data"), Threads: 2, CompactDir: t.TempDir()})
	require.NoError(t, err)
	defer eng.Close()
	_, err = eng.Compact(ctx, s.defs)
	require.NoError(t, err)
	run := func() {
		t.Helper()
		rr, err := eng.TrainingSet(ctx, s.request(EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))))
		require.NoError(t, err)
		_, rows := readAll(t, rr)
		s.check(t, rows)
	}
	run()
	require.EqualValues(t, 1, eng.merged.Load())

	// Changed rows in a file of the same name: a new size or time.
	for i := range s.riders {
		s.riders[i].Tier = "changed"
	}
	require.NoError(t, parquettest.Write(filepath.Join(s.dir, "data", "riders.parquet"), s.riders))
	run()
	require.EqualValues(t, 1, eng.merged.Load(), "a stale copy is not used")

	res, err := eng.Compact(ctx, s.defs)
	require.NoError(t, err)
	fresh := map[string]bool{}
	for _, r := range res {
		fresh[r.View] = r.Fresh
	}
	require.Equal(t, map[string]bool{"drivers": true, "riders": false, "pairs": true}, fresh, "only the stale copy is rebuilt")
	run()
	require.EqualValues(t, 2, eng.merged.Load())

	// A file added to a glob source.
	extra := append([]driverRow{}, s.drivers[0]...)
	for i := range extra {
		extra[i].Trips += 1000
	}
	s.drivers = append(s.drivers, extra)
	require.NoError(t, parquettest.Write(filepath.Join(s.dir, "data", "drivers", fmt.Sprintf("part-%02d.parquet", len(s.drivers)-1)), extra))
	run()
	require.EqualValues(t, 2, eng.merged.Load(), "a new file makes the copy stale")
	_, err = eng.Compact(ctx, s.defs, "drivers")
	require.NoError(t, err)
	run()
	require.EqualValues(t, 3, eng.merged.Load())

	// The same size rewritten with an older modification time.
	path := filepath.Join(s.dir, "data", "pairs.parquet")
	require.NoError(t, os.Chtimes(path, time.Now(), time.Now().Add(-time.Hour)))
	run()
	require.EqualValues(t, 3, eng.merged.Load(), "a new modification time makes the copy stale")
}

// The merge join with an on-demand view that reads a request field from
// the entity table: the same columns, in the same order, as the SQL join,
// and it is the merge that ran.
func TestMergeJoinOnDemandRequest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(data, 0o755))
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT (i %% 7)::BIGINT AS id, TIMESTAMP '2026-01-01' + to_minutes(i) AS ts, i * 1.5 AS v
		FROM range(100) r(i)) TO '%s' (FORMAT parquet)`, filepath.Join(data, "src.parquet")))
	require.NoError(t, err)
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT (i %% 9)::BIGINT AS id, TIMESTAMP '2026-01-01' + to_minutes(i * 3) AS event_timestamp, (i %% 4)::INTEGER AS surge
		FROM range(50) r(i)) TO '%s' (FORMAT parquet)`, filepath.Join(dir, "entities.parquet")))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	defs, errs := registry.ParseDefinitions("w", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(`
entities: [{name: thing, join_keys: [{name: id, type: int64}]}]
sources: [{name: src, kind: parquet, path: src.parquet, timestamp_field: ts}]
feature_views:
  - {name: fv, entities: [thing], source: src, ttl: 1h, features: [{name: v, type: float64}]}
on_demand_feature_views:
  - name: od
    inputs: [fv]
    request: [{name: surge, type: float64}]
    features: [{name: scaled, type: float64, expr: "fv.v * request.surge"}]
`)})
	require.NoError(t, errs.Err())
	req := func() *Request {
		return &Request{Defs: defs, Entities: EntitiesFromParquet(filepath.Join(dir, "entities.parquet")), Features: []string{"fv:v", "od:scaled"}}
	}
	plain := openEngine(t, data)
	rr, err := plain.TrainingSet(ctx, req())
	require.NoError(t, err)
	wantSchema, want := readAll(t, rr)

	eng, err := Open(Options{DataRoot: data, Threads: 2, CompactDir: t.TempDir()})
	require.NoError(t, err)
	defer eng.Close()
	_, err = eng.Compact(ctx, defs)
	require.NoError(t, err)
	rr, err = eng.TrainingSet(ctx, req())
	require.NoError(t, err)
	gotSchema, got := readAll(t, rr)
	require.True(t, wantSchema.Equal(gotSchema), "%s\n%s", wantSchema, gotSchema)
	require.Equal(t, want, got)
	require.EqualValues(t, 1, eng.MergeJoins(), "the merge join ran")
}

// A compacted copy that cannot be read (garbage, truncated, of other
// column types) is a cache miss: the training set is the SQL join's, and
// no error and no crash reach the caller.
func TestDamagedCompactedCopy(t *testing.T) {
	ctx := context.Background()
	s := newScenario(t, 43, 40)
	compact := t.TempDir()
	eng, err := Open(Options{DataRoot: filepath.Join(s.dir, "data"), Threads: 2, CompactDir: compact})
	require.NoError(t, err)
	defer eng.Close()
	res, err := eng.Compact(ctx, s.defs)
	require.NoError(t, err)
	require.Equal(t, "drivers", res[0].View)
	good, err := os.ReadFile(res[0].Path)
	require.NoError(t, err)
	req := func() *Request { return s.request(EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))) }
	s.checkRun(t, eng, req())
	require.EqualValues(t, 1, eng.MergeJoins())
	// Another view's copy in its place: other columns.
	otherBytes, err := os.ReadFile(res[1].Path)
	require.NoError(t, err)
	for name, b := range map[string][]byte{"garbage": []byte("not an arrow file"), "truncated": good[:len(good)/2], "other columns": otherBytes} {
		require.NoError(t, os.WriteFile(res[0].Path, b, 0o644), name)
		s.checkRun(t, eng, req())
		require.EqualValues(t, 1, eng.MergeJoins(), "%s: the SQL join ran", name)
	}
}
