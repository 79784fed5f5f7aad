//go:build spark

package sparktest_test

// The harness's server, through Quiver's Spark Connect client
// (internal/sparkconnect), doing what the offline engine needs of it
// beyond the client's own tests: Parquet in, the windowed last-value join
// over a union, Parquet out, and a clean stop. docs/scale-out.md reports
// the timings these tests log.

import (
	"fmt"
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

	"github.com/quiverdata/quiver/internal/sparkconnect"
	"github.com/quiverdata/quiver/internal/testutil/parquettest"
	"github.com/quiverdata/quiver/internal/testutil/sparktest"
)

type featureRow struct {
	Key string    `parquet:"k"`
	T   time.Time `parquet:"t,timestamp(microsecond:utc)"`
	X   *int64    `parquet:"x,optional"`
}

func ptr[T any](v T) *T { return &v }

// collect runs query and returns its result as one Arrow table.
func collect(t *testing.T, s *sparkconnect.Session, query string) arrow.Table {
	t.Helper()
	rr, err := s.Query(t.Context(), query)
	require.NoError(t, err, query)
	defer rr.Release()
	var recs []arrow.RecordBatch
	for rr.Next() {
		rec := rr.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	require.NoError(t, rr.Err(), query)
	tbl := array.NewTableFromRecords(rr.Schema(), recs)
	for _, r := range recs {
		r.Release()
	}
	t.Cleanup(tbl.Release)
	return tbl
}

// int64s and strings read a column of a table, chunk by chunk.
func int64s(t *testing.T, tbl arrow.Table, col int) []*int64 {
	t.Helper()
	var out []*int64
	for _, c := range tbl.Column(col).Data().Chunks() {
		a, ok := c.(*array.Int64)
		require.True(t, ok, "column %d is %s, not int64", col, c.DataType())
		for i := range a.Len() {
			if a.IsNull(i) {
				out = append(out, nil)
			} else {
				out = append(out, ptr(a.Value(i)))
			}
		}
	}
	return out
}

func strs(t *testing.T, tbl arrow.Table, col int) []string {
	t.Helper()
	var out []string
	for _, c := range tbl.Column(col).Data().Chunks() {
		a, ok := c.(*array.String)
		require.True(t, ok, "column %d is %s, not string", col, c.DataType())
		for i := range a.Len() {
			out = append(out, a.Value(i))
		}
	}
	return out
}

// entityTable is an entity table of n rows: k (string), t (timestamp UTC,
// microseconds), row (int64, the input order).
func entityTable(n int, keys int, base time.Time) array.RecordReader {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.BinaryTypes.String},
		{Name: "t", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: "row", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	kb := b.Field(0).(*array.StringBuilder)
	tb := b.Field(1).(*array.TimestampBuilder)
	rb := b.Field(2).(*array.Int64Builder)
	for i := range n {
		kb.Append(fmt.Sprintf("k%d", i%keys))
		tb.Append(arrow.Timestamp(base.Add(time.Duration(i) * time.Second).UnixMicro()))
		rb.Append(int64(i))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	rr, err := array.NewRecordReader(schema, []arrow.RecordBatch{rec})
	if err != nil {
		panic(err) // the schema is the record's own
	}
	return rr
}

func TestServer(t *testing.T) {
	srv := sparktest.Start(t)
	session, err := sparkconnect.Dial(t.Context(), srv.Remote(), sparkconnect.Options{})
	require.NoError(t, err)
	began := time.Now()
	collect(t, session, "SELECT 1")
	t.Logf("first query: %v", time.Since(began))
	for range 2 {
		began = time.Now()
		collect(t, session, "SELECT 1")
		t.Logf("next query: %v", time.Since(began))
	}

	t.Run("ReadParquet", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "features.parquet")
		base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		require.NoError(t, parquettest.Write(path, []featureRow{
			{"a", base, ptr[int64](1)},
			{"a", base.Add(time.Hour), nil},
			{"b", base, ptr[int64](3)},
		}))
		require.NoError(t, session.Exec(t.Context(), fmt.Sprintf(
			"CREATE OR REPLACE TEMPORARY VIEW features USING parquet OPTIONS (path '%s')", path)))
		tbl := collect(t, session, "SELECT k, count(*) AS n, max(x) AS x FROM features GROUP BY k ORDER BY k")
		require.Equal(t, []string{"a", "b"}, strs(t, tbl, 0))
		require.Equal(t, []*int64{ptr[int64](2), ptr[int64](1)}, int64s(t, tbl, 1))
		require.Equal(t, []*int64{ptr[int64](1), ptr[int64](3)}, int64s(t, tbl, 2))
		// The same file straight from SQL.
		tbl = collect(t, session, fmt.Sprintf("SELECT count(*) FROM parquet.`%s`", path))
		require.Equal(t, []*int64{ptr[int64](3)}, int64s(t, tbl, 0))
	})

	t.Run("WindowOverUnion", func(t *testing.T) {
		// The point-in-time join as a union and a windowed last value: the
		// entity rows (o = 1, no value) after the feature rows (o = 0) at
		// the same time, so that a row sees a feature with its own time.
		base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		path := filepath.Join(t.TempDir(), "f.parquet")
		require.NoError(t, parquettest.Write(path, []featureRow{
			{"a", base.Add(1 * time.Second), ptr[int64](10)},
			{"a", base.Add(3 * time.Second), nil},
			{"a", base.Add(5 * time.Second), ptr[int64](50)},
			{"b", base.Add(2 * time.Second), ptr[int64](20)},
		}))
		require.NoError(t, session.Exec(t.Context(), fmt.Sprintf(
			"CREATE OR REPLACE TEMPORARY VIEW f USING parquet OPTIONS (path '%s')", path)))
		ent := entityTable(8, 2, base) // k0, k1 alternate at seconds 0..7
		defer ent.Release()
		require.NoError(t, session.CreateView(t.Context(), "e", ent))
		tbl := collect(t, session, `
			WITH u AS (
				SELECT CASE k WHEN 'a' THEN 'k0' ELSE 'k1' END AS k, t, 0 AS o, x, CAST(NULL AS BIGINT) AS row FROM f
				UNION ALL
				SELECT k, t, 1 AS o, CAST(NULL AS BIGINT) AS x, row FROM e
			), w AS (
				SELECT row, o, last_value(x) IGNORE NULLS OVER (
					PARTITION BY k ORDER BY t, o ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS x
				FROM u
			)
			SELECT row, x FROM w WHERE o = 1 ORDER BY row`)
		// k0 at 0,2,4,6 s; k1 at 1,3,5,7 s. k0 = a: 10 from 1s, null at 3s
		// is skipped, 50 from 5s. k1 = b: 20 from 2s.
		want := []*int64{nil, nil, ptr[int64](10), ptr[int64](20), ptr[int64](10), ptr[int64](20), ptr[int64](50), ptr[int64](20)}
		require.Equal(t, []*int64{ptr[int64](0), ptr[int64](1), ptr[int64](2), ptr[int64](3), ptr[int64](4), ptr[int64](5), ptr[int64](6), ptr[int64](7)}, int64s(t, tbl, 0))
		require.Equal(t, want, int64s(t, tbl, 1))
	})

	t.Run("WriteParquet", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		require.NoError(t, session.Exec(t.Context(), fmt.Sprintf("INSERT OVERWRITE DIRECTORY '%s' USING parquet "+
			"SELECT id, CAST(id AS STRING) AS s, TIMESTAMP'2024-01-02 03:04:05' + make_interval(0,0,0,0,0,0,id) AS ts FROM range(1000)", out)))
		parts, err := filepath.Glob(filepath.Join(out, "part-*.parquet"))
		require.NoError(t, err)
		require.NotEmpty(t, parts)
		_, err = os.Stat(filepath.Join(out, "_SUCCESS"))
		require.NoError(t, err)
		var rows int64
		var schema *arrow.Schema
		for _, p := range parts {
			r, err := file.OpenParquetFile(p, false)
			require.NoError(t, err)
			rows += r.NumRows()
			fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
			require.NoError(t, err)
			schema, err = fr.Schema()
			require.NoError(t, err)
			require.NoError(t, r.Close())
		}
		t.Logf("INSERT OVERWRITE DIRECTORY ... USING parquet: %d part files, schema as read back by arrow-go: %v", len(parts), schema)
		require.Equal(t, int64(1000), rows)
		// Spark writes timestamps as INT96 unless told otherwise; arrow-go
		// reads those as nanoseconds.
		require.Equal(t, "timestamp[ns, tz=UTC]", schema.Field(2).Type.String())
	})

	t.Run("WriteParquetMicros", func(t *testing.T) {
		s, err := sparkconnect.Dial(t.Context(), srv.Remote(), sparkconnect.Options{})
		require.NoError(t, err)
		defer func() { require.NoError(t, s.Close()) }()
		require.NoError(t, s.SetConf(t.Context(), map[string]string{"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}))
		out := filepath.Join(t.TempDir(), "out")
		require.NoError(t, s.Exec(t.Context(), fmt.Sprintf("INSERT OVERWRITE DIRECTORY '%s' USING parquet "+
			"SELECT /*+ COALESCE(1) */ TIMESTAMP'2024-01-02 03:04:05.123456' AS ts", out)))
		parts, err := filepath.Glob(filepath.Join(out, "part-*.parquet"))
		require.NoError(t, err)
		require.Len(t, parts, 1)
		r, err := file.OpenParquetFile(parts[0], false)
		require.NoError(t, err)
		defer r.Close()
		fr, err := pqarrow.NewFileReader(r, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		require.NoError(t, err)
		schema, err := fr.Schema()
		require.NoError(t, err)
		require.Equal(t, "timestamp[us, tz=UTC]", schema.Field(0).Type.String())
	})

	require.NoError(t, session.Close())
	// The harness: Stop ends the server (t.Cleanup calls it again).
	began = time.Now()
	require.NoError(t, srv.Stop())
	select {
	case <-srv.Exited():
	default:
		t.Fatal("server still running after Stop")
	}
	t.Logf("stopped in %v", time.Since(began))
}
