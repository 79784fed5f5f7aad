package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/quiverdata/quiver/internal/feast"
)

// maxRegistryBytes bounds the Feast registry file import reads.
const maxRegistryBytes = 256 << 20

const importUsage = "import feast --registry PATH [--out DIR] [--force] [--project NAME] [--feast-repo DIR]"

func cmdImport(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "import", importUsage)
	registryPath := f.String("registry", "", "the Feast registry `FILE` that feast apply wrote (feature_store.yaml's registry, e.g. data/registry.db)")
	out := f.String("out", ".", "`DIR` to write the Quiver repository to")
	force := f.Bool("force", false, "overwrite files that exist in --out")
	project := f.String("project", "", "the Feast project to import (default: the registry's only project)")
	feastRepo := f.String("feast-repo", "", "the Feast repository `DIR` relative source paths resolve against (default: the nearest directory above the registry file with a feature_store.yaml)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 1, 1, importUsage); err != nil {
		return err
	}
	if pos[0] != "feast" {
		return usageError{fmt.Sprintf("quiver import reads %q from nowhere: the one format it imports is feast (usage: quiver %s)", pos[0], importUsage)}
	}
	if *registryPath == "" {
		return usageError{"--registry is required: the registry file feast apply wrote (usage: quiver " + importUsage + ")"}
	}
	data, err := readRegistry(*registryPath)
	if err != nil {
		return err
	}
	reg, err := feast.Decode(data)
	if err != nil {
		return fmt.Errorf("--registry %s: is not a Feast registry file: %w", *registryPath, err)
	}
	outDir, err := filepath.Abs(*out)
	if err != nil {
		return fmt.Errorf("--out %s: %w", *out, err)
	}
	repoDir, guessed, err := feastRepoDir(*registryPath, *feastRepo)
	if err != nil {
		return err
	}
	res, err := feast.Translate(reg, feast.Options{Project: *project, FeastRepo: repoDir, OutDir: outDir, Stat: os.Stat})
	if err != nil {
		return fmt.Errorf("--registry %s: %w", *registryPath, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := feast.WriteFiles(outDir, res.Files, *force); err != nil {
		return err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Imported Feast project %s from %s into %s: %d entities, %d sources, %d feature views, %d feature services",
		res.Report.Project, *registryPath, *out, res.Entities, res.Sources, res.FeatureViews, res.FeatureServices)
	if res.OnDemandToPort > 0 {
		fmt.Fprintf(&b, "; %d on-demand views to port by hand (%s)", res.OnDemandToPort, feast.FileOnDemand)
	}
	b.WriteString(".\n")
	if guessed {
		fmt.Fprintf(&b, "Relative Feast paths resolve against %s (no feature_store.yaml found above the registry; give --feast-repo to choose).\n", repoDir)
	}
	for _, f := range res.Files {
		fmt.Fprintf(&b, "  wrote %s\n", filepath.Join(*out, filepath.FromSlash(f.Path)))
	}
	if err := res.Report.Write(&b); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\nNext: review the changes above, then run quiver validate --repo %s and quiver plan --repo %s.\n", *out, *out)
	_, err = io.Copy(e.stdout, &b)
	return err
}

// readRegistry reads a local registry file, naming the flag in errors.
func readRegistry(p string) ([]byte, error) {
	if strings.Contains(p, "://") {
		return nil, fmt.Errorf("--registry %s: only a local registry file is read; copy the remote registry to a file first", p)
	}
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("--registry %s: not found (give the registry file feast apply wrote, e.g. data/registry.db in the Feast repository)", p)
	case err != nil:
		return nil, fmt.Errorf("--registry %s: %w", p, unwrapPathErr(err))
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("--registry %s: is not a regular file", p)
	case fi.Size() > maxRegistryBytes:
		return nil, fmt.Errorf("--registry %s: is larger than %d MiB; no Feast registry file is that large", p, maxRegistryBytes>>20)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("--registry %s: %w", p, unwrapPathErr(err))
	}
	if bytes.HasPrefix(data, []byte("SQLite format 3\x00")) {
		return nil, fmt.Errorf("--registry %s: is a SQLite database (Feast's SQL registry); quiver import feast reads a file registry: run feast apply with registry_type: file and a path", p)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("--registry %s: is empty", p)
	}
	return data, nil
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// feastRepoDir returns the Feast repository directory: the flag's, else
// the nearest directory above the registry file holding feature_store.yaml,
// else (guessed) the registry file's directory.
func feastRepoDir(registryPath, flagDir string) (string, bool, error) {
	if flagDir != "" {
		abs, err := filepath.Abs(flagDir)
		if err != nil {
			return "", false, fmt.Errorf("--feast-repo %s: %w", flagDir, err)
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return "", false, fmt.Errorf("--feast-repo %s: is not a directory", flagDir)
		}
		return abs, false, nil
	}
	abs, err := filepath.Abs(registryPath)
	if err != nil {
		return "", false, fmt.Errorf("--registry %s: %w", registryPath, err)
	}
	start := filepath.Dir(abs)
	for dir, i := start, 0; i < 4; i++ {
		if _, err := os.Stat(filepath.Join(dir, "feature_store.yaml")); err == nil {
			return dir, false, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return start, true, nil
}
