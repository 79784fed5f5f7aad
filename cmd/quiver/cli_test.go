package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNoCommandIsAUsageError(t *testing.T) {
	code, out, stderr := quiver(t)
	require.Equal(t, exitUsage, code)
	require.Empty(t, out)
	require.Contains(t, stderr, "Usage: quiver COMMAND")

	code, out, _ = quiver(t, "--help")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "Usage: quiver COMMAND")
}

// TestUsageIsAligned checks that every summary starts in one column.
func TestUsageIsAligned(t *testing.T) {
	_, out, _ := quiver(t, "help")
	col := -1
	n := 0
	for _, c := range commands() {
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasPrefix(line, "  "+c.name+" ") {
				continue
			}
			at := strings.Index(line, c.summary)
			require.Positive(t, at, "summary of %s on its line", c.name)
			if col < 0 {
				col = at
			}
			require.Equal(t, col, at, "summary of %s starts in another column:\n%s", c.name, out)
			n++
		}
	}
	require.Equal(t, len(commands()), n, "one line per command:\n%s", out)
}

func TestVersion(t *testing.T) {
	code, out, stderr := quiver(t, "version")
	require.Equal(t, exitOK, code, stderr)
	require.Regexp(t, `^quiver \S+, commit \S+.*, go\S+ \S+/\S+\n$`, out)
	require.Contains(t, out, runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)

	code, flagOut, stderr := quiver(t, "--version")
	require.Equal(t, exitOK, code, stderr)
	require.Equal(t, out, flagOut)
}

func TestRegistryHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "help"} {
		code, out, stderr := quiver(t, "registry", arg)
		require.Equal(t, exitOK, code, stderr)
		require.Contains(t, out, "Usage: quiver registry list | describe NAME | history")
		require.Contains(t, out, "describe NAME")
		require.Contains(t, out, "history")
	}
}

func TestTrainingSetOutFormats(t *testing.T) {
	dir := t.TempDir()
	for _, out := range []string{"x.csv", "x.json", filepath.Join(dir, "train")} {
		code, _, stderr := quiver(t, "training-set", "--repo", dir, "--entities", "e.parquet", "--features", "v:*", "--out", out)
		require.Equal(t, exitUsage, code, out)
		require.Contains(t, stderr, "--out "+out+": cannot write ")
		require.Contains(t, stderr, "--out takes a Parquet file (.parquet), an Arrow IPC file (.arrow, .arrows, .feather, .ipc), or - for an Arrow IPC stream on stdout")
	}
	_, err := os.Stat(filepath.Join(dir, "train"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing written")
}

func TestCLIPathsAreRelativeToTheCurrentDirectory(t *testing.T) {
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	cwd, err := os.Getwd()
	require.NoError(t, err)

	// data/driver_labels.parquet exists under --repo, not here.
	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--entities", "data/driver_labels.parquet",
		"--features", "driver_hourly:conv_rate", "--out", filepath.Join(t.TempDir(), "t.parquet"))
	require.Equal(t, exitError, code)
	require.Equal(t, "quiver training-set: --entities data/driver_labels.parquet: not found; CLI paths are relative to the current directory ("+
		cwd+"), not to --repo or the data root\n", stderr)

	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--entities", "data/*.parquet",
		"--features", "driver_hourly:conv_rate", "--out", filepath.Join(t.TempDir(), "t.parquet"))
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "--entities data/*.parquet: matches no file; CLI paths are relative to the current directory")

	// An --out whose directory cannot be made says the same.
	blocker := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	code, _, stderr = quiver(t, "training-set", "--repo", dir, "--entities", filepath.Join(dir, "data", "driver_labels.parquet"),
		"--features", "driver_hourly:conv_rate", "--out", filepath.Join(blocker, "sets", "t.parquet"))
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "--out "+filepath.Join(blocker, "sets", "t.parquet")+": mkdir "+blocker+": not a directory; CLI paths are relative to the current directory")

	// From the repository, the same relative path works.
	t.Chdir(dir)
	code, out, stderr := quiver(t, "training-set", "--entities", "data/driver_labels.parquet",
		"--features", "driver_hourly:conv_rate", "--out", "t.parquet")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "Wrote 1000 rows to t.parquet")
}

func TestInitMakesAGitRepository(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not on PATH")
	}
	dir := filepath.Join(t.TempDir(), "rides")
	code, out, stderr := quiver(t, "init", dir)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "Initialized a Git repository in "+dir)
	require.DirExists(t, filepath.Join(dir, ".git"))

	// The tour's outputs are ignored: after committing the definitions and
	// writing what the tour writes, the work tree is clean.
	git := func(dir string, args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=T", "-c", "user.email=t@example.com"}, args...)...)
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, string(b))
		return string(b)
	}
	git(dir, "add", "-A")
	git(dir, "commit", "-qm", "feature definitions")
	t.Setenv("QUIVER_AUTHOR", "tester")
	code, _, stderr = quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	code, _, stderr = quiver(t, "materialize", "--repo", dir, "--incremental")
	require.Equal(t, 0, code, stderr)
	t.Chdir(dir)
	for _, out := range []string{"train.parquet", "data/sets/train.arrow"} {
		code, _, stderr = quiver(t, "training-set", "--entities", "data/driver_labels.parquet", "--features", "driver_hourly:conv_rate", "--out", out)
		require.Equal(t, 0, code, stderr)
	}
	for _, f := range []string{"now.parquet", "serve.log"} {
		require.NoError(t, os.WriteFile(f, []byte("x"), 0o644))
	}
	require.Empty(t, git(dir, "status", "--porcelain"), "the tour leaves the work tree clean")
	code, out, _ = quiver(t, "registry", "history")
	require.Equal(t, 0, code)
	require.NotContains(t, out, "+dirty")

	// Inside another repository, init says whose commit apply will record.
	inner := filepath.Join(dir, "nested")
	code, out, stderr = quiver(t, "init", inner)
	require.Equal(t, 0, code, stderr)
	top := strings.TrimSpace(git(inner, "rev-parse", "--show-toplevel"))
	require.Contains(t, out, "Note: "+inner+" is inside the Git repository "+top+", whose commit apply will record")
	require.NoDirExists(t, filepath.Join(inner, ".git"))
}

func TestOnlineHintsWhenNothingIsOnline(t *testing.T) {
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	const hint = "hint: no values online for these entities: run `quiver materialize` or push"

	code, out, stderr := quiver(t, "online", "--repo", dir, "--entity", "driver_id=1001,1002", "--features", "driver_hourly:conv_rate")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "NOT_FOUND")
	require.Equal(t, hint+"\n", stderr)

	code, _, stderr = quiver(t, "materialize", "--repo", dir, "--incremental")
	require.Equal(t, 0, code, stderr)
	code, _, stderr = quiver(t, "online", "--repo", dir, "--entity", "driver_id=1001,9999", "--features", "driver_hourly:conv_rate")
	require.Equal(t, 0, code, stderr)
	require.Empty(t, stderr, "some values are online: no hint")
	code, _, stderr = quiver(t, "online", "--repo", dir, "--entity", "driver_id=9999", "--features", "driver_hourly:conv_rate", "--json")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, hint+"\n", stderr, "the hint goes to stderr, the JSON stays valid")
}

// TestValidateRefusesNamedPipe runs validate on a repository holding a
// named pipe called *.yaml: it must report it, not block on it.
func TestValidateRefusesNamedPipe(t *testing.T) {
	dir := initRepo(t)
	fifo := filepath.Join(dir, "features", "pipe.yaml")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, _, stderr := quiver(t, "validate", "--repo", dir)
		done <- result{code, stderr}
	}()
	select {
	case r := <-done:
		require.Equal(t, exitError, r.code)
		require.Equal(t, "quiver validate: features/pipe.yaml: is a named pipe (FIFO), not a regular file: repository files must be regular files (or symbolic links to them)\n", r.stderr)
	case <-time.After(30 * time.Second): // a guard against a hang, not a measurement
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = f.Close() // lets the blocked reader go on
		}
		t.Fatal("quiver validate blocked on a named pipe")
	}
}

func TestInterruptedLoad(t *testing.T) {
	dir := initRepo(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as the first SIGINT does
	var out, errb bytes.Buffer
	code := run(ctx, []string{"validate", "--repo", dir}, &out, &errb)
	require.Equal(t, exitError, code)
	require.Equal(t, "quiver validate: interrupted\n", errb.String())
}

// TestSignalHelper is not a test: run with QUIVER_TEST_SIGNALS=1 (by
// TestSecondSignalEndsTheProcess), it plays a command that ignores its
// context: after the first SIGTERM has cancelled it, it keeps sending
// SIGTERM to itself until one ends the process.
func TestSignalHelper(t *testing.T) {
	if os.Getenv("QUIVER_TEST_SIGNALS") != "1" {
		t.Skip("a helper process for TestSecondSignalEndsTheProcess")
	}
	ctx, stop := signalContext()
	defer stop()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	<-ctx.Done()
	_, err := os.Stdout.WriteString("cancelled\n")
	require.NoError(t, err)
	// The default handling comes back right after the cancellation (the
	// goroutine that restores it may not have run yet): signal again until
	// the process is gone.
	for {
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSecondSignalEndsTheProcess: the first SIGTERM cancels the command's
// context (a clean stop: servers drain, the stream commits); a command
// that does not stop is ended by the next signal instead of hanging.
func TestSecondSignalEndsTheProcess(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestSignalHelper$")
	cmd.Env = append(os.Environ(), "QUIVER_TEST_SIGNALS=1")
	out, err := cmd.Output()
	require.Equal(t, "cancelled\n", string(out))
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	ws, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled(), "ended by a signal, not by exiting: %v", err)
	require.Equal(t, syscall.SIGTERM, ws.Signal())
}

// TestMakeInstall checks what make install would run (make -n runs
// nothing): go install with the DuckDB tag into Go's install directory,
// or a build into PREFIX/bin.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not on PATH")
	}
	dryRun := func(args ...string) string {
		out, err := exec.Command("make", append([]string{"-n", "-C", filepath.Join("..", ".."), "install"}, args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	out := dryRun()
	require.Contains(t, out, "install -tags duckdb_arrow -ldflags")
	require.Contains(t, out, "./cmd/quiver")
	require.Contains(t, out, "env GOPATH")
	out = dryRun("PREFIX=/opt/q")
	require.Contains(t, out, "build -tags duckdb_arrow -ldflags")
	require.Contains(t, out, `-o "/opt/q/bin/quiver" ./cmd/quiver`)
}
