package offline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/storage"
)

// Save to an s3:// URI uploads the file a local Save of the same engine
// writes, value for value (the batches' bounds follow DuckDB's), and
// answers the object's size and ETag; without Overwrite a taken key is
// refused and kept, and of concurrent savers of a new key exactly one
// wins; a missing bucket is named; nothing is left in the temporary
// directory.
func TestSaveToS3(t *testing.T) {
	ctx := context.Background()
	s := newScenario(t, 901, 200)
	srv := s3test.Start(t)
	b, err := storage.NewS3(ctx, srv.Bucket, srv.Options())
	require.NoError(t, err)
	tmp := filepath.Join(t.TempDir(), "tmp")
	eng := openS3Engine(t, srv, filepath.Join(s.dir, "data"), func(o *Options) { o.TempDirectory = tmp })
	req := func() *Request { return s.request(EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))) }

	path := filepath.Join(t.TempDir(), "t.arrow")
	want, err := eng.Save(ctx, req(), path, SaveOptions{})
	require.NoError(t, err)
	wantBytes, err := os.ReadFile(path)
	require.NoError(t, err)
	res, err := eng.Save(ctx, req(), s3URI(srv, "sets/t.arrow"), SaveOptions{})
	require.NoError(t, err)
	info, err := b.Stat(ctx, "sets/t.arrow")
	require.NoError(t, err)
	require.Equal(t, SaveResult{Rows: want.Rows, Bytes: want.Bytes, Format: FormatArrow, ETag: info.ETag}, res)
	obj, err := b.Open(ctx, "sets/t.arrow")
	require.NoError(t, err)
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.NoError(t, obj.Close())
	require.Equal(t, arrowRows(t, wantBytes), arrowRows(t, got), "the object holds the local file's rows, in order")

	_, err = eng.Save(ctx, req(), s3URI(srv, "sets/t.arrow"), SaveOptions{})
	require.ErrorIs(t, err, fs.ErrExist)
	after, err := b.Stat(ctx, "sets/t.arrow")
	require.NoError(t, err)
	require.Equal(t, info, after, "kept")
	_, err = eng.Save(ctx, req(), s3URI(srv, "sets/t.arrow"), SaveOptions{Overwrite: true})
	require.NoError(t, err)

	// Concurrent creators of one new key: one wins, the others are told
	// it exists.
	const savers = 4
	errs := make([]error, savers)
	var wg sync.WaitGroup
	for i := range savers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = eng.Save(ctx, req(), s3URI(srv, "sets/race.parquet"), SaveOptions{})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			require.ErrorIs(t, err, fs.ErrExist)
		}
	}
	require.Equal(t, 1, won, "%v", errs)

	_, err = eng.Save(ctx, req(), "s3://no-such-bucket/sets/t.arrow", SaveOptions{})
	require.ErrorIs(t, err, ErrInvalidRequest)
	require.ErrorIs(t, err, storage.ErrBucketNotFound)
	require.ErrorContains(t, err, "s3://no-such-bucket/sets/t.arrow")

	des, err := os.ReadDir(tmp)
	if !errors.Is(err, fs.ErrNotExist) {
		require.NoError(t, err)
		for _, de := range des {
			require.NotContains(t, de.Name(), "quiver-save-", "left behind")
		}
	}
}

// arrowRows reads an Arrow IPC file's rows.
func arrowRows(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	r, err := ipc.NewFileReader(bytes.NewReader(data))
	require.NoError(t, err)
	defer r.Close()
	var rows []map[string]any
	for i := range r.NumRecords() {
		rec, err := r.RecordBatchAt(i)
		require.NoError(t, err)
		for j := range int(rec.NumRows()) {
			row := map[string]any{}
			for c, f := range rec.Schema().Fields() {
				row[f.Name] = cellValue(rec.Column(c), j)
			}
			rows = append(rows, row)
		}
		rec.Release()
	}
	return rows
}
