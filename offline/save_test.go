package offline

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

func TestDatasetFormat(t *testing.T) {
	for path, want := range map[string]string{
		"a.arrow": FormatArrow, "a.ARROWS": FormatArrow, "d/a.feather": FormatArrow, "a.ipc": FormatArrow,
		"a.parquet": FormatParquet, "a.Parquet": FormatParquet, "a.csv": "", "a": "", "arrow": "",
	} {
		require.Equal(t, want, DatasetFormat(path), path)
	}
}

// saveFixture is a data root with a feature view of ten things and an
// on-demand view over it, and an entity table of rows entity rows
// (thing i%10, in order).
func saveFixture(t *testing.T, rows int) (eng *Engine, defs *registry.Definitions, entities string) {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	require.NoError(t, os.MkdirAll(data, 0o755))
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT i::BIGINT AS id, TIMESTAMP '2026-01-01' + to_minutes(i) AS ts, i * 1.5 AS v
		FROM range(10) r(i)) TO '%s' (FORMAT parquet)`, filepath.Join(data, "src.parquet")))
	require.NoError(t, err)
	entities = filepath.Join(dir, "entities.parquet")
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT (i %% 10)::BIGINT AS id, TIMESTAMP '2026-01-02' AS event_timestamp, i AS label
		FROM range(%d) r(i) ORDER BY i) TO '%s' (FORMAT parquet)`, rows, entities))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	defs, errs := registry.ParseDefinitions("s", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(`
entities: [{name: thing, join_keys: [{name: id, type: int64}]}]
sources: [{name: src, kind: parquet, path: src.parquet, timestamp_field: ts}]
feature_views:
  - {name: fv, entities: [thing], source: src, ttl: 30d, features: [{name: v, type: float64}]}
on_demand_feature_views:
  - {name: od, inputs: [fv], features: [{name: twice, type: float64, expr: "fv.v * 2.0"}]}
`)})
	require.NoError(t, errs.Err())
	return openEngine(t, data), defs, entities
}

// checkSaved reads a saved set back: its units (batches or row groups)
// hold at most SaveBatchRows rows each, and its label column counts 0,
// 1, 2, ... in entity order.
func checkSaved(t *testing.T, path string, rows int) {
	t.Helper()
	var labels []int64
	var units []int64
	switch DatasetFormat(path) {
	case FormatArrow:
		fh, err := os.Open(path)
		require.NoError(t, err)
		defer fh.Close()
		r, err := ipc.NewFileReader(fh)
		require.NoError(t, err)
		defer r.Close()
		col := r.Schema().FieldIndices("label")
		require.Len(t, col, 1)
		for i := range r.NumRecords() {
			rec, err := r.RecordBatchAt(i)
			require.NoError(t, err)
			units = append(units, rec.NumRows())
			labels = append(labels, rec.Column(col[0]).(*array.Int64).Int64Values()...)
		}
	case FormatParquet:
		pf, err := file.OpenParquetFile(path, false)
		require.NoError(t, err)
		defer pf.Close()
		for i := range pf.NumRowGroups() {
			units = append(units, pf.MetaData().RowGroup(i).NumRows())
		}
		db, err := sql.Open("duckdb", "")
		require.NoError(t, err)
		defer db.Close()
		q, err := db.Query(`SELECT label FROM read_parquet(` + quoteString(path) + `)`)
		require.NoError(t, err)
		for q.Next() {
			var v int64
			require.NoError(t, q.Scan(&v))
			labels = append(labels, v)
		}
		require.NoError(t, q.Err())
	}
	var total int64
	for i, n := range units {
		require.LessOrEqual(t, n, int64(SaveBatchRows), "unit %d of %v", i, units)
		total += n
	}
	require.EqualValues(t, rows, total, "units %v", units)
	require.Len(t, labels, rows)
	for i, v := range labels {
		if v != int64(i) {
			t.Fatalf("row %d has label %d: the saved set is not in entity order", i, v)
		}
	}
	require.Greater(t, len(units), 2, "a set of %d rows is saved in several units", rows)
}

// Save writes both formats, through DuckDB's COPY and through the Go
// writer (on-demand features), in units of at most SaveBatchRows rows,
// in entity order; the result names rows, bytes and format.
func TestSaveFormatsAndUnits(t *testing.T) {
	const rows = 150_000
	eng, defs, entities := saveFixture(t, rows)
	ctx := context.Background()
	out := t.TempDir()
	for _, ext := range []string{"arrow", "parquet", "feather"} {
		for name, features := range map[string][]string{"plain": {"fv:v"}, "on-demand": {"fv:v", "od:twice"}} {
			path := filepath.Join(out, name+"."+ext)
			req := &Request{Defs: defs, Entities: EntitiesFromParquet(entities), Features: features}
			var reported []int64
			res, err := eng.Save(ctx, req, path, SaveOptions{Progress: func(n int64) { reported = append(reported, n) }})
			require.NoError(t, err, path)
			st, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, SaveResult{Rows: rows, Bytes: st.Size(), Format: DatasetFormat(path)}, res)
			if res.Format == FormatArrow {
				require.NotEmpty(t, reported)
				require.EqualValues(t, rows, reported[len(reported)-1])
			}
			checkSaved(t, path, rows)
		}
	}
	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	require.Len(t, entries, 6, "no temporary file is left")
}

// Without Overwrite an existing file is kept and the error wraps
// fs.ErrExist; with it the file is replaced. A failed save (the target is
// a directory) leaves no temporary file, in both formats; an unknown
// extension is an invalid request.
func TestSaveOverwriteAndFailure(t *testing.T) {
	eng, defs, entities := saveFixture(t, 10)
	ctx := context.Background()
	out := t.TempDir()
	req := &Request{Defs: defs, Entities: EntitiesFromParquet(entities), Features: []string{"fv:v"}}
	for _, name := range []string{"set.arrow", "set.parquet"} {
		path := filepath.Join(out, name)
		require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
		_, err := eng.Save(ctx, req, path, SaveOptions{})
		require.True(t, errors.Is(err, fs.ErrExist), "%v", err)
		require.ErrorContains(t, err, path)
		old, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, "old", string(old))
		res, err := eng.Save(ctx, req, path, SaveOptions{Overwrite: true})
		require.NoError(t, err)
		require.EqualValues(t, 10, res.Rows)
		now, err := os.ReadFile(path)
		require.NoError(t, err)
		require.False(t, bytes.Equal(now, old))

		dirTarget := filepath.Join(out, "dir", name)
		require.NoError(t, os.MkdirAll(filepath.Join(dirTarget, "inside"), 0o755))
		for _, overwrite := range []bool{true, false} {
			_, err = eng.Save(ctx, req, dirTarget, SaveOptions{Overwrite: overwrite})
			require.ErrorContains(t, err, dirTarget)
			entries, err := os.ReadDir(filepath.Dir(dirTarget))
			require.NoError(t, err)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			require.Equal(t, []string{name}, names, "the temporary file is removed")
		}
		require.NoError(t, os.RemoveAll(filepath.Join(out, "dir")))
	}
	_, err := eng.Save(ctx, req, filepath.Join(out, "set.csv"), SaveOptions{})
	require.ErrorIs(t, err, ErrInvalidRequest)
	require.ErrorContains(t, err, ".parquet")
}

// writeArrow slices a batch over SaveBatchRows rows without copying it,
// and skips empty ones.
func TestWriteArrowSlicesBigBatches(t *testing.T) {
	const rows = 3*SaveBatchRows + 100
	b := array.NewInt64Builder(memory.DefaultAllocator)
	for i := range rows {
		b.Append(int64(i))
	}
	col := b.NewArray()
	b.Release()
	sch := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	rec := array.NewRecordBatch(sch, []arrow.Array{col}, rows)
	empty := rec.NewSlice(0, 0)
	rr, err := array.NewRecordReader(sch, []arrow.RecordBatch{rec, empty})
	require.NoError(t, err)
	defer rr.Release()
	base := col.Data().Buffers()[1].Bytes()
	w := &batchSizes{base: base}
	n, err := writeArrow(context.Background(), rr, func(*arrow.Schema) (ArrowWriter, error) { return w, nil }, nil)
	require.NoError(t, err)
	require.EqualValues(t, rows, n)
	require.Equal(t, []int64{SaveBatchRows, SaveBatchRows, SaveBatchRows, 100}, w.sizes)
	require.True(t, w.shared, "slices share the batch's buffers")
	require.True(t, w.closed)
	col.Release()
	rec.Release()
	empty.Release()
}

type batchSizes struct {
	base          []byte
	sizes         []int64
	shared        bool
	closed        bool
	sharedChecked bool
}

func (w *batchSizes) Write(rec arrow.RecordBatch) error {
	w.sizes = append(w.sizes, rec.NumRows())
	buf := rec.Column(0).Data().Buffers()[1].Bytes()
	same := len(buf) > 0 && &buf[0] == &w.base[0]
	if !w.sharedChecked {
		w.shared, w.sharedChecked = same, true
	} else {
		w.shared = w.shared && same
	}
	return nil
}

func (w *batchSizes) Close() error { w.closed = true; return nil }

// writeArrow merges consecutive small batches (DuckDB's 2,048-row chunks)
// into batches of up to SaveBatchRows rows, or of up to saveBatchBytes,
// keeping every value in order.
func TestWriteArrowMergesSmallBatches(t *testing.T) {
	sch := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	batches := func(count, rows int) []arrow.RecordBatch {
		var out []arrow.RecordBatch
		next := int64(0)
		for range count {
			b := array.NewInt64Builder(memory.DefaultAllocator)
			for range rows {
				b.Append(next)
				next++
			}
			col := b.NewArray()
			out = append(out, array.NewRecordBatch(sch, []arrow.Array{col}, int64(rows)))
			col.Release()
			b.Release()
		}
		return out
	}
	run := func(recs []arrow.RecordBatch) []arrow.RecordBatch {
		rr, err := array.NewRecordReader(sch, recs)
		require.NoError(t, err)
		defer rr.Release()
		w := &keep{}
		_, err = writeArrow(context.Background(), rr, func(*arrow.Schema) (ArrowWriter, error) { return w, nil }, nil)
		require.NoError(t, err)
		return w.recs
	}
	check := func(got []arrow.RecordBatch, wantSizes []int64) {
		t.Helper()
		var sizes []int64
		next := int64(0)
		for _, rec := range got {
			sizes = append(sizes, rec.NumRows())
			for _, v := range rec.Column(0).(*array.Int64).Int64Values() {
				require.Equal(t, next, v)
				next++
			}
			rec.Release()
		}
		require.Equal(t, wantSizes, sizes)
	}
	// 40 chunks of 2,048 rows: 32 fill one batch, 8 the next.
	check(run(batches(40, 2048)), []int64{SaveBatchRows, 8 * 2048})
	check(run(batches(3, SaveBatchRows/2)), []int64{SaveBatchRows, SaveBatchRows / 2})
	// By bytes: batches of 3 MiB merge two at a time (the third would pass
	// saveBatchBytes).
	bin := arrow.NewSchema([]arrow.Field{{Name: "b", Type: arrow.BinaryTypes.Binary}}, nil)
	var recs []arrow.RecordBatch
	for range 3 {
		b := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.Binary)
		for range 10 {
			b.Append(make([]byte, 300<<10))
		}
		col := b.NewArray()
		recs = append(recs, array.NewRecordBatch(bin, []arrow.Array{col}, 10))
		col.Release()
		b.Release()
	}
	rr, err := array.NewRecordReader(bin, recs)
	require.NoError(t, err)
	defer rr.Release()
	w := &keep{}
	_, err = writeArrow(context.Background(), rr, func(*arrow.Schema) (ArrowWriter, error) { return w, nil }, nil)
	require.NoError(t, err)
	var sizes []int64
	for _, rec := range w.recs {
		sizes = append(sizes, rec.NumRows())
		rec.Release()
	}
	require.Equal(t, []int64{20, 10}, sizes)
}

// keep is an ArrowWriter that keeps what it is given.
type keep struct{ recs []arrow.RecordBatch }

func (k *keep) Write(rec arrow.RecordBatch) error {
	rec.Retain()
	k.recs = append(k.recs, rec)
	return nil
}

func (k *keep) Close() error { return nil }
