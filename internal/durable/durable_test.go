package durable_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/durable"
)

// entries lists a directory's names.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func writeBytes(b []byte) func(*os.File) error {
	return func(f *os.File) error { _, err := f.Write(b); return err }
}

func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.json")
	require.NoError(t, durable.WriteFile(path, 0o644, writeBytes([]byte("old"))))
	require.NoError(t, durable.WriteFile(path, 0o644, writeBytes([]byte("new"))))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "new", string(got))
	require.Equal(t, []string{"a.json"}, entries(t, dir), "no temporary file is left")
}

// A failing write leaves the old content and no temporary file, and its
// error names the target and keeps the cause.
func TestWriteFileFailureKeepsOldContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.json")
	require.NoError(t, durable.WriteFile(path, 0o644, writeBytes([]byte("old"))))
	boom := errors.New("boom")
	var tmp string
	err := durable.WriteFile(path, 0o644, func(f *os.File) error {
		tmp = f.Name()
		if _, err := f.Write([]byte("half")); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "write "+path+": boom")
	require.Equal(t, dir, filepath.Dir(tmp), "the temporary file is beside its target")
	require.True(t, strings.HasSuffix(tmp, durable.TempSuffix), "temporary name %s", tmp)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "old", string(got))
	require.Equal(t, []string{"a.json"}, entries(t, dir), "no temporary file is left")

	// A write into a missing directory names the target.
	missing := filepath.Join(dir, "nope", "b.json")
	err = durable.WriteFile(missing, 0o644, writeBytes(nil))
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorContains(t, err, "write "+missing)
}

// Concurrent writers of one path never share a temporary file: each
// rename moves a whole file into place, and the survivor is one of them.
func TestWriteFileConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.bin")
	const writers, size = 16, 1 << 16
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			content := bytes.Repeat([]byte{byte('a' + i)}, size)
			errs[i] = durable.WriteFile(path, 0o644, func(f *os.File) error {
				// Written in pieces, so that writers sharing a file would
				// interleave.
				for off := 0; off < size; off += 1024 {
					if _, err := f.Write(content[off : off+1024]); err != nil {
						return err
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Len(t, got, size)
	require.Equal(t, bytes.Repeat(got[:1], size), got, "one writer's whole file")
	require.Equal(t, []string{"a.bin"}, entries(t, dir), "no temporary file is left")
}

func TestTempNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		n := durable.TempName("/d/x.parquet")
		require.False(t, seen[n], "name %s repeats", n)
		seen[n] = true
		require.True(t, strings.HasPrefix(n, "/d/x.parquet."), n)
		require.True(t, strings.HasSuffix(n, durable.TempSuffix), n)
	}
}

// Publish moves a file made by another writer into place; a failed
// publish removes it.
func TestPublish(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.parquet")
	tmp := durable.TempName(path)
	require.NoError(t, os.WriteFile(tmp, []byte("data"), 0o644))
	require.NoError(t, durable.Publish(tmp, path))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "data", string(got))
	require.Equal(t, []string{"out.parquet"}, entries(t, dir))

	// Renaming over a directory fails: the temporary file goes, the
	// directory stays.
	target := filepath.Join(dir, "sub")
	require.NoError(t, os.Mkdir(target, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(target, "f"), nil, 0o644))
	tmp = durable.TempName(target)
	require.NoError(t, os.WriteFile(tmp, []byte("data"), 0o644))
	err = durable.Publish(tmp, target)
	require.ErrorContains(t, err, "write "+target)
	require.Equal(t, []string{"out.parquet", "sub"}, entries(t, dir))

	// A temporary file that is not there is an error naming the target.
	err = durable.Publish(filepath.Join(dir, "gone.tmp"), path)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorContains(t, err, "write "+path)
}

// CreateFile is exclusive: of concurrent creators of one name exactly one
// succeeds, the others get fs.ErrExist, the file is the winner's whole
// content, and no temporary file is left in either directory.
func TestCreateFileExclusive(t *testing.T) {
	dir := t.TempDir()
	tmpDir := filepath.Join(dir, "tmp")
	require.NoError(t, os.Mkdir(tmpDir, 0o755))
	path := filepath.Join(dir, "v1.json")
	const creators = 16
	var wg sync.WaitGroup
	errs := make([]error, creators)
	for i := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = durable.CreateFile(path, tmpDir, 0o644, writeBytes([]byte(fmt.Sprintf("creator %02d", i))))
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, won, "two creators succeeded")
			won = i
			continue
		}
		require.ErrorIs(t, err, fs.ErrExist)
		require.ErrorContains(t, err, "create "+path)
	}
	require.NotEqual(t, -1, won, "one creator succeeds")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("creator %02d", won), string(got))
	require.Empty(t, entries(t, tmpDir))
	require.Equal(t, []string{"tmp", "v1.json"}, entries(t, dir))

	// A failing write creates nothing.
	boom := errors.New("boom")
	other := filepath.Join(dir, "v2.json")
	err = durable.CreateFile(other, "", 0o644, func(*os.File) error { return boom })
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "create "+other)
	require.Equal(t, []string{"tmp", "v1.json"}, entries(t, dir))
}

func TestSyncErrorsNameThePath(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	err := durable.SyncDir(missing)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorContains(t, err, "sync directory "+missing)
	err = durable.SyncFile(missing)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.ErrorContains(t, err, "sync "+missing)
}

// PublishExclusive moves a complete file into place only where nothing
// is, and removes the temporary file either way.
func TestPublishExclusive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "set.parquet")
	tmp := durable.TempName(path)
	require.NoError(t, os.WriteFile(tmp, []byte("first"), 0o644))
	require.NoError(t, durable.PublishExclusive(tmp, path))
	_, err := os.Stat(tmp)
	require.ErrorIs(t, err, fs.ErrNotExist)

	tmp = durable.TempName(path)
	require.NoError(t, os.WriteFile(tmp, []byte("second"), 0o644))
	err = durable.PublishExclusive(tmp, path)
	require.ErrorIs(t, err, fs.ErrExist)
	require.ErrorContains(t, err, path)
	_, err = os.Stat(tmp)
	require.ErrorIs(t, err, fs.ErrNotExist, "the temporary file is removed")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "first", string(got))
}
