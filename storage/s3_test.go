package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/storage"
)

// forEachServer runs test against the in-process S3 server and, when a
// MinIO binary is present, against MinIO.
func forEachServer(t *testing.T, test func(t *testing.T, srv *s3test.Server)) {
	t.Run("gofakes3", func(t *testing.T) { test(t, s3test.Start(t)) })
	t.Run("minio", func(t *testing.T) { test(t, s3test.StartMinIO(t)) })
}

func newS3(t *testing.T, srv *s3test.Server, edit func(*storage.S3Options)) *storage.S3 {
	t.Helper()
	opts := srv.Options()
	if edit != nil {
		edit(&opts)
	}
	b, err := storage.NewS3(context.Background(), srv.Bucket, opts)
	require.NoError(t, err)
	return b
}

// count counts the requests of a method whose query holds substr.
func count(reqs []s3test.Request, method, substr string) int {
	n := 0
	for _, r := range reqs {
		if r.Method == method && strings.Contains(r.Query, substr) {
			n++
		}
	}
	return n
}

func TestS3PutUsesMultipartAboveThePartSize(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		b := newS3(t, srv, nil)

		_, err := b.Put(ctx, "small", bytes.NewReader(randomBytes(storage.MinPartSize-1, 1)))
		require.NoError(t, err)
		require.Zero(t, count(srv.Requests(), http.MethodPost, "uploads"), "a body under the part size is one PUT")

		srv.ResetRequests()
		_, err = b.Put(ctx, "big", bytes.NewReader(randomBytes(3*storage.MinPartSize+1, 2)))
		require.NoError(t, err)
		reqs := srv.Requests()
		require.Equal(t, 1, count(reqs, http.MethodPost, "uploads"), "one multipart upload created: %v", reqs)
		require.Equal(t, 4, count(reqs, http.MethodPut, "partNumber="), "four parts")
		require.Equal(t, 1, count(reqs, http.MethodPost, "uploadId="), "one completion")

		// A body that fails after two parts: the upload is aborted and no
		// object appears.
		srv.ResetRequests()
		_, err = b.Put(ctx, "broken", &failingReader{n: 2*storage.MinPartSize + 100})
		require.ErrorIs(t, err, errBody)
		require.ErrorContains(t, err, "s3://quiver-test/broken")
		reqs = srv.Requests()
		require.Equal(t, 1, count(reqs, http.MethodDelete, "uploadId="), "the upload is aborted: %v", reqs)
		require.Zero(t, count(reqs, http.MethodPost, "uploadId="), "and never completed")
		_, err = b.Stat(ctx, "broken")
		require.ErrorIs(t, err, storage.ErrNotFound)
	})
}

func TestS3MissingBucket(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		opts := srv.Options()
		b, err := storage.NewS3(ctx, "no-such-bucket", opts)
		require.NoError(t, err)
		_, err = b.Stat(ctx, "a/key")
		require.ErrorIs(t, err, storage.ErrBucketNotFound)
		require.ErrorContains(t, err, "stat s3://no-such-bucket/a/key")
		_, err = b.Open(ctx, "a/key")
		require.ErrorIs(t, err, storage.ErrBucketNotFound)
		_, err = b.Put(ctx, "a/key", strings.NewReader("x"))
		require.ErrorIs(t, err, storage.ErrBucketNotFound)
		require.ErrorContains(t, err, "s3://no-such-bucket/a/key")
		_, err = b.List(ctx, "a/")
		require.ErrorIs(t, err, storage.ErrBucketNotFound)
		require.ErrorContains(t, err, "list s3://no-such-bucket/a/")
		_, err = b.PutIfAbsent(ctx, "a/key", []byte("x"))
		require.ErrorIs(t, err, storage.ErrBucketNotFound)
	})
}

func TestS3WrongCredentialsNameNoSecret(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		const wrongSecret = "wrong-secret-Zq8pX3vN7mK2rT5wY9bC"
		for name, creds := range map[string][2]string{
			"wrong secret":     {s3test.AccessKey, wrongSecret},
			"unknown key id":   {"QUIVERUNKNOWNKEYID00", wrongSecret},
			"right key, empty": {s3test.AccessKey, "x"},
		} {
			t.Run(name, func(t *testing.T) {
				b := newS3(t, srv, func(o *storage.S3Options) {
					o.Credentials = s3test.Credentials(creds[0], creds[1])
					o.MaxRetries = -1
				})
				_, err := b.Put(ctx, "secret/check", strings.NewReader("x"))
				require.Error(t, err)
				require.ErrorContains(t, err, "s3://quiver-test/secret/check")
				require.ErrorContains(t, err, "403")
				require.NotContains(t, err.Error(), creds[1])
				require.NotContains(t, err.Error(), s3test.SecretKey)
				_, err = b.Stat(ctx, "secret/check")
				require.Error(t, err)
				require.NotContains(t, err.Error(), creds[1])
				_, err = b.List(ctx, "")
				require.Error(t, err)
				require.NotContains(t, err.Error(), creds[1])
			})
		}
		// The right ones work, so the server did check the signature.
		b := newS3(t, srv, nil)
		_, err := b.Put(ctx, "secret/check", strings.NewReader("x"))
		require.NoError(t, err)
	})
}

func TestS3CredentialsFromTheEnvironmentChain(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	dir := t.TempDir()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	opts := srv.Options()
	opts.Credentials = nil

	t.Run("none", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		b, err := storage.NewS3(ctx, srv.Bucket, opts)
		require.NoError(t, err, "credentials are looked up at the first request")
		_, err = b.Stat(ctx, "k")
		require.ErrorContains(t, err, "stat s3://quiver-test/k")
		require.ErrorContains(t, err, "credentials")
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
		b, err := storage.NewS3(ctx, srv.Bucket, opts)
		require.NoError(t, err)
		_, err = b.Put(ctx, "env", strings.NewReader("x"))
		require.NoError(t, err)
	})
	t.Run("shared credentials file and profile", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		require.NoError(t, os.WriteFile(filepath.Join(dir, "credentials"),
			[]byte("[quiver]\naws_access_key_id = "+s3test.AccessKey+"\naws_secret_access_key = "+s3test.SecretKey+"\n"), 0o600))
		t.Setenv("AWS_PROFILE", "quiver")
		b, err := storage.NewS3(ctx, srv.Bucket, opts)
		require.NoError(t, err)
		_, err = b.Put(ctx, "profile", strings.NewReader("x"))
		require.NoError(t, err)
	})
}

func TestS3RetriesTransientFailures(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		b := newS3(t, srv, func(o *storage.S3Options) { o.MaxRetries = 3 })

		for _, status := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable} {
			srv.ResetRequests()
			srv.FailNext(2, status)
			_, err := b.Put(ctx, "retried", strings.NewReader("survives two failures"))
			require.NoError(t, err)
			reqs := srv.Requests()
			require.Equal(t, status, reqs[0].Status)
			require.Equal(t, status, reqs[1].Status)

			srv.FailNext(2, status)
			_, err = b.PutIfAbsent(ctx, "created-"+http.StatusText(status), []byte("x"))
			require.NoError(t, err)

			srv.FailNext(2, status)
			o, err := b.Open(ctx, "retried")
			require.NoError(t, err)
			srv.FailNext(2, status)
			got, err := io.ReadAll(o)
			require.NoError(t, err)
			require.Equal(t, "survives two failures", string(got))
		}

		// More failures than retries: an error that names the object.
		srv.FailNext(10, http.StatusInternalServerError)
		_, err := b.Put(ctx, "given-up", strings.NewReader("x"))
		require.ErrorContains(t, err, "put s3://quiver-test/given-up")
		require.ErrorContains(t, err, "500")
		srv.FailNext(0, 0)

		// With retries off, one failure is an error.
		none := newS3(t, srv, func(o *storage.S3Options) { o.MaxRetries = -1 })
		srv.FailNext(1, http.StatusInternalServerError)
		_, err = none.Stat(ctx, "retried")
		require.Error(t, err)
	})
}

func TestS3ConnectionCutMidRead(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *s3test.Server) {
		proxy := s3test.StartProxy(t, srv.Endpoint)
		direct := newS3(t, srv, nil)
		data := randomBytes(4<<20, 3)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := direct.Put(ctx, "cut.bin", bytes.NewReader(data))
		require.NoError(t, err)

		viaProxy := func(retries int) storage.Object {
			b := newS3(t, srv, func(o *storage.S3Options) { o.Endpoint = proxy.Endpoint; o.MaxRetries = retries })
			o, err := b.Open(ctx, "cut.bin")
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, o.Close()) })
			return o
		}

		// Every connection cut after 64 KiB: an error, not a short read.
		o := viaProxy(2)
		proxy.Cut(64<<10, -1)
		buf := make([]byte, len(data))
		n, err := o.ReadAt(buf, 0)
		require.Error(t, err)
		require.NotErrorIs(t, err, io.EOF)
		require.NotErrorIs(t, err, context.DeadlineExceeded, "a cut connection must not hang")
		require.Less(t, n, len(buf))
		require.ErrorContains(t, err, "read s3://quiver-test/cut.bin")
		require.ErrorContains(t, err, "the connection ended")
		require.Positive(t, proxy.Cuts())
		_, err = io.ReadAll(o)
		require.Error(t, err, "Read through a cut connection fails too")

		// One cut: the read resumes where the connection ended.
		proxy.Cut(-1, 0)
		o = viaProxy(2)
		before := proxy.Cuts()
		proxy.Cut(256<<10, 1)
		n, err = o.ReadAt(buf, 0)
		require.ErrorIs(t, err, io.EOF) // the whole object, to its end
		require.Equal(t, len(data), n)
		require.True(t, bytes.Equal(data, buf), "a resumed read differs")
		require.Equal(t, before+1, proxy.Cuts())
	})
}

func TestS3TLSOptions(t *testing.T) {
	ctx := context.Background()
	srv := s3test.StartTLS(t)

	// The server's CA is not the system's: refused without ca_file.
	b := newS3(t, srv, func(o *storage.S3Options) { o.CAFile = ""; o.MaxRetries = -1 })
	_, err := b.Put(ctx, "tls", strings.NewReader("x"))
	require.ErrorContains(t, err, "certificate")
	require.ErrorContains(t, err, "s3://quiver-test/tls")

	b = newS3(t, srv, nil) // with ca_file
	_, err = b.Put(ctx, "tls", strings.NewReader("x"))
	require.NoError(t, err)

	b = newS3(t, srv, func(o *storage.S3Options) { o.CAFile = ""; o.InsecureSkipVerify = true })
	_, err = b.Stat(ctx, "tls")
	require.NoError(t, err)

	_, err = storage.NewS3(ctx, srv.Bucket, storage.S3Options{CAFile: filepath.Join(t.TempDir(), "missing.pem")})
	require.ErrorContains(t, err, "ca_file")
}

// TestS3ParquetReader reads a Parquet file straight from the store with
// arrow-go's reader, through the Object's ReaderAt.
func TestS3ParquetReader(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		b := newS3(t, srv, nil)

		mem := memory.NewGoAllocator()
		schema := arrow.NewSchema([]arrow.Field{{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "rate", Type: arrow.PrimitiveTypes.Float64}}, nil)
		bld := array.NewRecordBuilder(mem, schema)
		defer bld.Release()
		const rows = 200_000
		for i := range rows {
			bld.Field(0).(*array.Int64Builder).Append(int64(i))
			bld.Field(1).(*array.Float64Builder).Append(float64(i) / 2)
		}
		rec := bld.NewRecordBatch()
		defer rec.Release()
		var buf bytes.Buffer
		w, err := pqarrow.NewFileWriter(schema, &buf, parquet.NewWriterProperties(parquet.WithMaxRowGroupLength(50_000)), pqarrow.DefaultWriterProps())
		require.NoError(t, err)
		require.NoError(t, w.Write(rec))
		require.NoError(t, w.Close())
		_, err = b.Put(ctx, "stats/part-0.parquet", &buf)
		require.NoError(t, err)

		o, err := b.Open(ctx, "stats/part-0.parquet")
		require.NoError(t, err)
		defer func() { require.NoError(t, o.Close()) }()
		pf, err := file.NewParquetReader(o)
		require.NoError(t, err)
		defer func() { require.NoError(t, pf.Close()) }()
		require.Equal(t, int64(rows), pf.NumRows())
		require.Equal(t, 4, pf.NumRowGroups())
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{Parallel: true, BatchSize: 10_000}, mem)
		require.NoError(t, err)
		tbl, err := fr.ReadTable(ctx)
		require.NoError(t, err)
		defer tbl.Release()
		require.Equal(t, int64(rows), tbl.NumRows())
		ids := tbl.Column(0).Data().Chunks()
		var sum int64
		for _, c := range ids {
			for _, v := range c.(*array.Int64).Int64Values() {
				sum += v
			}
		}
		require.Equal(t, int64(rows*(rows-1)/2), sum)
	})
}

func TestS3StoreOpensURIs(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	st := storage.NewStore(storage.Config{S3: srv.Options()})

	b, key, err := st.Open(ctx, "s3://quiver-test/data/x.parquet")
	require.NoError(t, err)
	require.Equal(t, "data/x.parquet", key)
	require.Equal(t, "s3://quiver-test/data/x.parquet", b.URI(key))
	b2, _, err := st.Open(ctx, "s3://quiver-test/other")
	require.NoError(t, err)
	require.Same(t, b, b2, "one client per bucket")

	dir := t.TempDir()
	lb, lkey, err := st.Open(ctx, filepath.Join(dir, "out.parquet"))
	require.NoError(t, err)
	_, err = lb.Put(ctx, lkey, strings.NewReader("local"))
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join(dir, "out.parquet"))
	require.NoError(t, err)
	require.Equal(t, "local", string(got))

	_, _, err = st.Open(ctx, "file://"+filepath.Join(dir, "out.parquet"))
	require.NoError(t, err)
	_, _, err = st.Open(ctx, "gs://bucket/key")
	require.ErrorIs(t, err, storage.ErrInvalid)
	require.ErrorContains(t, err, "gs://bucket/key")
}

func TestS3OptionsValidate(t *testing.T) {
	o := storage.S3Options{Endpoint: "minio:9000", MaxRetries: -3, PartSize: 1 << 20, Concurrency: -1}
	err := o.Validate()
	require.Error(t, err)
	for _, want := range []string{"storage.s3.endpoint", "storage.s3.max_retries", "storage.s3.part_size: 1MiB", "storage.s3.concurrency"} {
		require.ErrorContains(t, err, want)
	}
	o = storage.S3Options{}
	o.EnsureDefaults()
	require.NoError(t, o.Validate())
	require.Equal(t, storage.ByteSize(16<<20), o.PartSize)
	_, err = storage.NewS3(context.Background(), "Bad_Bucket", o)
	require.ErrorIs(t, err, storage.ErrInvalid)
	require.True(t, errors.Is(err, storage.ErrInvalid))
}

func TestS3ObjectReplacedDuringARead(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		b := newS3(t, srv, nil)
		_, err := b.Put(ctx, "v.bin", strings.NewReader("version one"))
		require.NoError(t, err)
		o, err := b.Open(ctx, "v.bin")
		require.NoError(t, err)
		defer func() { require.NoError(t, o.Close()) }()
		p := make([]byte, 7)
		_, err = o.ReadAt(p, 0)
		require.NoError(t, err)
		require.Equal(t, "version", string(p))

		_, err = b.Put(ctx, "v.bin", strings.NewReader("version two, longer"))
		require.NoError(t, err)
		_, err = o.ReadAt(p, 4)
		require.ErrorContains(t, err, "replaced while it was read")
		require.ErrorContains(t, err, "s3://quiver-test/v.bin")
	})
}

// TestS3FailedPartAbortsTheUpload: a part the store keeps refusing fails
// the Put, which aborts the upload; a part refused once is retried.
func TestS3FailedPartAbortsTheUpload(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *s3test.Server) {
		ctx := context.Background()
		isPart := func(r s3test.Request) bool {
			return r.Method == http.MethodPut && strings.Contains(r.Query, "partNumber=2")
		}
		data := randomBytes(3*storage.MinPartSize, 4)

		b := newS3(t, srv, func(o *storage.S3Options) { o.MaxRetries = 2 })
		srv.FailNextMatching(1, http.StatusInternalServerError, isPart)
		_, err := b.Put(ctx, "part-retried", bytes.NewReader(data))
		require.NoError(t, err)
		o, err := b.Open(ctx, "part-retried")
		require.NoError(t, err)
		got, err := io.ReadAll(o)
		require.NoError(t, err)
		require.NoError(t, o.Close())
		require.True(t, bytes.Equal(data, got))

		srv.ResetRequests()
		srv.FailNextMatching(100, http.StatusInternalServerError, isPart)
		_, err = b.Put(ctx, "part-refused", bytes.NewReader(data))
		srv.FailNext(0, 0)
		require.ErrorContains(t, err, "put part 2 of s3://quiver-test/part-refused")
		require.ErrorContains(t, err, "500")
		reqs := srv.Requests()
		require.Equal(t, 1, count(reqs, http.MethodDelete, "uploadId="), "the upload is aborted: %v", reqs)
		require.Zero(t, count(reqs, http.MethodPost, "uploadId="), "and never completed")
		_, err = b.Stat(ctx, "part-refused")
		require.ErrorIs(t, err, storage.ErrNotFound)
	})
}

// endless yields zeros forever, counting them.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	clear(p)
	e.n += int64(len(p))
	return len(p), nil
}

// TestS3RefusedPartStopsReadingTheBody: once a part has failed, Put reads
// no more of its body (an endless one here) and returns.
func TestS3RefusedPartStopsReadingTheBody(t *testing.T) {
	srv := s3test.Start(t)
	b := newS3(t, srv, func(o *storage.S3Options) { o.MaxRetries = -1; o.Concurrency = 2 })
	srv.FailNextMatching(1000, http.StatusInternalServerError, func(r s3test.Request) bool {
		return r.Method == http.MethodPut && strings.Contains(r.Query, "partNumber=3")
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	body := &endless{}
	_, err := b.Put(ctx, "endless", body)
	require.ErrorContains(t, err, "put part 3 of s3://quiver-test/endless")
	require.NotErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, body.n, int64(20*storage.MinPartSize), "the body was read on after the failure")
	require.Equal(t, 1, count(srv.Requests(), http.MethodDelete, "uploadId="))
}

// TestS3StalledRead: a store that stops sending, mid-body or before its
// answer, is given up on after read_timeout and retried; a read that
// keeps stalling is an error, not a hang.
func TestS3StalledRead(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv *s3test.Server) {
		proxy := s3test.StartProxy(t, srv.Endpoint)
		data := randomBytes(2<<20, 5)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := newS3(t, srv, nil).Put(ctx, "stall.bin", bytes.NewReader(data))
		require.NoError(t, err)
		b := newS3(t, srv, func(o *storage.S3Options) {
			o.Endpoint = proxy.Endpoint
			o.MaxRetries = 2
			o.ReadTimeout = storage.Duration(300 * time.Millisecond)
		})
		o, err := b.Open(ctx, "stall.bin")
		require.NoError(t, err)
		defer func() { require.NoError(t, o.Close()) }()
		buf := make([]byte, len(data))

		for _, after := range []int64{128 << 10, 0} { // mid-body; before the answer
			proxy.Stall(after, 1)
			before := proxy.Cuts()
			clear(buf)
			n, err := o.ReadAt(buf, 0)
			require.ErrorIs(t, err, io.EOF, "stalled after %d bytes once: resumed to the end", after)
			require.Equal(t, len(data), n)
			require.True(t, bytes.Equal(data, buf))
			require.Equal(t, before+1, proxy.Cuts())
		}

		proxy.Stall(128<<10, -1)
		_, err = o.ReadAt(buf, 0)
		require.ErrorContains(t, err, "read s3://quiver-test/stall.bin")
		require.ErrorContains(t, err, "read_timeout")
		require.NotErrorIs(t, err, context.DeadlineExceeded, "a stalled read must not wait for the caller's deadline")
		proxy.Cut(-1, 0)
	})
}
