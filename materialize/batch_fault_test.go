package materialize

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/internal/testutil/redistest"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
)

func loadQuickstart(t *testing.T, drivers int) (*registry.Repo, *offline.Engine) {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, quickstart.Scaffold(dir, quickstart.GenerateOptions{Drivers: drivers, Days: 1}))
	repo, err := registry.LoadRepo(dir, registry.LoadOptions{})
	require.NoError(t, err)
	off, err := offline.Open(offline.OptionsFromConfig(repo.Config))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, off.Close()) })
	return repo, off
}

// TestBatchStopsAtTheFirstWriteError: when the online store goes away
// mid-run, the run returns the write error and stops reading the
// offline store, instead of reading and encoding every remaining row.
func TestBatchStopsAtTheFirstWriteError(t *testing.T) {
	const drivers = 400
	repo, off := loadQuickstart(t, drivers)
	srv := redistest.Start(t)
	store, err := online.OpenRedis(context.Background(), online.RedisOptions{Addr: srv.Addr()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() }) // the server is gone by then
	var once sync.Once
	m := &Materializer{Offline: off, Online: store}
	v := repo.Defs.FeatureView("driver_hourly")
	end := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	res, err := m.view(context.Background(), repo.Defs, v, time.Time{}, end, Options{ChunkRows: 5,
		Progress: func(string, int64) { once.Do(srv.Stop) }})
	require.ErrorContains(t, err, "write driver_hourly online")
	// Chunks of 5 rows: one written, at most two being written, one
	// queued and one being built when the store went away.
	require.Less(t, res.Rows, int64(drivers/4), "rows read after the write error")
	require.Less(t, res.Written, int64(drivers/4))
}

// TestBatchRefusesTimesOutOfRange: a batch source row whose event time
// no sink can hold stops the run with an error naming the view, row,
// entity and time, and the row is not written online.
func TestBatchRefusesTimesOutOfRange(t *testing.T) {
	repo, off := loadQuickstart(t, 5)
	dir := filepath.Join(repo.Config.DataRoot(), "driver_stats")
	writeRowLike(t, dir, 9999, time.Date(-249, 3, 1, 0, 0, 0, 0, time.UTC))
	store, err := online.OpenEmbedded(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	m := &Materializer{Offline: off, Online: store}
	end := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	_, err = m.Run(context.Background(), repo.Defs, time.Time{}, end, Options{})
	require.ErrorContains(t, err, "(entity [9999]): event time: time year -249 (03-01T00:00:00Z) is out of range: times must be from 1900-01-01T00:00:00Z")
	require.Regexp(t, `^driver_hourly row \d+ \(entity`, err.Error())

	ent, err := online.EncodeEntity([]registry.ValueType{registry.TypeInt64}, []any{int64(9999)})
	require.NoError(t, err)
	got, err := store.Read(context.Background(), []online.Key{{Project: repo.Defs.Project, View: "driver_hourly", Entity: ent}})
	require.NoError(t, err)
	require.Nil(t, got[0], "the row was not written")
}

// writeRowLike writes bad.parquet into dir: the first row of a Parquet
// file there, for driver id, with every timestamp column set to at.
func writeRowLike(t *testing.T, dir string, id int64, at time.Time) {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*.parquet"))
	require.NoError(t, err)
	require.NotEmpty(t, matches)
	pf, err := file.OpenParquetFile(matches[0], false)
	require.NoError(t, err)
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	require.NoError(t, err)
	tbl, err := fr.ReadTable(context.Background())
	require.NoError(t, err)
	defer tbl.Release()
	cols := make([]arrow.Array, tbl.NumCols())
	for i := range cols {
		f := tbl.Schema().Field(i)
		switch dt := f.Type.(type) {
		case *arrow.TimestampType:
			b := array.NewTimestampBuilder(memory.DefaultAllocator, dt)
			v, err := arrow.TimestampFromTime(at, dt.Unit)
			require.NoError(t, err)
			b.Append(v)
			cols[i] = b.NewArray()
			b.Release()
		default:
			if f.Name == "driver_id" {
				b := array.NewInt64Builder(memory.DefaultAllocator)
				b.Append(id)
				cols[i] = b.NewArray()
				b.Release()
				continue
			}
			cols[i] = array.NewSlice(tbl.Column(i).Data().Chunk(0), 0, 1)
		}
	}
	rec := array.NewRecordBatch(tbl.Schema(), cols, 1)
	for _, c := range cols {
		c.Release()
	}
	defer rec.Release()
	out, err := os.Create(filepath.Join(dir, "bad.parquet"))
	require.NoError(t, err)
	w, err := pqarrow.NewFileWriter(tbl.Schema(), out, nil, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	require.NoError(t, err)
	require.NoError(t, w.Write(rec))
	require.NoError(t, w.Close())
}
