package ipcguard_test

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/ipcguard"
	"github.com/quiverdata/quiver/internal/testutil/ipctest"
)

// benchFile is an IPC file of batches shaped like a training set: an int64
// key, a timestamp and 11 float32 columns, 2,048 rows a batch.
func benchFile(b *testing.B, batches int) []byte {
	fields := []arrow.Field{{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "event_timestamp", Type: arrow.FixedWidthTypes.Timestamp_us}}
	for i := range 11 {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("f%d", i), Type: arrow.PrimitiveTypes.Float32, Nullable: true})
	}
	sch := arrow.NewSchema(fields, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer rb.Release()
	for r := range 2048 {
		rb.Field(0).(*array.Int64Builder).Append(int64(r))
		rb.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(r))
		for i := range 11 {
			rb.Field(2 + i).(*array.Float32Builder).Append(float32(r))
		}
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	recs := make([]arrow.RecordBatch, batches)
	for i := range recs {
		recs[i] = rec
	}
	return ipctest.File(b, recs...)
}

// BenchmarkFileBatch compares decoding a batch of a mapped file with
// arrow-go alone and through the checks.
func BenchmarkFileBatch(b *testing.B) {
	data := benchFile(b, 64)
	b.Run("arrow-go", func(b *testing.B) {
		r, err := ipc.NewMappedFileReader(data)
		require.NoError(b, err)
		defer func() { _ = r.Close() }()
		for i := 0; b.Loop(); i++ {
			rec, err := r.RecordBatchAt(i % 64)
			if err != nil {
				b.Fatal(err)
			}
			rec.Release()
		}
	})
	b.Run("checked", func(b *testing.B) {
		r, err := ipcguard.NewFileReader(data, ipcguard.Limits{}, memory.DefaultAllocator)
		require.NoError(b, err)
		defer func() { _ = r.Close() }()
		for i := 0; b.Loop(); i++ {
			rec, err := r.RecordBatchAt(i % 64)
			if err != nil {
				b.Fatal(err)
			}
			rec.Release()
		}
	})
}
