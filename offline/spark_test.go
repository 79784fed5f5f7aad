//go:build spark

package offline

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/internal/testutil/sparktest"
	"github.com/quiverdata/quiver/internal/testutil/txtar"
	"github.com/quiverdata/quiver/storage"
)

// The Spark engine against a real Spark Connect server: the golden cases
// give the DuckDB engine's exact output (or an error of the same kind),
// the randomized scenarios give the brute-force reference's training
// sets, and both engines give the same Arrow schema, values and order,
// and the same latest rows.
func TestSparkEngine(t *testing.T) {
	s3a, haveS3A := sparktest.WithS3A(s3test.AccessKey, s3test.SecretKey)
	srv := sparktest.Start(t, s3a)
	open := func(t testing.TB, dataRoot string) *Engine {
		eng, err := Open(Options{DataRoot: dataRoot, Threads: 2, Spark: SparkOptions{Remote: srv.Remote()}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, eng.Close()) })
		return eng
	}
	ctx := context.Background()

	t.Run("golden", func(t *testing.T) {
		files, err := filepath.Glob(filepath.Join("testdata", "pit", "*.txtar"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		for _, file := range files {
			t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
				data, err := os.ReadFile(file)
				require.NoError(t, err)
				a := txtar.Parse(data)
				want, ok := a.Get("want")
				require.True(t, ok)
				got := runGolden(t, a, open)
				switch {
				case strings.Contains(string(a.Files[0].Data), "kind: duckdb_query"):
					require.Contains(t, got, "is DuckDB SQL, which the Spark engine does not run")
					require.Contains(t, got, "(invalid request)")
				case strings.HasPrefix(string(want), "error:"):
					// The words differ (Spark's type names, its messages);
					// the kind of error does not.
					require.True(t, strings.HasPrefix(got, "error:"), "want an error, got\n%s", got)
					require.Equal(t, strings.Contains(string(want), "(invalid request)"), strings.Contains(got, "(invalid request)"), "want\n%sgot\n%s", want, got)
				default:
					require.Equal(t, string(want), got)
				}
			})
		}
	})

	t.Run("reference", func(t *testing.T) {
		sizes := []int{3, 10, 40}
		for seed := range 13 {
			size := sizes[seed%len(sizes)]
			switch {
			case seed == 12:
				// Over 256 rows in an entity file: row numbers past 32 bits.
				size = 3000
			case seed%6 == 5:
				size = 400
			}
			t.Run(fmt.Sprintf("seed%d_size%d", seed, size), func(t *testing.T) {
				s := newScenario(t, uint64(seed), size)
				eng := open(t, filepath.Join(s.dir, "data"))
				entities := EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))
				if seed%3 == 2 {
					entities = EntitiesFromArrow(s.arrowEntities(t, 7))
				}
				s.checkRun(t, eng, s.request(entities))
			})
		}
	})

	t.Run("as of", func(t *testing.T) {
		for seed := range 4 {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				s := newAsOfScenario(t, uint64(seed), 40)
				eng := open(t, filepath.Join(s.dir, "data"))
				req := s.request(EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet")))
				req.AsOf = *s.asOf
				s.checkRun(t, eng, req)
			})
		}
	})

	t.Run("as of column", func(t *testing.T) {
		for seed := range 3 {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				s := newAsOfScenario(t, uint64(60+seed), 40)
				s.asOf, s.asOfRowTime = nil, true
				eng := open(t, filepath.Join(s.dir, "data"))
				entities := EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))
				if seed == 1 {
					entities = EntitiesFromArrow(s.arrowEntities(t, 9))
				}
				req := s.request(entities)
				req.AsOfColumn = DefaultTimestampColumn
				s.checkRun(t, eng, req)
			})
		}
	})

	// Spines: the generated entity rows, and the training set over them,
	// equal DuckDB's (events, a cadence, as of a time).
	t.Run("spine", func(t *testing.T) {
		for seed := range 3 {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				s := newAsOfScenario(t, uint64(20+seed), 30)
				root := filepath.Join(s.dir, "data")
				duck, spark := openEngine(t, root), open(t, root)
				spine := Spine{View: "drivers", Start: *at(0), End: *at(6 + seed)}
				if seed == 1 {
					spine.Every = 2 * time.Minute
				}
				req := func() *Request {
					r := &Request{Defs: s.defs, Entities: EntitiesFromSpine(spine), Features: []string{"drivers:*"}}
					if seed == 2 {
						r.AsOf = *s.asOf
					}
					return r
				}
				rr, err := duck.TrainingSet(ctx, req())
				require.NoError(t, err)
				wantSchema, want := readAll(t, rr)
				rr, err = spark.TrainingSet(ctx, req())
				require.NoError(t, err)
				gotSchema, got := readAll(t, rr)
				requireSameSchema(t, wantSchema, gotSchema)
				require.Equal(t, want, got)
			})
		}
	})

	t.Run("same as duckdb", func(t *testing.T) {
		for seed := range 4 {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				s := newScenario(t, uint64(200+seed), 60)
				root := filepath.Join(s.dir, "data")
				duck, spark := openEngine(t, root), open(t, root)
				req := func() *Request { return s.request(EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))) }
				if seed%2 == 1 {
					req = func() *Request { return s.request(EntitiesFromArrow(s.arrowEntities(t, 11))) }
				}
				rr, err := duck.TrainingSet(ctx, req())
				require.NoError(t, err)
				wantSchema, want := readAll(t, rr)
				rr, err = spark.TrainingSet(ctx, req())
				require.NoError(t, err)
				gotSchema, got := readAll(t, rr)
				requireSameSchema(t, wantSchema, gotSchema)
				require.Equal(t, want, got)

				sch, err := spark.TrainingSetSchema(ctx, req())
				require.NoError(t, err)
				requireSameSchema(t, wantSchema, sch)

				for _, view := range []string{"drivers", "riders", "pairs"} {
					lr := &LatestRequest{Defs: s.defs, View: view, End: t0.Add(24 * time.Hour)}
					rr, err := duck.Latest(ctx, lr)
					require.NoError(t, err)
					wantSchema, want := readAll(t, rr)
					rr, err = spark.Latest(ctx, lr)
					require.NoError(t, err)
					gotSchema, got := readAll(t, rr)
					requireSameSchema(t, wantSchema, gotSchema)
					sortRows(want)
					sortRows(got)
					require.Equal(t, want, got, "latest rows of %s", view)
				}
			})
		}
	})

	// An Arrow entity table as pandas makes them (nanosecond timestamps,
	// int32 and float32 columns, large strings, dates, booleans) gives
	// DuckDB's training set, its entity columns of their own types.
	t.Run("arrow types", func(t *testing.T) {
		s := newScenario(t, 5, 200)
		root := filepath.Join(s.dir, "data")
		duck, spark := openEngine(t, root), open(t, root)
		rr, err := duck.TrainingSet(ctx, s.request(EntitiesFromArrow(pandasEntities(t, s))))
		require.NoError(t, err)
		wantSchema, want := readAll(t, rr)
		rr, err = spark.TrainingSet(ctx, s.request(EntitiesFromArrow(pandasEntities(t, s))))
		require.NoError(t, err)
		gotSchema, got := readAll(t, rr)
		requireSameSchema(t, wantSchema, gotSchema)
		require.Equal(t, want, got)
	})

	t.Run("out", func(t *testing.T) {
		// Enough entity rows for the sort to span both shuffle partitions:
		// the one file the cluster writes must still be in input order.
		s := newScenario(t, 7, 3000)
		root := filepath.Join(s.dir, "data")
		duck, spark := openEngine(t, root), open(t, root)
		client, err := Open(Options{DataRoot: root, Threads: 2, Spark: SparkOptions{Remote: srv.Remote(), ClientOut: true}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, client.Close()) })
		ents := filepath.Join(s.dir, "entities-*.parquet")
		dir := t.TempDir()
		wantCols, want := saveAndHead(t, duck, s.request(EntitiesFromParquet(ents)), filepath.Join(dir, "duck.parquet"))
		wantSchema := parquetSchema(t, filepath.Join(dir, "duck.parquet"))
		for name, eng := range map[string]*Engine{"cluster": spark, "client": client} {
			path := filepath.Join(dir, name+".parquet")
			gotCols, got := saveAndHead(t, eng, s.request(EntitiesFromParquet(ents)), path)
			require.Equal(t, wantCols, gotCols, name)
			require.Len(t, got, len(s.entities), name)
			require.Equal(t, want, got, name)
			require.True(t, wantSchema.Equal(parquetSchema(t, path)), "%s: %s\nwant %s", name, parquetSchema(t, path), wantSchema)
			pf, err := file.OpenParquetFile(path, false)
			require.NoError(t, err)
			createdBy := pf.MetaData().GetCreatedBy()
			for i := range pf.NumRowGroups() {
				require.LessOrEqual(t, pf.MetaData().RowGroup(i).NumRows(), int64(SaveBatchRows))
			}
			require.NoError(t, pf.Close())
			if name == "cluster" {
				require.Contains(t, createdBy, "parquet-mr", "the cluster wrote the file")
			} else {
				require.NotContains(t, createdBy, "parquet-mr", "the client wrote the file")
			}
			left, err := os.ReadDir(dir)
			require.NoError(t, err)
			for _, e := range left {
				require.NotContains(t, e.Name(), ".parts", "the cluster's directory is removed")
			}
		}
		// A saved set is not replaced without Overwrite, on the cluster too.
		_, err = spark.Save(ctx, s.request(EntitiesFromParquet(ents)), filepath.Join(dir, "cluster.parquet"), SaveOptions{})
		require.ErrorIs(t, err, fs.ErrExist)
	})

	// Sources and entity files on an S3-protocol store, read by the cluster
	// through s3a with the endpoint and path style of storage.s3; the
	// training set is DuckDB's over the same files kept locally, and the
	// cluster writes the saved set (reading S3, writing the shared disk).
	t.Run("s3", func(t *testing.T) {
		sparktest.RequireS3A(t, haveS3A)
		objects := s3test.Start(t)
		s := newScenario(t, 11, 300)
		upload(t, objects, s.dir, "sc/")
		eng, err := Open(Options{DataRoot: s3URI(objects, "sc/data"), Threads: 2, Storage: storage.Config{S3: objects.Options()},
			Spark: SparkOptions{Remote: srv.Remote()}})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, eng.Close()) })
		duck := openEngine(t, filepath.Join(s.dir, "data"))

		rr, err := duck.TrainingSet(ctx, s.request(EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))))
		require.NoError(t, err)
		wantSchema, want := readAll(t, rr)
		rr, err = eng.TrainingSet(ctx, s.request(EntitiesFromParquet(s3URI(objects, "sc/entities-*.parquet"))))
		require.NoError(t, err)
		gotSchema, got := readAll(t, rr)
		requireSameSchema(t, wantSchema, gotSchema)
		require.Equal(t, want, got)
		s.check(t, got)

		out := filepath.Join(t.TempDir(), "s3.parquet")
		_, err = eng.Save(ctx, s.request(EntitiesFromParquet(s3URI(objects, "sc/entities-*.parquet"))), out, SaveOptions{})
		require.NoError(t, err)
		_, rows, err := duck.Head(ctx, out, 1<<20)
		require.NoError(t, err)
		require.Len(t, rows, len(s.entities))

		lr := &LatestRequest{Defs: s.defs, View: "drivers", End: t0.Add(24 * time.Hour)}
		rr, err = duck.Latest(ctx, lr)
		require.NoError(t, err)
		_, wantLatest := readAll(t, rr)
		rr, err = eng.Latest(ctx, lr)
		require.NoError(t, err)
		_, gotLatest := readAll(t, rr)
		sortRows(wantLatest)
		sortRows(gotLatest)
		require.Equal(t, wantLatest, gotLatest)
	})

	t.Run("explain", func(t *testing.T) {
		s := newScenario(t, 3, 10)
		eng := open(t, filepath.Join(s.dir, "data"))
		out, err := eng.Explain(ctx, s.request(EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))), false)
		require.NoError(t, err)
		require.Contains(t, out, "last(")
		require.Contains(t, out, "Physical Plan")
	})
}

// requireSameSchema checks that two results have the same columns, with
// the same Arrow types (list element names aside).
func requireSameSchema(t *testing.T, want, got *arrow.Schema) {
	t.Helper()
	require.Equal(t, len(want.Fields()), len(got.Fields()), "want %s\ngot %s", want, got)
	for i, w := range want.Fields() {
		g := got.Field(i)
		require.Equal(t, w.Name, g.Name)
		require.True(t, sameType(w.Type, g.Type), "column %s: want %s, got %s", w.Name, w.Type, g.Type)
	}
}

func sameType(a, b arrow.DataType) bool {
	la, ok1 := a.(*arrow.ListType)
	lb, ok2 := b.(*arrow.ListType)
	if ok1 && ok2 {
		return sameType(la.Elem(), lb.Elem())
	}
	return arrow.TypeEqual(a, b)
}

// sortRows orders rows by their printed values, for results whose order
// is not defined.
func sortRows(rows []map[string]any) {
	sort.Slice(rows, func(i, j int) bool { return fmt.Sprint(rows[i]) < fmt.Sprint(rows[j]) })
}

// saveAndHead saves the training set to path and reads it back.
func saveAndHead(t *testing.T, eng *Engine, req *Request, path string) ([]string, [][]string) {
	t.Helper()
	res, err := eng.Save(context.Background(), req, path, SaveOptions{})
	require.NoError(t, err)
	cols, rows, err := eng.Head(context.Background(), path, 1<<20)
	require.NoError(t, err)
	require.Equal(t, int64(len(rows)), res.Rows)
	return cols, rows
}

// parquetSchema is the Arrow schema a reader of the Parquet file sees.
func parquetSchema(t *testing.T, path string) *arrow.Schema {
	t.Helper()
	pf, err := file.OpenParquetFile(path, false)
	require.NoError(t, err)
	defer pf.Close()
	sc, err := pqarrow.FromParquet(pf.MetaData().Schema, &pqarrow.ArrowReadProperties{}, nil)
	require.NoError(t, err)
	return sc
}

// pandasEntities is the scenario's Arrow entity table with the types a
// pandas DataFrame converts to: timestamp[ns], and extra columns of
// int32, float32, large_string, date32 and bool.
func pandasEntities(t *testing.T, s *scenario) array.RecordReader {
	t.Helper()
	in := s.arrowEntities(t, 64)
	tsType := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	if s.naiveEntities {
		tsType = &arrow.TimestampType{Unit: arrow.Nanosecond}
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "rider", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "event_timestamp", Type: tsType, Nullable: true},
		{Name: "label", Type: arrow.PrimitiveTypes.Int32},
		{Name: "weight", Type: arrow.PrimitiveTypes.Float32},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32},
		{Name: "flag", Type: arrow.FixedWidthTypes.Boolean},
	}, nil)
	var recs []arrow.RecordBatch
	for in.Next() {
		rec := in.RecordBatch()
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		ids, riders, ts, labels := rec.Column(0).(*array.Int64), rec.Column(1).(*array.String), rec.Column(2).(*array.Timestamp), rec.Column(3).(*array.Int64)
		for i := range int(rec.NumRows()) {
			if ids.IsNull(i) {
				b.Field(0).AppendNull()
			} else {
				b.Field(0).(*array.Int64Builder).Append(ids.Value(i))
			}
			if riders.IsNull(i) {
				b.Field(1).AppendNull()
			} else {
				b.Field(1).(*array.LargeStringBuilder).Append(riders.Value(i))
			}
			if ts.IsNull(i) {
				b.Field(2).AppendNull()
			} else {
				// Whole microseconds: Spark keeps no finer time.
				b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(int64(ts.Value(i)) * 1000))
			}
			l := labels.Value(i)
			b.Field(3).(*array.Int32Builder).Append(int32(l))
			b.Field(4).(*array.Float32Builder).Append(float32(l) / 4)
			b.Field(5).(*array.Date32Builder).Append(arrow.Date32(20000 + l%30))
			b.Field(6).(*array.BooleanBuilder).Append(l%3 == 0)
		}
		recs = append(recs, b.NewRecordBatch())
		b.Release()
	}
	require.NoError(t, in.Err())
	rr, err := array.NewRecordReader(schema, recs)
	require.NoError(t, err)
	for _, r := range recs {
		r.Release()
	}
	t.Cleanup(rr.Release)
	return rr
}
