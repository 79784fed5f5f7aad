package registry

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/txtar"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata files")

// runCases runs every testdata/DIR/*.txtar through fn (see txtar.RunGolden).
func runCases(t *testing.T, dir string, fn func(t *testing.T, a *txtar.Archive) string) {
	txtar.RunGolden(t, filepath.Join("testdata", dir, "*.txtar"), *update, fn)
}

// envOf reads KEY=VALUE lines from the archive's "env" file.
func envOf(a *txtar.Archive) func(string) (string, bool) {
	vars := map[string]string{}
	if data, ok := a.Get("env"); ok {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				vars[k] = v
			}
		}
	}
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// writeRepo writes the archive's files under prefix into a new directory,
// adding a minimal quiver.yaml when the archive has none.
func writeRepo(t *testing.T, a *txtar.Archive, prefix string) string {
	dir := t.TempDir()
	require.NoError(t, a.WriteDir(dir, prefix))
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); os.IsNotExist(err) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), []byte("project: test\n"), 0o644))
	}
	return dir
}

// TestLoadCases pins load and validation results: each case is a
// repository and the exact errors (with positions) it produces, or "ok".
func TestLoadCases(t *testing.T) {
	runCases(t, "load", func(t *testing.T, a *txtar.Archive) string {
		dir := writeRepo(t, a, "repo/")
		repo, err := LoadRepo(dir, LoadOptions{LookupEnv: envOf(a)})
		if err != nil {
			var list ErrorList
			require.True(t, errors.As(err, &list), "want an ErrorList, got %T: %v", err, err)
			var b strings.Builder
			for _, e := range list {
				b.WriteString(e.Error())
				b.WriteString("\n")
			}
			return b.String()
		}
		var b strings.Builder
		b.WriteString("ok\n")
		for _, u := range repo.Config.Unresolved {
			b.WriteString("unresolved: " + u.Field + " " + u.Var + "\n")
		}
		return b.String()
	})
}

// TestPlanCases pins plans: each case applies repository "before/" (when
// present) and then plans repository "after/".
func TestPlanCases(t *testing.T) {
	runCases(t, "plan", func(t *testing.T, a *txtar.Archive) string {
		ctx := context.Background()
		store := NewStore(NewDirBackend(t.TempDir()))
		if hasPrefix(a, "before/") {
			repo, err := LoadRepo(writeRepo(t, a, "before/"), LoadOptions{})
			require.NoError(t, err)
			_, err = store.Apply(ctx, repo.Defs, ApplyOptions{AllowBreaking: true, Now: fixedClock})
			require.NoError(t, err)
		}
		repo, err := LoadRepo(writeRepo(t, a, "after/"), LoadOptions{})
		require.NoError(t, err)
		res, err := store.Apply(ctx, repo.Defs, ApplyOptions{Now: fixedClock})
		var b bytes.Buffer
		require.NoError(t, res.Plan.WriteText(&b))
		switch {
		case errors.Is(err, ErrBreaking):
			b.WriteString("apply: refused, breaking\n")
		case err != nil:
			t.Fatal(err)
		case res.Written:
			b.WriteString("apply: wrote version " + strconv.FormatInt(res.Snapshot.Version, 10) + "\n")
		default:
			b.WriteString("apply: nothing to write\n")
		}
		return b.String()
	})
}

func hasPrefix(a *txtar.Archive, prefix string) bool {
	for _, f := range a.Files {
		if strings.HasPrefix(f.Name, prefix) {
			return true
		}
	}
	return false
}

func fixedClock() time.Time { return time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC) }
