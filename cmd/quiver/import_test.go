package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// feastFixture is the registry internal/feast/testdata/make_registry.py
// builds with feast apply, placed in a Feast repository layout.
func feastFixture(t *testing.T) (repo, registryFile string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "internal", "feast", "testdata", "registry.db"))
	require.NoError(t, err)
	repo = filepath.Join(t.TempDir(), "feast")
	require.NoError(t, os.MkdirAll(filepath.Join(repo, "data"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(repo, "feature_store.yaml"), []byte("project: rides\nregistry: data/registry.db\nprovider: local\n"), 0o644))
	registryFile = filepath.Join(repo, "data", "registry.db")
	require.NoError(t, os.WriteFile(registryFile, data, 0o644))
	return repo, registryFile
}

func TestImportFeast(t *testing.T) {
	feastRepo, reg := feastFixture(t)
	out := filepath.Join(t.TempDir(), "quiver")
	code, stdout, stderr := quiver(t, "import", "feast", "--registry", reg, "--out", out)
	require.Equal(t, exitOK, code, stderr)
	require.Empty(t, stderr)
	require.Contains(t, stdout, "Imported Feast project rides from "+reg+" into "+out+": 2 entities, 5 sources, 5 feature views, 2 feature services; 1 on-demand views to port by hand")
	require.NotContains(t, stdout, "no feature_store.yaml found", "the Feast repository is found above the registry file")
	for _, section := range []string{"\nMapped (", "\nChanged meaning (", "\nDid not map ("} {
		require.Contains(t, stdout, section)
	}
	require.Contains(t, stdout, "on-demand feature view driver_scores: runs Python")
	for _, f := range []string{"quiver.yaml", "features/entities.yaml", "features/sources.yaml", "features/feature_views.yaml",
		"features/stream_feature_views.yaml", "features/on_demand.yaml", "features/feature_services.yaml"} {
		require.FileExists(t, filepath.Join(out, filepath.FromSlash(f)))
	}

	code, stdout, stderr = quiver(t, "validate", "--repo", out)
	require.Equal(t, exitOK, code, stderr)
	require.Contains(t, stdout, "ok: project rides, 6 files: 2 entities, 5 sources, 5 feature views, 0 on-demand views, 2 feature services")

	// data_root is above the Feast repository, where Feast's relative
	// paths resolve, and the fixture's absolute /srv/feast path: "/",
	// written relative to the output.
	cfg, err := os.ReadFile(filepath.Join(out, "quiver.yaml"))
	require.NoError(t, err)
	rel, err := filepath.Rel(out, "/")
	require.NoError(t, err)
	require.Contains(t, string(cfg), "data_root: \""+rel+"\"\n")
	sources, err := os.ReadFile(filepath.Join(out, "features", "sources.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(sources), "path: "+filepath.ToSlash(filepath.Join(feastRepo, "data", "driver_stats.parquet"))[1:]+"\n")

	// A second import does not overwrite; --force does.
	code, _, stderr = quiver(t, "import", "feast", "--registry", reg, "--out", out)
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "quiver import: file exists in "+out+": quiver.yaml, features/entities.yaml")
	require.Contains(t, stderr, "(give --force to overwrite)\n")
	code, _, stderr = quiver(t, "import", "feast", "--registry", reg, "--out", out, "--force")
	require.Equal(t, exitOK, code, stderr)
}

func TestImportFeastErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.db")
	code, stdout, stderr := quiver(t, "import", "feast", "--registry", missing, "--out", filepath.Join(dir, "out"))
	require.Equal(t, exitError, code)
	require.Empty(t, stdout)
	require.Equal(t, "quiver import: --registry "+missing+": not found (give the registry file feast apply wrote, e.g. data/registry.db in the Feast repository)\n", stderr)

	corrupt := filepath.Join(dir, "corrupt.db")
	require.NoError(t, os.WriteFile(corrupt, []byte("project: rides\nregistry: data/registry.db\n"), 0o644))
	code, _, stderr = quiver(t, "import", "feast", "--registry", corrupt, "--out", filepath.Join(dir, "out"))
	require.Equal(t, exitError, code)
	require.Regexp(t, `^quiver import: --registry `+regexp.QuoteMeta(corrupt)+`: is not a Feast registry file: decode feast registry: .+\n$`, stderr)
	_, err := os.Stat(filepath.Join(dir, "out"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing is written")

	_, reg := feastFixture(t)
	data, err := os.ReadFile(reg)
	require.NoError(t, err)
	truncated := filepath.Join(dir, "truncated.db")
	require.NoError(t, os.WriteFile(truncated, data[:len(data)/2], 0o644))
	code, _, stderr = quiver(t, "import", "feast", "--registry", truncated, "--out", filepath.Join(dir, "out"))
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, "is not a Feast registry file: decode feast registry: ")

	code, _, stderr = quiver(t, "import", "feast", "--out", dir)
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "--registry is required")

	code, _, stderr = quiver(t, "import", "tecton", "--registry", reg)
	require.Equal(t, exitUsage, code)
	require.Contains(t, stderr, "the one format it imports is feast")

	code, _, stderr = quiver(t, "import", "feast", "--registry", reg, "--project", "other", "--out", filepath.Join(dir, "out"))
	require.Equal(t, exitError, code)
	require.Contains(t, stderr, `the registry has no project "other" (it has: rides)`)
}
