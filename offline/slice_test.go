package offline

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/registry"
)

const sliceDefs = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
sources:
  - {name: ev, kind: parquet, path: ev/*.parquet, timestamp_field: ts, created_timestamp_field: created}
feature_views:
  - {name: plain, entities: [driver], source: ev, features: [{name: f1, type: float64}, {name: f2, type: float64}]}
  - {name: fresh, entities: [driver], source: ev, ttl: 3h, features: [{name: f3, type: float64}]}
`

// writeSliceData writes the source of sliceDefs below dir/ev: two files of
// 10,000 rows in event-time order (UTC timestamps; pairs of rows share an
// event time and differ by created time), in row groups of 1,000 rows, 10
// float features each: row i is at minute i/2 after 2026-01-01.
func writeSliceData(t *testing.T, dir string) {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "ev"), 0o755))
	for part := range 2 {
		feats := ""
		for f := range 10 {
			feats += fmt.Sprintf(", (hash(i, %d) %% 1000) / 10.0 AS f%d", f, f)
		}
		_, err := db.Exec(fmt.Sprintf(`COPY (SELECT (hash(i) %% 200)::BIGINT AS driver_id,
			TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_minutes(i // 2) AS ts,
			TIMESTAMPTZ '2026-01-01 00:00:00+00' + to_minutes((i // 2 + hash(i, 'c') %% 5)::BIGINT) AS created %s
			FROM range(%d, %d) t(i) ORDER BY i) TO '%s' (FORMAT parquet, ROW_GROUP_SIZE 1000)`,
			feats, part*10_000, (part+1)*10_000, filepath.Join(dir, "ev", fmt.Sprintf("part-%d.parquet", part))))
		require.NoError(t, err)
	}
}

// sliceFixture writes the data of sliceDefs below dir/data, and uploads it
// below data/ of a new S3 test server.
func sliceFixture(t *testing.T) (dir, data string, srv *s3test.Server, defs *registry.Definitions) {
	t.Helper()
	dir = t.TempDir()
	data = filepath.Join(dir, "data")
	writeSliceData(t, data)
	srv = s3test.Start(t)
	upload(t, srv, data, "data/")
	defs, errs := registry.ParseDefinitions("slices", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(sliceDefs)})
	require.NoError(t, errs.Err())
	return dir, data, srv, defs
}

// writeSliceEntities writes an entity table of naive timestamps: n rows
// at random minutes in [from, to), and the extra minutes given (each for
// drivers 0 to 9).
func writeSliceEntities(t *testing.T, path string, n, from, to int, extra ...int) {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	q := fmt.Sprintf(`SELECT (hash(i, 'd') %% 200)::BIGINT AS driver_id,
		TIMESTAMP '2026-01-01' + to_seconds((%d * 60 + hash(i, 't') %% %d)::BIGINT) AS event_timestamp, i AS label
		FROM range(%d) t(i)`, from, max(1, (to-from)*60), n)
	for j, m := range extra {
		q += fmt.Sprintf(" UNION ALL SELECT d::BIGINT, TIMESTAMP '2026-01-01' + to_minutes(%d), %d + d FROM range(10) r(d)", m, 1_000_000+j*10)
	}
	_, err = db.Exec(fmt.Sprintf("COPY (SELECT * FROM (%s) ORDER BY label) TO '%s' (FORMAT parquet)", q, path))
	require.NoError(t, err)
}

// Slices of the columns and row groups a request reads give the training
// set the whole objects and the local files give, row for row, for views
// with and without a ttl, entity rows at row-group
// boundaries and before any event; and they copy a fraction of the bytes.
func TestS3SlicesMatchLocal(t *testing.T) {
	ctx := context.Background()
	dir, data, srv, defs := sliceFixture(t)
	features := []string{"plain:f1", "plain:f2", "fresh:f3"}

	// Row group g of file p holds minutes [(p*10+g)*500, (p*10+g)*500+499].
	cases := []struct {
		name     string
		features []string
		n        int
		from, to int
		extra    []int
		// cover bounds the bytes fetched, as a share of the whole objects.
		cover float64
	}{
		{"over every event", features, 3000, -60, 10_000 + 60, nil, 0.6},
		{"the first day, at row-group edges", features, 2000, 300, 1_400, []int{499, 500, 999, 1_000, 1_499}, 0.2},
		{"one hour in the middle, before any event", features, 500, 4_200, 4_260, []int{-5, 4_000, 4_499}, 0.4},
		{"one hour in the middle, ttl", []string{"fresh:f3"}, 500, 4_200, 4_260, []int{4_000, 4_499}, 0.1},
	}
	local := openEngine(t, data)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ents := filepath.Join(dir, fmt.Sprintf("entities-%d.parquet", i))
			writeSliceEntities(t, ents, c.n, c.from, c.to, c.extra...)
			req := &Request{Defs: defs, Entities: EntitiesFromParquet(ents), Features: c.features}
			run := func(eng *Engine) []map[string]any {
				rr, err := eng.TrainingSet(ctx, req)
				require.NoError(t, err)
				_, rows := readAll(t, rr)
				return rows
			}
			want := run(local)
			require.Len(t, want, c.n+10*len(c.extra))
			sliced := openS3Engine(t, srv, s3URI(srv, "data"), nil)
			whole := openS3Engine(t, srv, s3URI(srv, "data"), func(o *Options) { o.Cache.WholeObjects = true })
			require.Equal(t, want, run(sliced))
			require.Equal(t, want, run(whole))
			ss, ws := sliced.CacheStats(), whole.CacheStats()
			require.Positive(t, ss.Slices)
			require.Zero(t, ws.Slices)
			// Six of thirteen columns (or four); fewer row groups where
			// the entity rows' times allow.
			require.Less(t, float64(ss.Fetched), c.cover*float64(ws.Fetched), "sliced %d bytes, whole %d", ss.Fetched, ws.Fetched)
			// Again: the slices are in the cache.
			before := sliced.CacheStats()
			require.Equal(t, want, run(sliced))
			after := sliced.CacheStats()
			require.Equal(t, before.Fetched, after.Fetched)
			require.Equal(t, before.Misses, after.Misses)
		})
	}
}

// Latest reads slices of the columns a view needs and gives what it
// gives over local files.
func TestS3SlicesLatest(t *testing.T) {
	ctx := context.Background()
	_, data, srv, defs := sliceFixture(t)
	run := func(eng *Engine) []map[string]any {
		rr, err := eng.Latest(ctx, &LatestRequest{Defs: defs, View: "plain"})
		require.NoError(t, err)
		_, rows := readAll(t, rr)
		return rows
	}
	sliced := openS3Engine(t, srv, s3URI(srv, "data"), nil)
	require.Equal(t, run(openEngine(t, data)), run(sliced))
	require.Positive(t, sliced.CacheStats().Slices)
}

// Row groups are dropped only when no entity row can choose from them:
// one whose first event is at the latest entity time is kept, and so is
// one whose last event is exactly the ttl before the earliest.
func TestS3SliceBoundsAreInclusive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(filepath.Join(data, "ev"), 0o755))
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	// Row groups of two rows: minutes (0, 10), (20, 30), (40, 50), (60, 70).
	writeTwoRowGroups(t, filepath.Join(data, "ev", "part-0.parquet"), [][3]int64{{1, 0, 1}, {2, 10, 2}, {1, 20, 3}, {2, 30, 4}, {1, 40, 5}, {3, 50, 6}, {3, 60, 7}, {2, 70, 8}})
	ents := filepath.Join(dir, "entities.parquet")
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT d::BIGINT AS driver_id, TIMESTAMP '2026-01-01' + to_minutes(m::BIGINT) AS event_timestamp, d AS label
		FROM (VALUES (1, 40), (2, 40)) t(d, m)) TO '%s' (FORMAT parquet)`, ents))
	require.NoError(t, err)
	const defsYAML = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
sources:
  - {name: ev, kind: parquet, path: ev/*.parquet, timestamp_field: ts, created_timestamp_field: created}
feature_views:
  - {name: fresh, entities: [driver], source: ev, ttl: 10m, features: [{name: f3, type: float64}]}
`
	defs, errs := registry.ParseDefinitions("slices", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(defsYAML)})
	require.NoError(t, errs.Err())
	srv := s3test.Start(t)
	upload(t, srv, data, "data/")
	eng := openS3Engine(t, srv, s3URI(srv, "data"), nil)
	rr, err := eng.TrainingSet(ctx, &Request{Defs: defs, Entities: EntitiesFromParquet(ents), Features: []string{"fresh:f3"}})
	require.NoError(t, err)
	_, rows := readAll(t, rr)
	require.Len(t, rows, 2)
	// Driver 1 at minute 40: its row at 40 (the first of the third row
	// group). Driver 2 at minute 40: its row at 30, exactly the ttl
	// before (the last of the second row group).
	require.Equal(t, 5.0, rows[0]["f3"])
	require.Equal(t, 4.0, rows[1]["f3"])
	require.Positive(t, eng.CacheStats().Slices)
	// The first and last row groups were dropped: the slice holds 4 rows.
	conn, err := eng.conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	des, err := os.ReadDir(eng.opts.Cache.Dir)
	require.NoError(t, err)
	var sliceRows []int64
	for _, de := range des {
		n, err := queryInt(ctx, conn, fmt.Sprintf("SELECT count(*) FROM read_parquet('%s')", filepath.Join(eng.opts.Cache.Dir, de.Name())))
		require.NoError(t, err)
		sliceRows = append(sliceRows, n)
	}
	require.Contains(t, sliceRows, int64(4))
}

// writeTwoRowGroups writes (driver, minute, value) rows as a source of
// row groups of two rows.
func writeTwoRowGroups(t *testing.T, path string, rows [][3]int64) {
	t.Helper()
	ts := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	schema := arrow.NewSchema([]arrow.Field{{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "ts", Type: ts},
		{Name: "created", Type: ts}, {Name: "f1", Type: arrow.PrimitiveTypes.Float64}, {Name: "f2", Type: arrow.PrimitiveTypes.Float64},
		{Name: "f3", Type: arrow.PrimitiveTypes.Float64}}, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range rows {
		rb.Field(0).(*array.Int64Builder).Append(r[0])
		rb.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(base.Add(time.Duration(r[1]) * time.Minute).UnixMicro()))
		rb.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(base.UnixMicro()))
		for f := 3; f < 6; f++ {
			rb.Field(f).(*array.Float64Builder).Append(float64(r[2]))
		}
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	require.NoError(t, err)
	w, err := pqarrow.NewFileWriter(schema, f, parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(2)), pqarrow.DefaultWriterProps())
	require.NoError(t, err)
	require.NoError(t, w.Write(rec))
	require.NoError(t, w.Close())
}
