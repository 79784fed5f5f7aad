package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/s3test"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
)

// s3Repo is a quickstart repository whose registry is
// s3://BUCKET/teams/rides on srv, reached with the storage section of
// quiver.yaml and credentials from the environment (the AWS chain).
func s3Repo(t *testing.T, srv *s3test.Server) string {
	t.Helper()
	dir := initRepo(t)
	setS3Registry(t, dir, srv)
	home := t.TempDir()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
	return dir
}

var registryLine = regexp.MustCompile(`(?m)^registry: .*$`)

func setS3Registry(t *testing.T, dir string, srv *s3test.Server) {
	t.Helper()
	path := filepath.Join(dir, registry.ConfigFile)
	orig, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Regexp(t, registryLine, string(orig))
	cfg := registryLine.ReplaceAllString(string(orig), "registry: s3://"+srv.Bucket+"/teams/rides") + fmt.Sprintf(`
storage:
  s3:
    endpoint: %s
    region: %s
    path_style: true
`, srv.Endpoint, s3test.Region)
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
}

// setTTL changes the ttl of the quickstart's driver_hourly view.
func setTTL(t *testing.T, dir, ttl string) {
	t.Helper()
	path := filepath.Join(dir, "features", "drivers.yaml")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	re := regexp.MustCompile(`(?m)^(    ttl: )\S+`)
	require.Regexp(t, re, string(data))
	require.NoError(t, os.WriteFile(path, re.ReplaceAll(data, []byte("${1}"+ttl)), 0o644))
}

func TestApplyAndHistoryWithAnS3Registry(t *testing.T) {
	srv := s3test.Start(t)
	dir := s3Repo(t, srv)
	t.Setenv("QUIVER_AUTHOR", "tester")

	code, out, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "Applied registry version 1")
	code, out, stderr = quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "No changes: registry stays at version 1")

	setTTL(t, dir, "72h")
	code, out, stderr = quiver(t, "plan", "--repo", dir, "--json")
	require.Equal(t, 0, code, stderr)
	var plan registry.Plan
	require.NoError(t, json.Unmarshal([]byte(out), &plan))
	require.EqualValues(t, 1, plan.FromVersion)
	require.Equal(t, 1, plan.Summary.Update, "the plan is against the S3 registry's version 1")
	code, out, stderr = quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "Applied registry version 2")

	code, out, stderr = quiver(t, "registry", "history", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 3, out)
	require.Regexp(t, `^VERSION\s+APPLIED \(UTC\)\s+AUTHOR`, lines[0])
	require.Regexp(t, `^1\s+\S+ \S+\s+tester\s`, lines[1])
	require.Regexp(t, `^2\s+\S+ \S+\s+tester\s`, lines[2])

	code, out, stderr = quiver(t, "registry", "describe", "driver_hourly", "--version", "2", "--repo", dir, "--json")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `"ttl": "72h"`)

	// The versions are objects in the bucket, where the layout says.
	b, err := storage.NewS3(context.Background(), srv.Bucket, srv.Options())
	require.NoError(t, err)
	objs, err := b.List(context.Background(), "teams/rides/")
	require.NoError(t, err)
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	require.Equal(t, []string{"teams/rides/versions/00000000000000000001.json", "teams/rides/versions/00000000000000000002.json"}, keys)
	_, err = os.Stat(filepath.Join(dir, ".quiver", "registry"))
	require.ErrorIs(t, err, os.ErrNotExist, "no local registry is written")
}

func TestS3RegistryErrorsInTheCLI(t *testing.T) {
	srv := s3test.Start(t)
	dir := s3Repo(t, srv)

	const wrongSecret = "wrong-secret-Hd4kW8pL2nQ6rT9xB3vM"
	t.Setenv("AWS_SECRET_ACCESS_KEY", wrongSecret)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "s3://"+srv.Bucket+"/teams/rides/versions/")
	require.Contains(t, stderr, "403")
	require.NotContains(t, stderr, wrongSecret)
	require.NotContains(t, stderr, s3test.SecretKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)

	// A bucket that does not exist.
	path := filepath.Join(dir, registry.ConfigFile)
	cfg, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(cfg), "s3://"+srv.Bucket+"/", "s3://no-such-bucket/", 1)), 0o644))
	code, _, stderr = quiver(t, "registry", "history", "--repo", dir)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "list s3://no-such-bucket/teams/rides/versions/: quiver: bucket not found")

	// Another scheme is refused at its line, by validate too.
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(cfg), "s3://"+srv.Bucket+"/", "gs://"+srv.Bucket+"/", 1)), 0o644))
	code, _, stderr = quiver(t, "validate", "--repo", dir)
	require.Equal(t, exitError, code)
	require.Regexp(t, `quiver\.yaml:\d+:\d+: registry: "gs://`+srv.Bucket+`/teams/rides": gs:// registries are not supported; use a directory or s3://bucket/prefix`, stderr)
}

// TestConcurrentApplyProcessesWithAnS3Registry runs quiver apply in
// several processes at once, each from its own copy of the repository
// with its own ttl, against one S3 registry: every process gets its own
// version and every version holds what its process applied.
func TestConcurrentApplyProcessesWithAnS3Registry(t *testing.T) {
	srv := s3test.Start(t)
	dir := s3Repo(t, srv)
	const n = 6
	repos := make([]string, n)
	for i := range n {
		repos[i] = filepath.Join(t.TempDir(), "rides")
		cp := exec.Command("cp", "-a", dir, repos[i])
		out, err := cp.CombinedOutput()
		require.NoError(t, err, string(out))
		setTTL(t, repos[i], fmt.Sprintf("%dh", 100+i))
	}
	type result struct {
		out []byte
		err error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "apply", "--repo", repos[i], "--json")
			cmd.Env = append(os.Environ(), "QUIVER_TEST_CHILD=1", fmt.Sprintf("QUIVER_AUTHOR=process-%d", i))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, stderr.String())
			}
			results[i] = result{out, err}
		}()
	}
	wg.Wait()

	byVersion := map[int64]int{}
	for i, r := range results {
		require.NoError(t, r.err, "process %d", i)
		var res struct {
			Written bool          `json:"written"`
			Info    registry.Info `json:"snapshot"`
		}
		require.NoError(t, json.Unmarshal(r.out, &res), string(r.out))
		require.True(t, res.Written, "process %d wrote a version", i)
		_, dup := byVersion[res.Info.Version]
		require.False(t, dup, "two processes got version %d", res.Info.Version)
		byVersion[res.Info.Version] = i
	}
	code, out, stderr := quiver(t, "registry", "history", "--repo", dir, "--json")
	require.Equal(t, 0, code, stderr)
	var hist []registry.Info
	require.NoError(t, json.Unmarshal([]byte(out), &hist))
	require.Len(t, hist, n, "no version was lost")
	for k, h := range hist {
		require.EqualValues(t, k+1, h.Version)
		i := byVersion[h.Version]
		require.Equal(t, fmt.Sprintf("process-%d", i), h.Author)
		code, out, stderr := quiver(t, "registry", "describe", "driver_hourly", "--version", fmt.Sprint(h.Version), "--repo", dir, "--json")
		require.Equal(t, 0, code, stderr)
		require.Contains(t, out, fmt.Sprintf(`"ttl": "%dh"`, 100+i), "version %d holds what process %d applied", h.Version, i)
	}
}
