//go:build spark

package sparktest_test

// What the Go Spark Connect client (github.com/apache/spark-connect-go,
// pinned in go.mod) can do against the server this package starts: the
// operations an offline engine on Spark needs, one subtest each, against
// one server. docs/scale-out.md reports the findings and the timings these
// tests log.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/spark-connect-go/spark/sparkerrors"
	"github.com/apache/spark-connect-go/spark/sql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

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
func collect(ctx context.Context, t *testing.T, s sql.SparkSession, query string) arrow.Table {
	t.Helper()
	df, err := s.Sql(ctx, query)
	require.NoError(t, err, query)
	tbl, err := df.ToArrow(ctx)
	require.NoError(t, err, query)
	t.Cleanup((*tbl).Release)
	return *tbl
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
func entityTable(n int, keys int, base time.Time) arrow.Table {
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
	return array.NewTableFromRecords(schema, []arrow.RecordBatch{rec})
}

func TestClient(t *testing.T) {
	srv := sparktest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	session, err := sql.NewSessionBuilder().Remote(srv.Remote()).Build(ctx)
	require.NoError(t, err)
	began := time.Now()
	collect(ctx, t, session, "SELECT 1")
	t.Logf("first query: %v", time.Since(began))
	for range 2 {
		began = time.Now()
		collect(ctx, t, session, "SELECT 1")
		t.Logf("next query: %v", time.Since(began))
	}

	t.Run("SQLToArrow", func(t *testing.T) {
		tbl := collect(ctx, t, session, `SELECT CAST(1 AS BIGINT) AS i, 'a' AS s, 1.5D AS d,
			TIMESTAMP'2024-01-02 03:04:05.123456' AS ts, TIMESTAMP_NTZ'2024-01-02 03:04:05' AS ntz,
			DATE'2024-01-02' AS dt, CAST(NULL AS BIGINT) AS n, CAST(1.25 AS DECIMAL(10,2)) AS dec`)
		var types []string
		for _, f := range tbl.Schema().Fields() {
			types = append(types, f.Name+" "+f.Type.String())
		}
		t.Logf("arrow types: %s", strings.Join(types, ", "))
		require.Equal(t, int64(1), tbl.NumRows())

		began := time.Now()
		big := collect(ctx, t, session, "SELECT id, CAST(id AS STRING) AS s FROM range(1000000)")
		t.Logf("1M rows (bigint, string) to Arrow: %v, %d record batches", time.Since(began), len(big.Column(0).Data().Chunks()))
		require.Equal(t, int64(1_000_000), big.NumRows())
	})

	t.Run("WideRows", func(t *testing.T) {
		// Spark sends up to 10,000 rows per Arrow batch, each batch one
		// gRPC message; grpc-go takes at most 4 MiB per message unless told
		// otherwise, and the client does not tell it. 1,024-float
		// embeddings are 4 KiB a row.
		const wide = "SELECT id, array_repeat(CAST(id AS FLOAT), 1024) AS e FROM range(20000)"
		df, err := session.Sql(ctx, wide)
		require.NoError(t, err)
		_, err = df.ToArrow(ctx)
		require.ErrorContains(t, err, "received message larger than max")
		t.Logf("wide rows, default client: %v", err)

		tap, err := newTapBuilder(srv.Remote())
		require.NoError(t, err)
		tap.maxRecv = 256 << 20
		s, err := sql.NewSessionBuilder().WithChannelBuilder(tap).Build(ctx)
		require.NoError(t, err)
		began := time.Now()
		tbl := collect(ctx, t, s, wide)
		t.Logf("wide rows, 256 MiB receive limit: %d rows in %d batches, %v", tbl.NumRows(), len(tbl.Column(0).Data().Chunks()), time.Since(began))
		require.Equal(t, int64(20000), tbl.NumRows())
	})

	t.Run("StreamOverProtocol", func(t *testing.T) {
		// ExecutePlan straight over gRPC: each Arrow batch is in hand as it
		// arrives, long before the last one.
		conn, err := grpc.NewClient(srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
		require.NoError(t, err)
		defer func() { require.NoError(t, conn.Close()) }()
		began := time.Now()
		var first time.Duration
		var rows, batches int64
		err = streamSQL(ctx, conn, uuid.NewString(), "SELECT id, CAST(id AS STRING) AS s FROM range(1000000)", func(rec arrow.RecordBatch) error {
			if batches == 0 {
				first = time.Since(began)
			}
			batches++
			rows += rec.NumRows()
			return nil
		})
		require.NoError(t, err)
		t.Logf("1M rows streamed over the protocol: first batch after %v, all %d batches after %v", first, batches, time.Since(began))
		require.Equal(t, int64(1_000_000), rows)
	})

	t.Run("ReadParquet", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "features.parquet")
		base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		require.NoError(t, parquettest.Write(path, []featureRow{
			{"a", base, ptr[int64](1)},
			{"a", base.Add(time.Hour), nil},
			{"b", base, ptr[int64](3)},
		}))
		df, err := session.Read().Format("parquet").Load(path)
		require.NoError(t, err)
		require.NoError(t, df.CreateOrReplaceTempView(ctx, "features"))
		tbl := collect(ctx, t, session, "SELECT k, count(*) AS n, max(x) AS x FROM features GROUP BY k ORDER BY k")
		require.Equal(t, []string{"a", "b"}, strs(t, tbl, 0))
		require.Equal(t, []*int64{ptr[int64](2), ptr[int64](1)}, int64s(t, tbl, 1))
		require.Equal(t, []*int64{ptr[int64](1), ptr[int64](3)}, int64s(t, tbl, 2))
		// The same file straight from SQL.
		tbl = collect(ctx, t, session, fmt.Sprintf("SELECT count(*) FROM parquet.`%s`", path))
		require.Equal(t, []*int64{ptr[int64](3)}, int64s(t, tbl, 0))
	})

	t.Run("UploadArrow", func(t *testing.T) {
		base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, n := range []int{100_000, 1_000_000} {
			ent := entityTable(n, 1000, base)
			began := time.Now()
			df, err := session.CreateDataFrameFromArrow(ctx, ent)
			require.NoError(t, err)
			require.NoError(t, df.CreateOrReplaceTempView(ctx, "entities"))
			tbl := collect(ctx, t, session, "SELECT count(*), min(t), max(row) FROM entities")
			t.Logf("upload %d entity rows as a temp view and count them: %v", n, time.Since(began))
			require.Equal(t, []*int64{ptr(int64(n))}, int64s(t, tbl, 0))
			require.Equal(t, "timestamp[us, tz=UTC]", tbl.Schema().Field(1).Type.String())
			ent.Release()
		}
		// A result comes back in its ORDER BY order, across batches and
		// the partitions of a global sort.
		began := time.Now()
		tbl := collect(ctx, t, session, "SELECT row FROM entities ORDER BY t DESC")
		t.Logf("1M rows sorted, to Arrow: %v", time.Since(began))
		rows := int64s(t, tbl, 0)
		require.Len(t, rows, 1_000_000)
		for i, r := range rows {
			if *r != int64(len(rows)-1-i) {
				t.Fatalf("row %d is %d, want %d", i, *r, len(rows)-1-i)
			}
		}
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
		df, err := session.Read().Format("parquet").Load(path)
		require.NoError(t, err)
		require.NoError(t, df.CreateOrReplaceTempView(ctx, "f"))
		ent := entityTable(8, 2, base) // k0, k1 alternate at seconds 0..7
		defer ent.Release()
		df, err = session.CreateDataFrameFromArrow(ctx, ent)
		require.NoError(t, err)
		require.NoError(t, df.CreateOrReplaceTempView(ctx, "e"))
		tbl := collect(ctx, t, session, `
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
		df, err := session.Sql(ctx, "SELECT id, CAST(id AS STRING) AS s, TIMESTAMP'2024-01-02 03:04:05' + make_interval(0,0,0,0,0,0,id) AS ts FROM range(1000)")
		require.NoError(t, err)
		require.NoError(t, df.Write().Format("parquet").Mode("overwrite").Save(ctx, out))
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
		t.Logf("df.write.parquet: %d part files, schema as read back by arrow-go: %v", len(parts), schema)
		require.Equal(t, int64(1000), rows)
		// Spark writes timestamps as INT96 unless told otherwise; arrow-go
		// reads those as nanoseconds.
		require.Equal(t, "timestamp[ns, tz=UTC]", schema.Field(2).Type.String())
	})

	t.Run("WriteParquetMicros", func(t *testing.T) {
		s, err := sql.NewSessionBuilder().Remote(srv.Remote()).Build(ctx)
		require.NoError(t, err)
		require.NoError(t, s.Config().Set(ctx, "spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS"))
		out := filepath.Join(t.TempDir(), "out")
		df, err := s.Sql(ctx, "SELECT TIMESTAMP'2024-01-02 03:04:05.123456' AS ts")
		require.NoError(t, err)
		require.NoError(t, df.Coalesce(ctx, 1).Write().Format("parquet").Mode("overwrite").Save(ctx, out))
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

	t.Run("Cancel", func(t *testing.T) {
		// A query that runs for minutes on two cores.
		const slow = "SELECT count(*) FROM range(200000) a CROSS JOIN range(200000) b WHERE a.id * b.id = -1"
		tap, err := newTapBuilder(srv.Remote())
		require.NoError(t, err)
		s, err := sql.NewSessionBuilder().WithChannelBuilder(tap).Build(ctx)
		require.NoError(t, err)

		// Cancelling the context ends the call at once, but not the query:
		// the server still has it running a few seconds later.
		df, err := s.Sql(ctx, slow)
		require.NoError(t, err)
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		defer qcancel()
		began := time.Now()
		_, err = df.ToArrow(qctx)
		t.Logf("context cancelled after 2s: the call returned after %v: %v", time.Since(began), err)
		require.Error(t, err)
		op := tap.lastOperation()
		time.Sleep(3 * time.Second)
		ids, err := tap.interrupt(ctx, "")
		require.NoError(t, err)
		t.Logf("3s after the cancel, Interrupt(ALL) interrupted %v (the cancelled operation is %s)", ids, op)
		require.Contains(t, ids, op, "the server had already dropped the cancelled query")

		// Interrupt by operation id, through the protocol, while the call
		// waits.
		df, err = s.Sql(ctx, slow)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() {
			_, err := df.ToArrow(ctx)
			done <- err
		}()
		time.Sleep(2 * time.Second)
		op = tap.lastOperation()
		began = time.Now()
		ids, err = tap.interrupt(ctx, op)
		require.NoError(t, err)
		require.Equal(t, []string{op}, ids)
		err = <-done
		t.Logf("Interrupt(operation) answered and the call returned after %v: %v", time.Since(began), err)
		require.Error(t, err)
		var se *sparkerrors.SparkError
		if errors.As(err, &se) {
			t.Logf("  class %q, grpc %s", se.ErrorClass, se.Code)
		}
		began = time.Now()
		collect(ctx, t, session, "SELECT count(*) FROM range(1000000)")
		t.Logf("next query after the interrupt: %v", time.Since(began))
	})

	t.Run("AnalysisError", func(t *testing.T) {
		collectErr := func(query string) error {
			df, err := session.Sql(ctx, query)
			if err != nil {
				return err
			}
			_, err = df.ToArrow(ctx)
			return err
		}
		for _, q := range []string{
			"SELECT nope FROM range(3)",
			"SELECT * FROM no_such_table",
			"SELECT CAST('x' AS INT)",
			fmt.Sprintf("SELECT * FROM parquet.`%s`", filepath.Join(t.TempDir(), "missing")),
		} {
			err := collectErr(q)
			require.Error(t, err, q)
			var se *sparkerrors.SparkError
			ok := errors.As(err, &se)
			t.Logf("%s\n  error: %v\n  SparkError: %v", q, err, ok)
			if ok {
				keys := slices.Sorted(maps.Keys(se.Parameters))
				t.Logf("  class %q, sqlstate %q, grpc %s, parameters %v, message %q", se.ErrorClass, se.SqlState, se.Code, keys, se.Message)
			}
		}
	})

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
