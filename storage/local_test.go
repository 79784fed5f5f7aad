package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/durable"
	"github.com/quiverdata/quiver/storage"
)

func TestLocalRefusesKeysOutsideItsRoot(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := storage.NewLocal(filepath.Join(dir, "root"))
	require.NoError(t, err)
	require.NoError(t, os.Mkdir(b.Root(), 0o755))
	for _, key := range []string{"", "../escape", "a/../../escape", "/abs", "a//b", "./a", "a/.", `a\b`, "a/x.12-3.tmp"} {
		_, err := b.Put(ctx, key, strings.NewReader("x"))
		require.ErrorIs(t, err, storage.ErrInvalid, "key %q", key)
		_, err = b.Stat(ctx, key)
		require.ErrorIs(t, err, storage.ErrInvalid, "key %q", key)
		_, err = b.PutIfAbsent(ctx, key, []byte("x"))
		require.ErrorIs(t, err, storage.ErrInvalid, "key %q", key)
		require.ErrorIs(t, b.Delete(ctx, key), storage.ErrInvalid, "key %q", key)
	}
	_, err = b.List(ctx, "../")
	require.ErrorIs(t, err, storage.ErrInvalid)
	_, err = os.Stat(filepath.Join(dir, "escape"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestLocalHidesWritesInProgress(t *testing.T) {
	ctx := context.Background()
	b, err := storage.NewLocal(t.TempDir())
	require.NoError(t, err)
	_, err = b.Put(ctx, "d/done.parquet", strings.NewReader("x"))
	require.NoError(t, err)
	// A temporary file as a writer in progress (or one that crashed)
	// leaves it.
	tmp, err := durable.CreateTemp(filepath.Join(b.Root(), "d", "next.parquet"), 0o644)
	require.NoError(t, err)
	require.NoError(t, tmp.Close())
	got, err := b.List(ctx, "d/")
	require.NoError(t, err)
	require.Equal(t, []string{"d/done.parquet"}, keys(got))
	got, err = storage.Glob(ctx, b, "d/*")
	require.NoError(t, err)
	require.Equal(t, []string{"d/done.parquet"}, keys(got))
}

func TestLocalMissingRoot(t *testing.T) {
	ctx := context.Background()
	b, err := storage.NewLocal(filepath.Join(t.TempDir(), "absent"))
	require.NoError(t, err)
	_, err = b.Stat(ctx, "a")
	require.ErrorIs(t, err, storage.ErrBucketNotFound)
	require.ErrorContains(t, err, "absent")
	_, err = b.Put(ctx, "a", strings.NewReader("x"))
	require.ErrorIs(t, err, storage.ErrBucketNotFound)
	_, err = b.List(ctx, "")
	require.ErrorIs(t, err, storage.ErrBucketNotFound)
}
