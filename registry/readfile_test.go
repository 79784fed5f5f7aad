package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// repoWith writes a minimal repository with one definition file and
// returns its directory.
func repoWith(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), []byte("project: test\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ok.yaml"), []byte("entities:\n  - name: driver\n    join_keys: [{name: driver_id, type: int64}]\n"), 0o644))
	return dir
}

// loadErrors loads dir and returns its errors, one string each. The load
// must finish: a hang (a blocked open or read) fails the test instead of
// stalling the run, and unblock is called to set the reader free.
func loadErrors(t *testing.T, dir string, unblock func()) []string {
	t.Helper()
	type result struct {
		repo *Repo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		repo, err := LoadRepoContext(context.Background(), dir, LoadOptions{})
		done <- result{repo, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second): // a guard against a hang, not a measurement
		if unblock != nil {
			unblock()
		}
		t.Fatal("LoadRepo did not return: it blocked on a repository file")
	}
	require.Error(t, r.err)
	var list ErrorList
	require.True(t, errors.As(r.err, &list), "want an ErrorList, got %T: %v", r.err, r.err)
	var out []string
	for _, e := range list {
		out = append(out, e.Error())
	}
	return out
}

func TestLoadRefusesNamedPipe(t *testing.T) {
	dir := repoWith(t)
	fifo := filepath.Join(dir, "features", "pipe.yaml")
	require.NoError(t, os.MkdirAll(filepath.Dir(fifo), 0o755))
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	errs := loadErrors(t, dir, func() {
		// Opening the write end lets a reader blocked in open go on.
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = f.Close()
		}
	})
	require.Equal(t, []string{"features/pipe.yaml: is a named pipe (FIFO), not a regular file: repository files must be regular files (or symbolic links to them)"}, errs)
}

func TestLoadRefusesNamedPipeConfig(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, ConfigFile), 0o644))
	errs := loadErrors(t, dir, func() {
		if f, err := os.OpenFile(filepath.Join(dir, ConfigFile), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = f.Close()
		}
	})
	require.Equal(t, []string{"quiver.yaml: is a named pipe (FIFO), not a regular file: repository files must be regular files (or symbolic links to them)"}, errs)
}

func TestLoadRefusesDeviceSymlink(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero here")
	}
	dir := repoWith(t)
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")))
	errs := loadErrors(t, dir, nil)
	require.Equal(t, []string{"zero.yaml: is a character device, not a regular file: repository files must be regular files (or symbolic links to them)"}, errs)
}

func TestLoadRefusesLargeFile(t *testing.T) {
	dir := repoWith(t)
	big := filepath.Join(dir, "big.yaml")
	require.NoError(t, os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxFileBytes)+"\n"), 0o644))
	errs := loadErrors(t, dir, nil)
	require.Equal(t, []string{"big.yaml: is larger than the 8 MiB limit for a repository file (8388611 bytes); split it into several files"}, errs)

	// A symbolic link to a regular file is read as that file.
	require.NoError(t, os.Remove(big))
	require.NoError(t, os.Symlink(filepath.Join(dir, "ok.yaml"), filepath.Join(dir, "link.yaml")))
	_, err := LoadRepo(dir, LoadOptions{})
	require.ErrorContains(t, err, `entities[0].name: "driver" is already the name of entity at link.yaml:2:5`)
}

func TestLoadReportsUnreadableFiles(t *testing.T) {
	dir := repoWith(t)
	require.NoError(t, os.Symlink(filepath.Join(dir, "gone.yaml"), filepath.Join(dir, "dangling.yaml")))
	require.NoError(t, os.Symlink("loop.yaml", filepath.Join(dir, "loop.yaml")))
	errs := loadErrors(t, dir, nil)
	require.Equal(t, []string{
		"dangling.yaml: cannot be read: no such file or directory",
		"loop.yaml: cannot be read: too many levels of symbolic links",
	}, errs)
}

func TestLoadStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := LoadRepoContext(ctx, repoWith(t), LoadOptions{})
	require.ErrorIs(t, err, context.Canceled)
}

func TestErrorsClipLongValues(t *testing.T) {
	long := strings.Repeat("A", 1<<20)
	dir := repoWith(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "long.yaml"), []byte(
		"entities:\n  - name: "+long+"\n    join_keys: [{name: k, type: string}]\n    ? "+strings.ToLower(long)+"\n    : 1\n"+
			"sources:\n  - {name: s, kind: parquet, path: x.parquet, timestamp_field: ts}\n"+
			"feature_views:\n  - {name: v, entities: [driver], source: s, ttl: "+long+", features: [{name: a, type: "+long+"}]}\n"), 0o644))
	errs := loadErrors(t, dir, nil)
	require.NotEmpty(t, errs)
	clipped := `"` + strings.Repeat("A", 96) + `…(1048576 bytes)"`
	for _, e := range errs {
		require.Less(t, len(e), 600, "an error message quotes a long value in full: %.300s", e)
	}
	joined := strings.Join(errs, "\n")
	require.Contains(t, joined, "long.yaml:2:5: entities[0].name: "+clipped+" is too long (at most 128 characters)")
	require.Contains(t, joined, "entities[0]."+strings.Repeat("a", 138)+"…(1048588 bytes): unknown key")
	require.Contains(t, joined, "feature_views[0].ttl: "+clipped+" is not a duration")
	require.Contains(t, joined, "feature_views[0].features[0].type: "+clipped+" is not a type")
}

func TestClip(t *testing.T) {
	require.Equal(t, "short", Clip("short"))
	require.Equal(t, strings.Repeat("a", 128), Clip(strings.Repeat("a", 128)))
	require.Equal(t, strings.Repeat("a", 96)+"…(10485760 bytes)", Clip(strings.Repeat("a", 10<<20)))
	// A cut never splits a character.
	require.Equal(t, "a"+strings.Repeat("é", 47)+"…(201 bytes)", Clip("a"+strings.Repeat("é", 100)))
}
