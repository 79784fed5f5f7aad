package pqslice

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/require"
)

// writeArrowFile writes rows rows of every kind of column a source has
// (keys, timestamps of each unit, a date, floats, strings with a
// dictionary, a list, a struct) with arrow-go, in row groups of rg rows,
// with statistics, page indexes and bloom filters.
func writeArrowFile(t testing.TB, path string, rows, rg int) {
	t.Helper()
	mem := memory.DefaultAllocator
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "Driver_ID", Type: arrow.PrimitiveTypes.Int64},
		{Name: "ts_ms", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
		{Name: "ts_us", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
		{Name: "ts_ns", Type: &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}, Nullable: true},
		{Name: "day", Type: arrow.FixedWidthTypes.Date32},
		{Name: "rate", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		{Name: "city", Type: arrow.BinaryTypes.String},
		{Name: "hist", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
		{Name: "loc", Type: arrow.StructOf(arrow.Field{Name: "lat", Type: arrow.PrimitiveTypes.Float64}, arrow.Field{Name: "lon", Type: arrow.PrimitiveTypes.Float64})},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range rows {
		at := base.Add(time.Duration(i) * time.Minute)
		b.Field(0).(*array.Int64Builder).Append(int64(i % 97))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(at.UnixMilli()))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(at.UnixMicro()))
		if i%11 == 0 {
			b.Field(3).AppendNull()
		} else {
			b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(at.UnixNano() + 999))
		}
		b.Field(4).(*array.Date32Builder).Append(arrow.Date32FromTime(at))
		if i%7 == 0 {
			b.Field(5).AppendNull()
		} else {
			b.Field(5).(*array.Float64Builder).Append(float64(i) / 3)
		}
		b.Field(6).(*array.StringBuilder).Append([]string{"berlin", "lagos", "lima"}[i%3])
		lb := b.Field(7).(*array.ListBuilder)
		lb.Append(true)
		for j := range i % 4 {
			lb.ValueBuilder().(*array.Int32Builder).Append(int32(j))
		}
		sb := b.Field(8).(*array.StructBuilder)
		sb.Append(true)
		sb.FieldBuilder(0).(*array.Float64Builder).Append(float64(i))
		sb.FieldBuilder(1).(*array.Float64Builder).Append(-float64(i))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	f, err := os.Create(path)
	require.NoError(t, err)
	props := parquet.NewWriterProperties(
		parquet.WithMaxRowGroupLength(int64(rg)),
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithStats(true),
		parquet.WithPageIndexEnabled(true),
		parquet.WithBloomFilterEnabled(true),
		parquet.WithDataPageSize(4096),
	)
	w, err := pqarrow.NewFileWriter(schema, f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	require.NoError(t, err)
	require.NoError(t, w.Write(rec))
	require.NoError(t, w.Close())
}

// footerOf parses the footer of the file at path.
func footerOf(t testing.TB, path string) (*Footer, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	f, err := Parse(data[max(0, len(data)-TailSize):], int64(len(data)))
	require.NoError(t, err)
	return f, data
}

// sliceFile writes the slice of path to out and returns it.
func sliceFile(t testing.TB, path, out string, cols []string, keep func(int) bool) *Slice {
	t.Helper()
	f, data := footerOf(t, path)
	s, err := f.Plan(cols, keep)
	require.NoError(t, err)
	dst, err := os.Create(out)
	require.NoError(t, err)
	defer dst.Close()
	require.NoError(t, s.Write(context.Background(), dst, bytes.NewReader(data), 3))
	st, err := dst.Stat()
	require.NoError(t, err)
	require.Equal(t, s.Size, st.Size())
	return s
}

func query(t testing.TB, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	require.NoError(t, err, q)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		out = append(out, fmt.Sprint(vals...))
	}
	require.NoError(t, rows.Err())
	return out
}

// rowRanges turns the kept row groups into a filter on file_row_number.
func rowRanges(f *Footer, keep func(int) bool) string {
	var conds []string
	var at int64
	for i, rg := range f.rowGroups {
		n, _ := rg.int(rgNumRows)
		if keep == nil || keep(i) {
			conds = append(conds, fmt.Sprintf("(file_row_number >= %d AND file_row_number < %d)", at, at+n))
		}
		at += n
	}
	if len(conds) == 0 {
		return "false"
	}
	return strings.Join(conds, " OR ")
}

// A slice reads in DuckDB exactly as the original's columns and row
// groups do, for files from arrow-go (page indexes, bloom filters, nested
// columns, the Arrow schema kept in the metadata) and from DuckDB.
func TestSliceReadsAsTheOriginal(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	arrowFile := filepath.Join(dir, "arrow.parquet")
	writeArrowFile(t, arrowFile, 5000, 700)
	duckFile := filepath.Join(dir, "duck.parquet")
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT i %% 50 AS driver_id, TIMESTAMP '2024-01-01' + to_minutes(i) AS ts,
		i / 7 AS rate, ['a','b','c'][1 + i %% 3] AS city, CASE WHEN i %% 5 = 0 THEN NULL ELSE i END AS trips
		FROM range(20000) t(i)) TO '%s' (FORMAT parquet, ROW_GROUP_SIZE 2048)`, duckFile))
	require.NoError(t, err)

	cases := []struct {
		name string
		file string
		cols []string
		keep func(int) bool
	}{
		{"arrow, two columns", arrowFile, []string{"driver_id", "RATE"}, nil},
		{"arrow, nested and timestamps", arrowFile, []string{"loc", "hist", "ts_ms", "ts_ns", "day", "city"}, nil},
		{"arrow, every column, odd row groups", arrowFile, nil, func(i int) bool { return i%2 == 1 }},
		{"arrow, one column, first and last row groups", arrowFile, []string{"ts_us"}, func(i int) bool { return i == 0 || i == 7 }},
		{"arrow, no row group", arrowFile, []string{"rate"}, func(int) bool { return false }},
		{"duckdb, three columns", duckFile, []string{"driver_id", "ts", "trips"}, nil},
		{"duckdb, later row groups", duckFile, []string{"city", "ts"}, func(i int) bool { return i >= 4 }},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, fmt.Sprintf("slice%d.parquet", i))
			s := sliceFile(t, c.file, out, c.cols, c.keep)
			f, _ := footerOf(t, c.file)
			cols := c.cols
			if cols == nil {
				cols = f.Columns()
			}
			sel := strings.Join(cols, ", ")
			want := query(t, db, fmt.Sprintf("SELECT %s FROM read_parquet('%s', file_row_number = true) WHERE %s ORDER BY file_row_number", sel, c.file, rowRanges(f, c.keep)))
			got := query(t, db, fmt.Sprintf("SELECT %s FROM read_parquet('%s') ", sel, out))
			require.Equal(t, want, got)
			require.Equal(t, int64(len(want)), s.Rows)
			// Exactly the named columns are there.
			sf, _ := footerOf(t, out)
			require.Len(t, sf.Columns(), len(cols))
			// Types are the original's.
			wantTypes := query(t, db, fmt.Sprintf("SELECT column_name, column_type FROM (DESCRIBE SELECT %s FROM read_parquet('%s'))", sel, c.file))
			gotTypes := query(t, db, fmt.Sprintf("SELECT column_name, column_type FROM (DESCRIBE SELECT %s FROM read_parquet('%s'))", sel, out))
			require.Equal(t, wantTypes, gotTypes)
			if c.cols != nil && len(c.cols) < 3 {
				require.Less(t, s.Cover, 0.5, "a slice of few columns copies a fraction of the file")
			}
		})
	}
}

// TimeRange reads the bounds of each timestamp unit and of dates, in
// microseconds, and declines other columns.
func TestTimeRange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.parquet")
	writeArrowFile(t, path, 1000, 400)
	f, _ := footerOf(t, path)
	require.Equal(t, 3, f.RowGroups())
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	minute := int64(time.Minute / time.Microsecond)
	for _, col := range []string{"ts_ms", "TS_US"} {
		lo, hi, ok := f.TimeRange(1, col)
		require.True(t, ok, col)
		require.Equal(t, base+400*minute, lo, col)
		require.Equal(t, base+799*minute, hi, col)
	}
	// Nanoseconds round outwards: the greatest value up.
	lo, hi, ok := f.TimeRange(2, "ts_ns")
	require.True(t, ok)
	require.LessOrEqual(t, lo, base+800*minute+1)
	require.Equal(t, base+999*minute+1, hi)
	lo, hi, ok = f.TimeRange(0, "day")
	require.True(t, ok)
	require.Equal(t, base, lo)
	require.Equal(t, base, hi)
	for _, col := range []string{"rate", "loc", "city", "missing"} {
		_, _, ok := f.TimeRange(0, col)
		require.False(t, ok, col)
	}
	_, _, ok = f.TimeRange(3, "ts_ms")
	require.False(t, ok)
}

// Files a slice cannot keep exact, and broken ones, are refused with
// errors that say so.
func TestParseRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.parquet")
	writeArrowFile(t, path, 100, 50)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	n := int64(len(data))

	_, err = Parse(data[n-8:], n)
	require.ErrorContains(t, err, "of its end read")
	enc := append([]byte(nil), data...)
	copy(enc[n-4:], "PARE")
	_, err = Parse(enc, n)
	require.ErrorIs(t, err, ErrUnsupported)
	_, err = Parse([]byte("PAR1"), 4)
	require.ErrorContains(t, err, "too short")
	bad := append([]byte(nil), data...)
	copy(bad[n-4:], "XXXX")
	_, err = Parse(bad, n)
	require.ErrorContains(t, err, "does not end with PAR1")
	// A footer cut short.
	ml, err := MetadataLength(data, n)
	require.NoError(t, err)
	cut := append([]byte(nil), data[:n-ml]...)
	cut = append(cut, data[n-ml:n-ml+10]...)
	cut = append(cut, 10, 0, 0, 0)
	cut = append(cut, "PAR1"...)
	_, err = Parse(cut, int64(len(cut)))
	require.ErrorContains(t, err, "malformed Parquet footer")
}

// FuzzParse: no footer crashes Parse or Plan.
func FuzzParse(f *testing.F) {
	path := filepath.Join(f.TempDir(), "a.parquet")
	writeArrowFile(f, path, 200, 60)
	data, err := os.ReadFile(path)
	require.NoError(f, err)
	ml, err := MetadataLength(data, int64(len(data)))
	require.NoError(f, err)
	f.Add(data[int64(len(data))-ml:], int64(len(data)))
	f.Add([]byte("\x15\x00PAR1\x02\x00\x00\x00PAR1"), int64(100))
	f.Fuzz(func(t *testing.T, tail []byte, size int64) {
		if size < int64(len(tail)) {
			size = int64(len(tail))
		}
		ft, err := Parse(tail, size)
		if err != nil {
			return
		}
		for i := range ft.RowGroups() {
			for _, c := range ft.Columns() {
				ft.TimeRange(i, c)
			}
		}
		cols := ft.Columns()
		if len(cols) > 1 {
			cols = cols[:1]
		}
		if s, err := ft.Plan(cols, func(i int) bool { return i%2 == 0 }); err == nil {
			if _, err := Parse(append(make([]byte, 0), s.Tail()...), s.Size); err != nil {
				t.Fatalf("the slice's footer does not parse: %v", err)
			}
		}
	})
}
