//go:build spark

package sparkconnect_test

// The client against a real Spark Connect server (sparktest), one server
// for the package, started in TestMain. docs/scale-out.md reports the
// timings these tests log.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/quiverdata/quiver/internal/sparkconnect"
	"github.com/quiverdata/quiver/internal/testutil/sparktest"
)

var (
	srv     *sparktest.Server
	skipMsg string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if sparktest.Home() == "" {
		skipMsg = sparktest.HomeEnv + " is not set: run " + sparktest.HomeEnv + "=$(scripts/spark.sh) go test -tags 'duckdb_arrow spark' ..."
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "sparkconnect-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	s, err := sparktest.Launch(context.Background(), dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "start spark connect server: %v\n", err)
		return 1
	}
	srv = s
	fmt.Printf("spark connect server %s ready after %v\n", s.Remote(), s.Started.Round(time.Millisecond))
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop spark connect server: %v\n", err)
		code = 1
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "spark connect server log, last lines:\n%s\n", s.LogTail())
	}
	return code
}

// dial opens a session on the package's server, closed at the test's end.
func dial(t *testing.T, opts sparkconnect.Options) *sparkconnect.Session {
	t.Helper()
	if srv == nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("!!! %s, and CI=true: an integration test may not be skipped", skipMsg)
		}
		t.Skipf("!!! SKIPPED, no Spark: %s", skipMsg)
	}
	s, err := sparkconnect.Dial(t.Context(), srv.Remote(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// collect reads a whole query result.
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

func TestQueryTypes(t *testing.T) {
	s := dial(t, sparkconnect.Options{})
	began := time.Now()
	collect(t, s, "SELECT 1")
	t.Logf("first query: %v", time.Since(began))
	began = time.Now()
	collect(t, s, "SELECT 1")
	t.Logf("next query: %v", time.Since(began))

	tbl := collect(t, s, `SELECT CAST(id AS BIGINT) AS i, id * 1.5D AS d, CAST(id AS STRING) AS s,
		TIMESTAMP'2024-01-02 03:04:05.123456' + make_interval(0,0,0,0,0,0,id) AS ts, id % 2 = 0 AS b,
		CAST(NULL AS BIGINT) AS n, array(CAST(id AS DOUBLE), 0.5D) AS a,
		TIMESTAMP_NTZ'2024-01-02 03:04:05' AS ntz, DATE'2024-01-02' AS dt, CAST(1.25 AS DECIMAL(10,2)) AS dec
		FROM range(3)`)
	var types []string
	for _, f := range tbl.Schema().Fields() {
		types = append(types, f.Name+" "+f.Type.String())
	}
	t.Logf("arrow types: %s", strings.Join(types, ", "))
	require.Equal(t, []string{
		"i int64", "d float64", "s utf8", "ts timestamp[us, tz=UTC]", "b bool", "n int64",
		"a list<element: float64>", "ntz timestamp[us]", "dt date32", "dec decimal(10, 2)",
	}, types)
	require.Equal(t, int64(3), tbl.NumRows())
	rec := tableRecord(t, tbl)
	require.Equal(t, []int64{0, 1, 2}, rec.Column(0).(*array.Int64).Int64Values())
	require.Equal(t, []float64{0, 1.5, 3}, rec.Column(1).(*array.Float64).Float64Values())
	require.Equal(t, "2", rec.Column(2).(*array.String).Value(2))
	ts := rec.Column(3).(*array.Timestamp).Value(1)
	require.Equal(t, time.Date(2024, 1, 2, 3, 4, 6, 123456000, time.UTC), ts.ToTime(arrow.Microsecond))
	require.True(t, rec.Column(4).(*array.Boolean).Value(0))
	require.False(t, rec.Column(4).(*array.Boolean).Value(1))
	require.Equal(t, 3, rec.Column(5).NullN())
	lst := rec.Column(6).(*array.List)
	start, end := lst.ValueOffsets(2)
	require.Equal(t, []float64{2, 0.5}, lst.ListValues().(*array.Float64).Float64Values()[start:end])

	// No rows: the schema still comes.
	empty := collect(t, s, "SELECT id, CAST(id AS STRING) AS s FROM range(0)")
	require.Equal(t, int64(0), empty.NumRows())
	t.Logf("empty result schema: %v", empty.Schema())
}

// tableRecord is a table as one record, its chunks concatenated.
func tableRecord(t *testing.T, tbl arrow.Table) arrow.RecordBatch {
	t.Helper()
	var cols []arrow.Array
	for i := range int(tbl.NumCols()) {
		col, err := array.Concatenate(tbl.Column(i).Data().Chunks(), memory.DefaultAllocator)
		require.NoError(t, err)
		cols = append(cols, col)
	}
	rec := array.NewRecordBatch(tbl.Schema(), cols, tbl.NumRows())
	for _, c := range cols {
		c.Release()
	}
	t.Cleanup(rec.Release)
	return rec
}

func TestQueryStreams(t *testing.T) {
	s := dial(t, sparkconnect.Options{})
	collect(t, s, "SELECT 1")
	const q = "SELECT id, CAST(id AS STRING) AS s FROM range(1000000)"
	began := time.Now()
	rr, err := s.Query(t.Context(), q)
	require.NoError(t, err)
	defer rr.Release()
	var first, firstAll time.Duration
	var rows, batches, want int64
	for rr.Next() {
		rec := rr.RecordBatch()
		if batches == 0 {
			first = time.Since(began)
		}
		ids := rec.Column(0).(*array.Int64).Int64Values()
		for _, id := range ids {
			require.Equal(t, want, id)
			want++
		}
		batches++
		rows += rec.NumRows()
	}
	require.NoError(t, rr.Err())
	firstAll = time.Since(began)
	t.Logf("1M rows (bigint, string) streamed: first batch after %v, all %d batches after %v", first, batches, firstAll)
	require.Equal(t, int64(1_000_000), rows)
	require.Greater(t, batches, int64(1))
	require.Less(t, first, firstAll)
}

func TestWideRows(t *testing.T) {
	// 1,024-float embeddings, 4 KiB a row: 10,000-row batches are 41 MB
	// messages, past grpc-go's default 4 MiB.
	const wide = "SELECT id, array_repeat(CAST(id AS FLOAT), 1024) AS e FROM range(20000)"
	small := dial(t, sparkconnect.Options{MaxRecvBytes: 4 << 20})
	_, err := small.Query(t.Context(), wide)
	var se *sparkconnect.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, codes.ResourceExhausted, se.Code)
	require.False(t, se.Analysis())
	t.Logf("wide rows, 4 MiB receive limit: %v", err)

	s := dial(t, sparkconnect.Options{})
	began := time.Now()
	tbl := collect(t, s, wide)
	t.Logf("wide rows, default 256 MiB receive limit: %d rows in %d batches, %v", tbl.NumRows(), len(tbl.Column(0).Data().Chunks()), time.Since(began))
	require.Equal(t, int64(20000), tbl.NumRows())
}

// entities is an entity table of n rows in batches of 64k: k (string), t
// (timestamp UTC, microseconds), row (int64, the input order).
func entities(n, keys int, base time.Time) array.RecordReader {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "k", Type: arrow.BinaryTypes.String},
		{Name: "t", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}},
		{Name: "row", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	var recs []arrow.RecordBatch
	for i := range n {
		b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("k%d", i%keys))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(base.Add(time.Duration(i) * time.Second).UnixMicro()))
		b.Field(2).(*array.Int64Builder).Append(int64(i))
		if (i+1)%65536 == 0 || i == n-1 {
			recs = append(recs, b.NewRecordBatch())
		}
	}
	rr, err := array.NewRecordReader(schema, recs)
	if err != nil {
		panic(err) // the schema is the records' own
	}
	for _, r := range recs {
		r.Release()
	}
	return rr
}

func TestCreateView(t *testing.T) {
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		rows  int
		chunk int
	}{
		{100_000, 0},
		{100_000, 1 << 20}, // several chunks, a union of views
		{1_000_000, 0},
	} {
		t.Run(fmt.Sprintf("%d rows, chunks %d", tc.rows, tc.chunk), func(t *testing.T) {
			s := dial(t, sparkconnect.Options{ChunkBytes: tc.chunk})
			rr := entities(tc.rows, 1000, base)
			defer rr.Release()
			began := time.Now()
			require.NoError(t, s.CreateView(t.Context(), "entities", rr))
			uploaded := time.Since(began)
			tbl := collect(t, s, "SELECT count(*), min(t), max(row), sum(row) FROM entities")
			t.Logf("upload %d rows as a temp view: %v; and count them: %v", tc.rows, uploaded, time.Since(began))
			rec := tableRecord(t, tbl)
			require.Equal(t, int64(tc.rows), rec.Column(0).(*array.Int64).Value(0))
			require.Equal(t, "timestamp[us, tz=UTC]", tbl.Schema().Field(1).Type.String())
			require.Equal(t, base, rec.Column(1).(*array.Timestamp).Value(0).ToTime(arrow.Microsecond))
			require.Equal(t, int64(tc.rows-1), rec.Column(2).(*array.Int64).Value(0))
			require.Equal(t, int64(tc.rows)*int64(tc.rows-1)/2, rec.Column(3).(*array.Int64).Value(0))

			// A join with a server-side table, the result in input order.
			require.NoError(t, s.Exec(t.Context(),
				"CREATE OR REPLACE TEMPORARY VIEW features AS SELECT concat('k', CAST(id AS STRING)) AS k, id * 10 AS x FROM range(500)"))
			began = time.Now()
			rr2, err := s.Query(t.Context(), "SELECT e.row, f.x FROM entities e LEFT JOIN features f ON e.k = f.k ORDER BY e.row")
			require.NoError(t, err)
			defer rr2.Release()
			var n int64
			for rr2.Next() {
				rec := rr2.RecordBatch()
				rows := rec.Column(0).(*array.Int64)
				xs := rec.Column(1).(*array.Int64)
				for i := range rec.NumRows() {
					row := rows.Value(int(i))
					require.Equal(t, n, row)
					if key := row % 1000; key < 500 {
						require.Equal(t, key*10, xs.Value(int(i)))
					} else {
						require.True(t, xs.IsNull(int(i)))
					}
					n++
				}
			}
			require.NoError(t, rr2.Err())
			require.Equal(t, int64(tc.rows), n)
			t.Logf("join %d uploaded rows with a view, in input order: %v", tc.rows, time.Since(began))
		})
	}

	s := dial(t, sparkconnect.Options{})
	empty := entities(0, 1, base)
	defer empty.Release()
	require.NoError(t, s.CreateView(t.Context(), "nothing", empty))
	tbl := collect(t, s, "SELECT * FROM nothing")
	require.Equal(t, int64(0), tbl.NumRows())
	require.Equal(t, 3, len(tbl.Schema().Fields()))
	require.ErrorContains(t, s.CreateView(t.Context(), "bad name", empty), "letters, digits and underscores")
}

func TestCancel(t *testing.T) {
	// A query that runs for minutes on two cores.
	const slow = "SELECT count(*) FROM range(200000) a CROSS JOIN range(200000) b WHERE a.id * b.id = -1"
	s := dial(t, sparkconnect.Options{})
	collect(t, s, "SELECT 1")
	for _, how := range []string{"context", "release"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			began := time.Now()
			if how == "context" {
				time.AfterFunc(2*time.Second, cancel)
				_, err := s.Query(ctx, slow)
				t.Logf("context cancelled after 2s: Query returned after %v: %v", time.Since(began), err)
				require.ErrorIs(t, err, context.Canceled)
			} else {
				// Release before the end, on a query that has begun to
				// send: the rest is not computed.
				// 2,000 partitions of 1M rows: the first arrive at once,
				// the whole would take an hour.
				rr, err := s.Query(ctx, "SELECT id FROM range(0, 2000000000, 1, 2000)")
				require.NoError(t, err)
				require.True(t, rr.Next())
				rr.Release()
				t.Logf("released after %v (query err %v)", time.Since(began), err)
			}
			// The operation is gone from the server within a second: an
			// interrupt of everything the session runs finds nothing.
			began = time.Now()
			for {
				ids, err := s.Interrupt(t.Context())
				require.NoError(t, err)
				if len(ids) == 0 {
					break
				}
				require.Less(t, time.Since(began), time.Second, "still running on the server: %v", ids)
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("no operation left on the server %v after the cancel", time.Since(began))
			// And its cores are free: a query that needs both takes what
			// it takes on an idle server.
			began = time.Now()
			tbl := collect(t, s, "SELECT count(*) FROM range(10000000)")
			next := time.Since(began)
			t.Logf("next query after the cancel: %v", next)
			require.Equal(t, int64(1), tbl.NumRows())
			require.Less(t, next, 5*time.Second, "the cancelled query still holds the cores")
		})
	}
	// The other session was not disturbed, and the interrupted one runs on.
	collect(t, s, "SELECT 1")
}

func TestErrors(t *testing.T) {
	s := dial(t, sparkconnect.Options{})
	for _, tc := range []struct {
		query, class, sqlState string
		analysis               bool
		msg                    string
	}{
		{"SELECT nope FROM range(3)", "UNRESOLVED_COLUMN.WITH_SUGGESTION", "42703", true, "with name `nope` cannot be resolved"},
		{"SELECT * FROM no_such_table", "TABLE_OR_VIEW_NOT_FOUND", "42P01", true, "`no_such_table` cannot be found"},
		{"SELEC 1", "PARSE_SYNTAX_ERROR", "42601", true, "Syntax error"},
		{"SELECT CAST('x' AS INT)", "CAST_INVALID_INPUT", "22018", false, "cannot be cast"},
		{"SELECT * FROM parquet.`/nonexistent/quiver-test`", "PATH_NOT_FOUND", "42K03", true, "Path does not exist"},
	} {
		_, err := s.Query(t.Context(), tc.query)
		var se *sparkconnect.Error
		require.ErrorAs(t, err, &se, tc.query)
		t.Logf("%s\n  error: %v\n  class %q, sqlstate %q, exception %s, grpc %s, parameters %v",
			tc.query, err, se.Class, se.SQLState, se.Exception, se.Code, se.Parameters)
		require.Equal(t, tc.class, se.Class, tc.query)
		require.Equal(t, tc.sqlState, se.SQLState, tc.query)
		require.Equal(t, tc.analysis, se.Analysis(), tc.query)
		require.Equal(t, tc.analysis, sparkconnect.IsAnalysis(err), tc.query)
		require.Contains(t, se.Message, tc.msg, tc.query)
		require.NotContains(t, se.Message, "SQLSTATE", tc.query)
		require.NotContains(t, se.Message, "Project", tc.query)
		require.NotContains(t, se.Message, "["+tc.class+"]", tc.query)
	}
	require.Error(t, s.Exec(t.Context(), "DROP VIEW no_such_view"))
	require.NoError(t, s.Exec(t.Context(), "DROP VIEW IF EXISTS no_such_view"))

	// A bad remote, and a server that is not there.
	_, err := sparkconnect.Dial(t.Context(), "sc://127.0.0.1/;bogus=1", sparkconnect.Options{})
	require.ErrorContains(t, err, `unknown setting "bogus"`)
	_, err = sparkconnect.Dial(t.Context(), "sc://127.0.0.1:1", sparkconnect.Options{})
	var se *sparkconnect.Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, codes.Unavailable, se.Code)
	t.Logf("no server: %v", err)
	require.False(t, errors.Is(err, context.Canceled))
}

func TestConf(t *testing.T) {
	s := dial(t, sparkconnect.Options{})
	require.NoError(t, s.SetConf(t.Context(), map[string]string{
		"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
		"spark.sql.shuffle.partitions":          "3",
	}))
	got, err := s.Conf(t.Context(), "spark.sql.shuffle.partitions")
	require.NoError(t, err)
	require.Equal(t, "3", got)
	// Settings are the session's own.
	other := dial(t, sparkconnect.Options{})
	got, err = other.Conf(t.Context(), "spark.sql.shuffle.partitions")
	require.NoError(t, err)
	require.Equal(t, "2", got)
	// Close releases the session: its views go with it.
	s2, err := sparkconnect.Dial(t.Context(), srv.Remote(), sparkconnect.Options{})
	require.NoError(t, err)
	require.NoError(t, s2.Exec(t.Context(), "CREATE TEMPORARY VIEW v AS SELECT 1"))
	require.NoError(t, s2.Close())
	again, err := sparkconnect.Dial(t.Context(), srv.Remote()+"/;session_id="+s2.ID(), sparkconnect.Options{})
	if err == nil {
		_, err = again.Query(t.Context(), "SELECT * FROM v")
		_ = again.Close()
	}
	t.Logf("a released session again: %v", err)
	require.Error(t, err)

	// Header settings (x-...) travel as gRPC metadata; the server takes
	// calls that carry them.
	h, err := sparkconnect.Dial(t.Context(), srv.Remote()+"/;x-quiver-probe=1", sparkconnect.Options{})
	require.NoError(t, err)
	rr, err := h.Query(t.Context(), "SELECT 1")
	require.NoError(t, err)
	rr.Release()
	require.NoError(t, h.Close())
}
