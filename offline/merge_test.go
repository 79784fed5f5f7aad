package offline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/parquettest"
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
			rr, err := eng.TrainingSet(ctx, req)
			require.NoError(t, err)
			_, rows := readAll(t, rr)
			s.check(t, rows)
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
