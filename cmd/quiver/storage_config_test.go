package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

// TestStorageSectionOfQuiverYAML: quiver.yaml takes a storage section,
// interpolates it, and reports each bad option at its line.
func TestStorageSectionOfQuiverYAML(t *testing.T) {
	dir := initRepo(t)
	path := filepath.Join(dir, registry.ConfigFile)
	orig, err := os.ReadFile(path)
	require.NoError(t, err)

	good := string(orig) + `
storage:
  s3:
    endpoint: ${S3_ENDPOINT:-http://127.0.0.1:9000}
    region: eu-west-1
    path_style: true
    ca_file: certs/ca.pem
    max_retries: 3
    part_size: 32MiB
    concurrency: 4
    read_timeout: 2m
`
	require.NoError(t, os.WriteFile(path, []byte(good), 0o644))
	code, _, stderr := quiver(t, "validate", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	cfg, err := registry.LoadConfig(dir, registry.LoadOptions{})
	require.NoError(t, err)
	sc := cfg.StorageConfig()
	require.Equal(t, "http://127.0.0.1:9000", sc.S3.Endpoint)
	require.Equal(t, filepath.Join(dir, "certs", "ca.pem"), sc.S3.CAFile)
	require.EqualValues(t, 32<<20, sc.S3.PartSize)
	require.Equal(t, 4, sc.S3.Concurrency)
	require.True(t, sc.S3.PathStyle)
	require.Equal(t, "2m0s", sc.S3.ReadTimeout.String())

	bad := string(orig) + `
storage:
  s3:
    endpoint: minio:9000
    part_size: 1MiB
    concurrency: -2
    read_timeout: -1s
    secret_access_key: nope
`
	require.NoError(t, os.WriteFile(path, []byte(bad), 0o644))
	code, _, stderr = quiver(t, "validate", "--repo", dir)
	require.NotEqual(t, 0, code)
	for _, want := range []string{"storage.s3.endpoint", "storage.s3.part_size", "below 5MiB", "storage.s3.concurrency", "storage.s3.read_timeout", "storage.s3.secret_access_key", "unknown key"} {
		require.Contains(t, stderr, want)
	}
	require.Contains(t, stderr, "quiver.yaml:")
}
