package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/storage"
)

// s3StorageRepo points the quickstart repository's storage section at srv, with
// its credentials in the environment (the AWS chain) and the object
// cache in the test's directory.
func s3StorageRepo(t *testing.T, srv *s3test.Server) string {
	t.Helper()
	dir := initRepo(t)
	fh, err := os.OpenFile(filepath.Join(dir, "quiver.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = io.WriteString(fh, "storage:\n  s3: {endpoint: "+srv.Endpoint+", region: "+s3test.Region+", path_style: true, part_size: 5MiB}\n")
	require.NoError(t, err)
	require.NoError(t, fh.Close())
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-aws-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("XDG_CACHE_HOME", filepath.Join(t.TempDir(), "cache"))
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	return dir
}

// quiver training-set --out s3://... uploads the set it would write
// locally, value for value; --preview reads the object back.
func TestTrainingSetOutS3(t *testing.T) {
	t.Setenv("QUIVER_AUTHOR", "tester")
	srv := s3test.Start(t)
	dir := s3StorageRepo(t, srv)
	ents := filepath.Join(dir, "data", "driver_labels.parquet")
	ctx := context.Background()
	b, err := storage.NewS3(ctx, srv.Bucket, srv.Options())
	require.NoError(t, err)
	for _, name := range []string{"train.arrow", "train.parquet"} {
		local := filepath.Join(t.TempDir(), name)
		code, _, stderr := quiver(t, "training-set", "--repo", dir, "--entities", ents, "--features", "driver_hourly:conv_rate", "--out", local)
		require.Equal(t, 0, code, stderr)
		uri := "s3://" + srv.Bucket + "/sets/" + name
		code, out, stderr := quiver(t, "training-set", "--repo", dir, "--entities", ents, "--features", "driver_hourly:conv_rate", "--out", uri)
		require.Equal(t, 0, code, stderr)
		require.Contains(t, out, "Wrote 1000 rows to "+uri)

		want, err := os.ReadFile(local)
		require.NoError(t, err)
		obj, err := b.Open(ctx, "sets/"+name)
		require.NoError(t, err)
		got, err := io.ReadAll(obj)
		require.NoError(t, err)
		require.NoError(t, obj.Close())
		// Value for value: the batches' bounds follow DuckDB's.
		if name == "train.arrow" {
			require.Equal(t, arrowValues(t, want), arrowValues(t, got), "the object holds the local file's values, in order")
		} else {
			require.Equal(t, parquetValues(t, want), parquetValues(t, got), "the object holds the local file's values, in order")
		}
	}

	code, out, stderr := quiver(t, "training-set", "--repo", dir, "--entities", ents, "--features", "driver_hourly:conv_rate",
		"--out", "s3://"+srv.Bucket+"/sets/p.parquet", "--preview", "3")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "conv_rate")

	// A missing bucket is named, and nothing is left anywhere.
	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--entities", ents, "--features", "driver_hourly:conv_rate",
		"--out", "s3://no-such-bucket/sets/t.arrow")
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "s3://no-such-bucket/sets/t.arrow")
	require.Contains(t, stderr, "bucket not found")

	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--entities", ents, "--features", "driver_hourly:conv_rate",
		"--out", "gs://bucket/t.arrow")
	require.Equal(t, exitUsage, code, stderr)
}

// parquetValues reads a Parquet file's rows as each column's values,
// printed.
func parquetValues(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	pf, err := file.NewParquetReader(bytes.NewReader(data))
	require.NoError(t, err)
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	require.NoError(t, err)
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	require.NoError(t, err)
	defer rr.Release()
	out := map[string][]string{}
	for rr.Next() {
		rec := rr.RecordBatch()
		for i, f := range rec.Schema().Fields() {
			for r := range int(rec.NumRows()) {
				out[f.Name] = append(out[f.Name], rec.Column(i).ValueStr(r))
			}
		}
	}
	require.NoError(t, rr.Err())
	return out
}

// arrowValues reads an Arrow IPC file's rows as each column's values,
// printed.
func arrowValues(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	r, err := ipc.NewFileReader(bytes.NewReader(data))
	require.NoError(t, err)
	defer r.Close()
	out := map[string][]string{}
	for i := range r.NumRecords() {
		rec, err := r.RecordBatchAt(i)
		require.NoError(t, err)
		for c, f := range rec.Schema().Fields() {
			for j := range int(rec.NumRows()) {
				out[f.Name] = append(out[f.Name], rec.Column(c).ValueStr(j))
			}
		}
		rec.Release()
	}
	return out
}
