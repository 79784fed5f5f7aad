package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/storage"
)

// bucketCase is one implementation under the conformance suite.
type bucketCase struct {
	name string
	open func(t *testing.T) storage.Bucket
}

func bucketCases() []bucketCase {
	return []bucketCase{
		{"local", func(t *testing.T) storage.Bucket {
			b, err := storage.NewLocal(t.TempDir())
			require.NoError(t, err)
			return b
		}},
		{"s3", func(t *testing.T) storage.Bucket {
			srv := s3test.Start(t)
			b, err := storage.NewS3(context.Background(), srv.Bucket, srv.Options())
			require.NoError(t, err)
			return b
		}},
		// MinIO when a binary was built (scripts/minio.sh); skipped otherwise.
		{"minio", func(t *testing.T) storage.Bucket {
			srv := s3test.StartMinIO(t)
			b, err := storage.NewS3(context.Background(), srv.Bucket, srv.Options())
			require.NoError(t, err)
			return b
		}},
	}
}

// TestBucketConformance runs one suite against every implementation.
func TestBucketConformance(t *testing.T) {
	for _, bc := range bucketCases() {
		t.Run(bc.name, func(t *testing.T) {
			t.Run("PutStatOpen", func(t *testing.T) { testPutStatOpen(t, bc.open(t)) })
			t.Run("ListGlob", func(t *testing.T) { testListGlob(t, bc.open(t)) })
			t.Run("RangedReads", func(t *testing.T) { testRangedReads(t, bc.open(t)) })
			t.Run("Multipart", func(t *testing.T) { testBigObject(t, bc.open(t)) })
			t.Run("PutIfAbsent", func(t *testing.T) { testPutIfAbsent(t, bc.open(t)) })
			t.Run("Missing", func(t *testing.T) { testMissing(t, bc.open(t)) })
			t.Run("Delete", func(t *testing.T) { testDelete(t, bc.open(t)) })
		})
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testPutStatOpen(t *testing.T, b storage.Bucket) {
	ctx := context.Background()
	data := []byte("hello, object storage")
	info, err := b.Put(ctx, "dir/sub/hello.txt", bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, "dir/sub/hello.txt", info.Key)
	require.Equal(t, int64(len(data)), info.Size)
	require.NotEmpty(t, info.ETag)
	require.False(t, info.ModTime.IsZero())

	st, err := b.Stat(ctx, "dir/sub/hello.txt")
	require.NoError(t, err)
	require.Equal(t, info.Size, st.Size)
	require.Equal(t, info.ETag, st.ETag)

	o, err := b.Open(ctx, "dir/sub/hello.txt")
	require.NoError(t, err)
	got, err := io.ReadAll(o)
	require.NoError(t, err)
	require.Equal(t, data, got)
	require.Equal(t, info.ETag, o.Info().ETag)
	require.NoError(t, o.Close())

	// Replacing changes the content and the ETag.
	info2, err := b.Put(ctx, "dir/sub/hello.txt", strings.NewReader("replaced, and longer than before"))
	require.NoError(t, err)
	require.NotEqual(t, info.ETag, info2.ETag)
	o, err = b.Open(ctx, "dir/sub/hello.txt")
	require.NoError(t, err)
	got, err = io.ReadAll(o)
	require.NoError(t, err)
	require.Equal(t, "replaced, and longer than before", string(got))
	require.NoError(t, o.Close())

	// An empty object.
	_, err = b.Put(ctx, "empty", bytes.NewReader(nil))
	require.NoError(t, err)
	o, err = b.Open(ctx, "empty")
	require.NoError(t, err)
	n, err := o.ReadAt(make([]byte, 4), 0)
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)
	require.NoError(t, o.Close())
}

func keys(infos []storage.ObjectInfo) []string {
	out := []string{}
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return out
}

func testListGlob(t *testing.T, b storage.Bucket) {
	ctx := context.Background()
	for _, k := range []string{
		"stats/2024/a.parquet", "stats/2024/b.parquet", "stats/2024/notes.txt",
		"stats/2025/c.parquet", "stats/x.parquet", "stats-old/d.parquet", "other/e.parquet",
		"braces/{a}.parquet",
	} {
		_, err := b.Put(ctx, k, strings.NewReader(k))
		require.NoError(t, err)
	}
	all, err := b.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, 8)

	got, err := b.List(ctx, "stats/")
	require.NoError(t, err)
	require.Equal(t, []string{"stats/2024/a.parquet", "stats/2024/b.parquet", "stats/2024/notes.txt", "stats/2025/c.parquet", "stats/x.parquet"}, keys(got))

	got, err = b.List(ctx, "stats")
	require.NoError(t, err)
	require.Equal(t, []string{"stats-old/d.parquet", "stats/2024/a.parquet", "stats/2024/b.parquet", "stats/2024/notes.txt", "stats/2025/c.parquet", "stats/x.parquet"}, keys(got))

	got, err = b.List(ctx, "stats/2024/b")
	require.NoError(t, err)
	require.Equal(t, []string{"stats/2024/b.parquet"}, keys(got))

	got, err = b.List(ctx, "nothing/")
	require.NoError(t, err)
	require.Empty(t, got)

	for _, c := range []struct {
		pattern string
		want    []string
	}{
		{"stats/*/*.parquet", []string{"stats/2024/a.parquet", "stats/2024/b.parquet", "stats/2025/c.parquet"}},
		{"stats/*.parquet", []string{"stats/x.parquet"}}, // * does not cross /
		{"stats/2024/[ab].parquet", []string{"stats/2024/a.parquet", "stats/2024/b.parquet"}},
		{"stats/202?/c.parquet", []string{"stats/2025/c.parquet"}},
		{"stats*/*.parquet", []string{"stats-old/d.parquet", "stats/x.parquet"}},
		{"braces/{a}.parquet", []string{"braces/{a}.parquet"}}, // { is literal
		{"other/e.parquet", []string{"other/e.parquet"}},
		{"other/*.csv", []string{}},
	} {
		got, err := storage.Glob(ctx, b, c.pattern)
		require.NoError(t, err, c.pattern)
		require.Equal(t, c.want, keys(got), c.pattern)
	}
	_, err = storage.Glob(ctx, b, "stats/**/*.parquet")
	require.ErrorIs(t, err, storage.ErrInvalid)
	require.ErrorContains(t, err, "stats/**/*.parquet")
	_, err = storage.Glob(ctx, b, "stats/[a")
	require.ErrorIs(t, err, storage.ErrInvalid)
}

func testRangedReads(t *testing.T, b storage.Bucket) {
	ctx := context.Background()
	// Larger than two parts of the S3 test options (5 MiB), so that a
	// whole-object ReadAt runs parallel GETs.
	data := randomBytes(11<<20+12345, 1)
	_, err := b.Put(ctx, "big.bin", bytes.NewReader(data))
	require.NoError(t, err)
	o, err := b.Open(ctx, "big.bin")
	require.NoError(t, err)
	defer func() { require.NoError(t, o.Close()) }()
	require.Equal(t, int64(len(data)), o.Info().Size)

	// The whole object at once.
	buf := make([]byte, len(data))
	n, err := o.ReadAt(buf, 0)
	if err != nil {
		require.ErrorIs(t, err, io.EOF)
	}
	require.Equal(t, len(data), n)
	require.True(t, bytes.Equal(data, buf), "whole-object ReadAt differs")

	// Ranges, concurrently.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 7))
			off := r.Int64N(int64(len(data)))
			ln := r.IntN(3 << 20)
			if int64(ln) > int64(len(data))-off {
				ln = int(int64(len(data)) - off)
			}
			p := make([]byte, ln)
			n, err := o.ReadAt(p, off)
			if err != nil && !(errors.Is(err, io.EOF) && off+int64(ln) == int64(len(data))) {
				errs <- err
				return
			}
			if n != ln || !bytes.Equal(p, data[off:off+int64(ln)]) {
				errs <- fmt.Errorf("ReadAt(%d, %d) = %d bytes, content equal: %v", ln, off, n, bytes.Equal(p[:n], data[off:off+int64(n)]))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// Past the end: the bytes there and io.EOF.
	p := make([]byte, 100)
	n, err = o.ReadAt(p, int64(len(data))-10)
	require.Equal(t, 10, n)
	require.ErrorIs(t, err, io.EOF)
	require.Equal(t, data[len(data)-10:], p[:10])
	n, err = o.ReadAt(p, int64(len(data)))
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)

	// Seek and Read.
	pos, err := o.Seek(-1000, io.SeekEnd)
	require.NoError(t, err)
	require.Equal(t, int64(len(data))-1000, pos)
	tail, err := io.ReadAll(o)
	require.NoError(t, err)
	require.Equal(t, data[len(data)-1000:], tail)
	_, err = o.Seek(3<<20, io.SeekStart)
	require.NoError(t, err)
	mid := make([]byte, 5000)
	_, err = io.ReadFull(o, mid)
	require.NoError(t, err)
	require.Equal(t, data[3<<20:3<<20+5000], mid)
}

func testBigObject(t *testing.T, b storage.Bucket) {
	ctx := context.Background()
	// Not a multiple of the part size, and one that is.
	for _, size := range []int{17<<20 + 3, 10 << 20} {
		data := randomBytes(size, uint64(size))
		info, err := b.Put(ctx, "multi/part.bin", io.MultiReader(bytes.NewReader(data[:1000]), bytes.NewReader(data[1000:])))
		require.NoError(t, err)
		require.Equal(t, int64(size), info.Size)
		o, err := b.Open(ctx, "multi/part.bin")
		require.NoError(t, err)
		got, err := io.ReadAll(o)
		require.NoError(t, err)
		require.NoError(t, o.Close())
		require.True(t, bytes.Equal(data, got), "multipart object of %d bytes differs", size)
	}
}

// failingReader yields n bytes and then fails.
type failingReader struct{ n int }

var errBody = errors.New("the body's source broke")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errBody
	}
	k := min(len(p), r.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	r.n -= k
	return k, nil
}

func TestPutFailureLeavesNothing(t *testing.T) {
	for _, bc := range bucketCases() {
		t.Run(bc.name, func(t *testing.T) {
			ctx := context.Background()
			b := bc.open(t)
			// A failing body, small and big: no object, and the old one stays.
			_, err := b.Put(ctx, "keep", strings.NewReader("old"))
			require.NoError(t, err)
			for _, n := range []int{1000, 12 << 20} {
				_, err := b.Put(ctx, "broken", &failingReader{n: n})
				require.ErrorIs(t, err, errBody)
				require.ErrorContains(t, err, "broken")
				_, err = b.Put(ctx, "keep", &failingReader{n: n})
				require.ErrorIs(t, err, errBody)
			}
			got, err := b.List(ctx, "")
			require.NoError(t, err)
			require.Equal(t, []string{"keep"}, keys(got))
			o, err := b.Open(ctx, "keep")
			require.NoError(t, err)
			old, err := io.ReadAll(o)
			require.NoError(t, err)
			require.Equal(t, "old", string(old))
			require.NoError(t, o.Close())
		})
	}
}

func testPutIfAbsent(t *testing.T, b storage.Bucket) {
	ctx := context.Background()
	_, err := b.PutIfAbsent(ctx, "locks/first", []byte("one"))
	require.NoError(t, err)
	_, err = b.PutIfAbsent(ctx, "locks/first", []byte("two"))
	require.ErrorIs(t, err, storage.ErrExist)
	require.ErrorContains(t, err, "locks/first")

	// Concurrent creators of one key: exactly one wins, and its content is
	// what the key holds.
	const creators = 16
	for round := range 5 {
		key := fmt.Sprintf("versions/%06d.json", round)
		var wg sync.WaitGroup
		results := make([]error, creators)
		for i := range creators {
			wg.Go(func() {
				_, results[i] = b.PutIfAbsent(ctx, key, []byte(fmt.Sprintf("creator %d", i)))
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range results {
			if err == nil {
				require.Equal(t, -1, winner, "two creators of %s won", key)
				winner = i
				continue
			}
			require.ErrorIs(t, err, storage.ErrExist)
		}
		require.NotEqual(t, -1, winner, "no creator of %s won", key)
		o, err := b.Open(ctx, key)
		require.NoError(t, err)
		got, err := io.ReadAll(o)
		require.NoError(t, err)
		require.NoError(t, o.Close())
		require.Equal(t, fmt.Sprintf("creator %d", winner), string(got))
	}
}

func testMissing(t *testing.T, b storage.Bucket) {
	ctx := context.Background()
	_, err := b.Stat(ctx, "no/such/key")
	require.ErrorIs(t, err, storage.ErrNotFound)
	require.ErrorContains(t, err, "no/such/key")
	require.ErrorContains(t, err, "stat")
	_, err = b.Open(ctx, "no/such/key")
	require.ErrorIs(t, err, storage.ErrNotFound)
	require.ErrorContains(t, err, "no/such/key")
}

func testDelete(t *testing.T, b storage.Bucket) {
	ctx := context.Background()
	_, err := b.Put(ctx, "gone", strings.NewReader("x"))
	require.NoError(t, err)
	require.NoError(t, b.Delete(ctx, "gone"))
	_, err = b.Stat(ctx, "gone")
	require.ErrorIs(t, err, storage.ErrNotFound)
	require.NoError(t, b.Delete(ctx, "gone"), "deleting a missing object is not an error")
	// Deleted keys can be created again.
	_, err = b.PutIfAbsent(ctx, "gone", []byte("again"))
	require.NoError(t, err)
}
