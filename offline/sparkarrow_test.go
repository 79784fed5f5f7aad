package offline

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
)

// Arrow entity columns are converted for Spark and back: timestamps of
// any unit to microseconds (truncated, as DuckDB's CAST) and back to
// their unit, large strings to strings; nulls stay nulls.
func TestSparkUploadConversions(t *testing.T) {
	ns := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: "UTC"}
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "t", Type: ns, Nullable: true},
		{Name: "s", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "sec", Type: &arrow.TimestampType{Unit: arrow.Second}},
		{Name: "k", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer b.Release()
	b.Field(0).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1_700_000_000_123_456_789, 0, -1_999}, []bool{true, false, true})
	b.Field(1).(*array.LargeStringBuilder).AppendValues([]string{"a", "", "ccc"}, []bool{true, false, true})
	b.Field(2).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1, 2, 3}, nil)
	b.Field(3).(*array.Int64Builder).AppendValues([]int64{7, 8, 9}, nil)
	rec := b.NewRecordBatch()
	in, err := array.NewRecordReader(sch, []arrow.RecordBatch{rec})
	require.NoError(t, err)
	rec.Release()
	defer in.Release()

	up, fixes := sparkUploadReader(in)
	defer up.Release()
	require.Equal(t, []sparkFix{{name: "t", orig: ns}, {name: "sec", orig: sch.Field(2).Type}}, fixes)
	require.True(t, up.Next())
	got := up.RecordBatch()
	require.Equal(t, "timestamp[us, tz=UTC]", got.Column(0).DataType().String())
	require.Equal(t, []arrow.Timestamp{1_700_000_000_123_456, 0, -1}, got.Column(0).(*array.Timestamp).TimestampValues())
	require.True(t, got.Column(0).IsNull(1))
	require.Equal(t, "utf8", got.Column(1).DataType().String())
	require.Equal(t, "ccc", got.Column(1).(*array.String).Value(2))
	require.True(t, got.Column(1).IsNull(1))
	require.Equal(t, []arrow.Timestamp{1_000_000, 2_000_000, 3_000_000}, got.Column(2).(*array.Timestamp).TimestampValues())
	require.Same(t, rec.Column(3), got.Column(3), "unchanged columns are shared")

	// Back: the units are restored, the strings stay strings.
	got.Retain()
	back, err := array.NewRecordReader(got.Schema(), []arrow.RecordBatch{got})
	require.NoError(t, err)
	got.Release()
	restored := sparkRestoreReader(back, fixes)
	defer restored.Release()
	require.True(t, restored.Next())
	r := restored.RecordBatch()
	require.True(t, arrow.TypeEqual(ns, r.Column(0).DataType()))
	require.Equal(t, []arrow.Timestamp{1_700_000_000_123_456_000, 0, -1_000}, r.Column(0).(*array.Timestamp).TimestampValues())
	require.Equal(t, "utf8", r.Column(1).DataType().String())
	require.Equal(t, []arrow.Timestamp{1, 2, 3}, r.Column(2).(*array.Timestamp).TimestampValues())
	require.False(t, restored.Next())
	require.NoError(t, restored.Err())
}
