package objcache_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/durable"
	"github.com/quiverdata/quiver/internal/objcache"
	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/storage"
)

func bucket(t *testing.T) (*storage.S3, *s3test.Server) {
	t.Helper()
	srv := s3test.Start(t)
	b, err := storage.NewS3(context.Background(), srv.Bucket, srv.Options())
	require.NoError(t, err)
	return b, srv
}

func put(t *testing.T, b storage.Bucket, key string, data []byte) storage.ObjectInfo {
	t.Helper()
	info, err := b.Put(context.Background(), key, bytes.NewReader(data))
	require.NoError(t, err)
	info, err = b.Stat(context.Background(), key)
	require.NoError(t, err)
	return info
}

func fetch(t *testing.T, c *objcache.Cache, b storage.Bucket, info storage.ObjectInfo) (*objcache.Entry, []byte) {
	t.Helper()
	en, err := c.Fetch(context.Background(), b, info)
	require.NoError(t, err)
	data, err := os.ReadFile(en.Path)
	require.NoError(t, err)
	return en, data
}

func names(t *testing.T, dir string) []string {
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// A copy is the object's bytes; a second fetch is a hit; a replaced object
// gets a new copy, and the old one is never returned for it.
func TestFetchAndReplace(t *testing.T) {
	b, srv := bucket(t)
	c, err := objcache.Open(objcache.Options{Dir: t.TempDir(), MaxBytes: 1 << 30})
	require.NoError(t, err)
	big := bytes.Repeat([]byte("0123456789abcdef"), (11<<20)/16) // several ranged GETs
	v1 := put(t, b, "k/a.parquet", big)
	en, data := fetch(t, c, b, v1)
	require.Equal(t, big, data)
	en.Release()
	srv.ResetRequests()
	en, _ = fetch(t, c, b, v1)
	en.Release()
	require.Empty(t, srv.Requests(), "a hit asks the store nothing")
	require.EqualValues(t, 1, c.Stats().Hits)

	v2 := put(t, b, "k/a.parquet", []byte("new content"))
	require.NotEqual(t, objcache.Name(b, v1), objcache.Name(b, v2))
	en2, data := fetch(t, c, b, v2)
	defer en2.Release()
	require.Equal(t, []byte("new content"), data)

	// A listing older than the object: the fetch fails, rather than
	// caching new bytes under the old version's name.
	v3 := put(t, b, "k/b.parquet", []byte("third"))
	put(t, b, "k/b.parquet", []byte("fourth"))
	_, err = c.Fetch(context.Background(), b, v3)
	require.ErrorIs(t, err, objcache.ErrChanged)
	require.ErrorContains(t, err, "s3://quiver-test/k/b.parquet")
}

// Copies no one holds are evicted least recently used first; held ones
// never are; a fetch that cannot fit fails and names the cache.
func TestEvictionIsLRUAndSparesHeldCopies(t *testing.T) {
	b, _ := bucket(t)
	dir := t.TempDir()
	c, err := objcache.Open(objcache.Options{Dir: dir, MaxBytes: 3000})
	require.NoError(t, err)
	objs := map[string]storage.ObjectInfo{}
	for _, k := range []string{"a", "b", "c", "d"} {
		objs[k] = put(t, b, k, bytes.Repeat([]byte(k), 1000))
	}
	for _, k := range []string{"a", "b", "c"} {
		en, _ := fetch(t, c, b, objs[k])
		en.Release()
	}
	en, _ := fetch(t, c, b, objs["a"])  // a is now the most recent, and held
	en2, _ := fetch(t, c, b, objs["d"]) // evicts b, the least recent
	require.ElementsMatch(t, []string{objcache.Name(b, objs["a"]), objcache.Name(b, objs["c"]), objcache.Name(b, objs["d"])}, names(t, dir))
	require.EqualValues(t, 1, c.Stats().Evicted)

	// With a and d held, b fits only by evicting c; with c held too, it
	// does not fit at all.
	en3, _ := fetch(t, c, b, objs["c"])
	_, err = c.Fetch(context.Background(), b, objs["b"])
	require.ErrorContains(t, err, "does not fit in the object cache")
	require.ErrorContains(t, err, dir)
	require.ErrorContains(t, err, "s3://quiver-test/b")
	en3.Release()
	en4, _ := fetch(t, c, b, objs["b"])
	require.LessOrEqual(t, c.Stats().Bytes, int64(3000))
	for _, e := range []*objcache.Entry{en, en2, en4} {
		e.Release()
	}

	big := put(t, b, "big", bytes.Repeat([]byte("x"), 3001))
	_, err = c.Fetch(context.Background(), b, big)
	require.ErrorContains(t, err, "more than the object cache holds")
}

// Open takes stock of the copies a previous run left, removes temporary
// files, evicts beyond the bound oldest first, and finds copies another
// process put there since.
func TestOpenTakesStock(t *testing.T) {
	b, srv := bucket(t)
	dir := t.TempDir()
	c, err := objcache.Open(objcache.Options{Dir: dir, MaxBytes: 10_000})
	require.NoError(t, err)
	a := put(t, b, "a", bytes.Repeat([]byte("a"), 1000))
	en, _ := fetch(t, c, b, a)
	en.Release()
	leftover := filepath.Join(dir, "x.obj.123-1"+durable.TempSuffix)
	require.NoError(t, os.WriteFile(leftover, []byte("partial"), 0o644))

	srv.ResetRequests()
	c2, err := objcache.Open(objcache.Options{Dir: dir, MaxBytes: 10_000})
	require.NoError(t, err)
	require.NoFileExists(t, leftover)
	en, data := fetch(t, c2, b, a)
	en.Release()
	require.Len(t, data, 1000)
	require.Empty(t, srv.Requests())
	require.EqualValues(t, 1000, c2.Stats().Bytes)

	// A copy another cache over the directory fetched later is found.
	d := put(t, b, "d", []byte("dddd"))
	en, _ = fetch(t, c, b, d)
	en.Release()
	srv.ResetRequests()
	en, _ = fetch(t, c2, b, d)
	en.Release()
	require.Empty(t, srv.Requests())

	// Reopened with a smaller bound, the cache evicts down to it.
	c3, err := objcache.Open(objcache.Options{Dir: dir, MaxBytes: 500})
	require.NoError(t, err)
	require.LessOrEqual(t, c3.Stats().Bytes, int64(500))
	require.Equal(t, []string{objcache.Name(b, d)}, names(t, dir))
}

// Concurrent fetches of one object share one download; a failed download
// leaves nothing in the directory and is not remembered.
func TestConcurrentFetchesAndFailures(t *testing.T) {
	b, srv := bucket(t)
	dir := t.TempDir()
	c, err := objcache.Open(objcache.Options{Dir: dir, MaxBytes: 1 << 30})
	require.NoError(t, err)
	a := put(t, b, "a", bytes.Repeat([]byte("a"), 6<<20))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			en, err := c.Fetch(context.Background(), b, a)
			if err != nil {
				t.Error(err)
				return
			}
			en.Release()
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, c.Stats().Misses)

	e := put(t, b, "e", []byte("eeee"))
	srv.FailNext(100, 403)
	_, err = c.Fetch(context.Background(), b, e)
	require.Error(t, err)
	require.ErrorContains(t, err, "s3://quiver-test/e")
	require.NotContains(t, err.Error(), s3test.SecretKey)
	for _, n := range names(t, dir) {
		require.False(t, strings.HasSuffix(n, durable.TempSuffix), n)
	}
	srv.FailNext(0, 0)
	en, data := fetch(t, c, b, e)
	en.Release()
	require.Equal(t, []byte("eeee"), data)
}

// A copy one cache holds is not evicted by another cache over the same
// directory (another process, say) until it is released.
func TestHeldCopiesSurviveOtherCaches(t *testing.T) {
	b, _ := bucket(t)
	dir := t.TempDir()
	a := put(t, b, "a", bytes.Repeat([]byte("a"), 1000))
	other := put(t, b, "other", bytes.Repeat([]byte("o"), 1000))
	c1, err := objcache.Open(objcache.Options{Dir: dir, MaxBytes: 10_000})
	require.NoError(t, err)
	held, _ := fetch(t, c1, b, a)

	c2, err := objcache.Open(objcache.Options{Dir: dir, MaxBytes: 1500}) // finds a's copy, within its bound
	require.NoError(t, err)
	_, err = c2.Fetch(context.Background(), b, other)
	require.ErrorContains(t, err, "does not fit in the object cache")
	require.FileExists(t, held.Path)
	data, err := os.ReadFile(held.Path)
	require.NoError(t, err)
	require.Len(t, data, 1000)

	held.Release()
	en, data := fetch(t, c2, b, other)
	defer en.Release()
	require.Len(t, data, 1000)
	require.NoFileExists(t, held.Path)
}
