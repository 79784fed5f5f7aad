package parquettest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"
)

type row struct {
	ID    *int64     `parquet:"id,optional"`
	At    *time.Time `parquet:"at,optional,timestamp(microsecond:utc)"`
	Naive time.Time  `parquet:"naive,timestamp(millisecond:local)"`
	N     int32      `parquet:"n"`
	Emb   []float32  `parquet:"emb,list"`
}

func TestWriteReadsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.parquet")
	id := int64(7)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	require.NoError(t, Write(path, []row{{ID: &id, At: &at, Naive: at, N: 3, Emb: []float32{1, 2}}, {Naive: at}}))

	f, err := os.Open(path)
	require.NoError(t, err)
	pf, err := file.NewParquetReader(f)
	require.NoError(t, err)
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	require.NoError(t, err)
	tbl, err := fr.ReadTable(context.Background())
	require.NoError(t, err)
	defer tbl.Release()
	require.Equal(t, int64(2), tbl.NumRows())
	s := tbl.Schema()
	require.Equal(t, arrow.INT64, s.Field(0).Type.ID())
	require.True(t, s.Field(0).Nullable)
	require.True(t, arrow.TypeEqual(&arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, s.Field(1).Type), s.Field(1).Type.String())
	require.True(t, arrow.TypeEqual(&arrow.TimestampType{Unit: arrow.Millisecond}, s.Field(2).Type), s.Field(2).Type.String())
	require.False(t, s.Field(2).Nullable)
	require.Equal(t, arrow.INT32, s.Field(3).Type.ID())
	require.Equal(t, arrow.LIST, s.Field(4).Type.ID())
}

func TestWriteRefusesUntaggedFields(t *testing.T) {
	type bad struct{ X int64 }
	require.EqualError(t, Write(filepath.Join(t.TempDir(), "x.parquet"), []bad{{1}}), "field X has no parquet tag")
}
