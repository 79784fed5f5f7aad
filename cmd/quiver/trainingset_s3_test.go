package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
)

// quiver training-set over a repository whose data root is an s3:// URI,
// with --entities an s3:// URI, writes what it writes over the same files
// locally; the object cache goes where offline.cache says.
func TestTrainingSetFromS3(t *testing.T) {
	ctx := context.Background()
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	args := []string{"training-set", "--repo", dir, "--features", "driver_hourly:conv_rate,driver_hourly:acc_rate"}
	want := filepath.Join(t.TempDir(), "local.parquet")
	code, _, stderr = quiver(t, append(args, "--entities", filepath.Join(dir, "data", "driver_labels.parquet"), "--out", want)...)
	require.Equal(t, 0, code, stderr)

	srv := s3test.Start(t)
	b, err := storage.NewS3(ctx, srv.Bucket, srv.Options())
	require.NoError(t, err)
	data := filepath.Join(dir, "data")
	require.NoError(t, filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(data, p)
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		defer fh.Close()
		_, err = b.Put(ctx, "rides/"+filepath.ToSlash(rel), fh)
		return err
	}))
	require.NoError(t, os.RemoveAll(data)) // only the objects remain

	cfgPath := filepath.Join(dir, registry.ConfigFile)
	cfg, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	s := strings.Replace(string(cfg), "data_root: data ", "data_root: s3://"+srv.Bucket+"/rides ", 1)
	s = strings.Replace(s, "  duckdb:", "  cache: {dir: .quiver/cache, max_bytes: 1GiB}\n  duckdb:", 1)
	s += "storage:\n  s3: {endpoint: " + srv.Endpoint + ", region: " + s3test.Region + ", path_style: true}\n"
	require.NoError(t, os.WriteFile(cfgPath, []byte(s), 0o644))
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	got := filepath.Join(t.TempDir(), "s3.parquet")
	code, out, stderr := quiver(t, append(args, "--entities", "s3://"+srv.Bucket+"/rides/driver_labels.parquet", "--out", got)...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "Wrote 1000 rows")
	wantBytes, err := os.ReadFile(want)
	require.NoError(t, err)
	gotBytes, err := os.ReadFile(got)
	require.NoError(t, err)
	require.Equal(t, wantBytes, gotBytes)
	copies, err := os.ReadDir(filepath.Join(dir, ".quiver", "cache"))
	require.NoError(t, err)
	require.NotEmpty(t, copies)

	// Whole objects instead of slices: the same set.
	whole := strings.Replace(s, "cache: {dir: .quiver/cache, max_bytes: 1GiB}", "cache: {dir: .quiver/whole, max_bytes: 1GiB, whole_objects: true}", 1)
	require.NoError(t, os.WriteFile(cfgPath, []byte(whole), 0o644))
	code, _, stderr = quiver(t, append(args, "--entities", "s3://"+srv.Bucket+"/rides/driver_labels.parquet", "--out", got)...)
	require.Equal(t, 0, code, stderr)
	gotBytes, err = os.ReadFile(got)
	require.NoError(t, err)
	require.Equal(t, wantBytes, gotBytes)
	require.NoError(t, os.WriteFile(cfgPath, []byte(s), 0o644))

	// A missing entity object names its bucket and key.
	code, _, stderr = quiver(t, append(args, "--entities", "s3://"+srv.Bucket+"/rides/nope.parquet", "--out", got)...)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "s3://"+srv.Bucket+"/rides/nope.parquet")
	require.Contains(t, stderr, "not found")
	require.NotContains(t, stderr, s3test.SecretKey)
}
