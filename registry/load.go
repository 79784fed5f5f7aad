package registry

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Repo is a loaded, validated feature repository.
type Repo struct {
	Dir    string
	Config *Config
	Defs   *Definitions
	// Files are the definition files read, relative to Dir, in load order.
	Files []string
}

// LoadOptions tune LoadRepo.
type LoadOptions struct {
	// LookupEnv resolves ${VAR} in quiver.yaml (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
}

// fileDefs is the top level of a definition file.
type fileDefs struct {
	Entities        []*Entity         `yaml:"entities"`
	Sources         []*Source         `yaml:"sources"`
	FeatureViews    []*FeatureView    `yaml:"feature_views"`
	OnDemandViews   []*OnDemandView   `yaml:"on_demand_feature_views"`
	FeatureServices []*FeatureService `yaml:"feature_services"`
}

// LoadRepo reads and validates the repository in dir. On problems it
// returns an ErrorList holding all of them.
func LoadRepo(dir string, opts LoadOptions) (*Repo, error) {
	return LoadRepoContext(context.Background(), dir, opts)
}

// LoadRepoContext is LoadRepo that stops with ctx's error once ctx is done.
// Only regular files of at most MaxFileBytes are read; anything else
// (a named pipe, a device, a socket, a larger file) is a load error naming
// the file.
func LoadRepoContext(ctx context.Context, dir string, opts LoadOptions) (*Repo, error) {
	cfg, errs, err := readConfig(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	files, err := definitionFiles(ctx, cfg.Dir, cfg)
	if err != nil {
		return nil, err
	}
	sources := make(map[string][]byte, len(files))
	var unreadable ErrorList
	for _, f := range files {
		b, err := readRepoFile(ctx, filepath.Join(cfg.Dir, filepath.FromSlash(f)), f)
		var ferr *Error
		switch {
		case errors.As(err, &ferr):
			unreadable = append(unreadable, ferr)
			continue
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			// A dangling or looping symbolic link, a file without read
			// permission: a problem of this file, reported with the others.
			unreadable = append(unreadable, &Error{Pos: Position{File: f}, Msg: "cannot be read: " + Clip(unwrapPath(err).Error())})
			continue
		}
		sources[f] = b
	}
	if len(unreadable) > 0 {
		// Checking the other files without these would report every
		// reference into them as unknown: report what cannot be read.
		return nil, append(errs, unreadable...).Err()
	}
	defs, derrs := ParseDefinitions(cfg.Project, files, sources)
	errs = append(errs, derrs...)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return &Repo{Dir: cfg.Dir, Config: cfg, Defs: defs, Files: files}, nil
}

// LoadConfig reads and validates only the quiver.yaml of the repository in
// dir, for commands that read the registry and need no definitions.
func LoadConfig(dir string, opts LoadOptions) (*Config, error) {
	cfg, errs, err := readConfig(context.Background(), dir, opts)
	if err != nil {
		return nil, err
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func readConfig(ctx context.Context, dir string, opts LoadOptions) (*Config, ErrorList, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, err
	}
	data, err := readRepoFile(ctx, filepath.Join(abs, ConfigFile), ConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, ErrorList{{Pos: Position{File: ConfigFile}, Msg: "not found: " + abs + " is not a feature repository (create one with quiver init DIR)"}}
	}
	var ferr *Error
	if errors.As(err, &ferr) {
		return nil, nil, ErrorList{ferr}
	}
	if err != nil {
		return nil, nil, err
	}
	cfg, errs := ParseConfig(data, opts.LookupEnv)
	cfg.Dir = abs
	return cfg, errs, nil
}

// ParseConfig decodes and validates quiver.yaml. It always returns a
// Config with defaults filled, even alongside errors.
func ParseConfig(data []byte, lookupEnv func(string) (string, bool)) (*Config, ErrorList) {
	d := newDecoder(ConfigFile)
	d.env = lookupEnv
	cfg := &Config{Meta: Meta{File: ConfigFile, fields: d.fields}}
	docs := d.parseDocuments(data)
	switch {
	case len(docs) == 0 && len(d.errs) == 0:
		d.errs = append(d.errs, &Error{Pos: Position{File: ConfigFile}, Msg: "is empty; it needs at least project: NAME"})
	case len(docs) > 1:
		d.errorf(docs[1], "", "holds more than one YAML document; quiver.yaml is one mapping")
	}
	if len(docs) > 0 {
		d.decode(docs[0], "", reflectValue(cfg), 0)
	}
	cfg.Unresolved = d.unresolved
	cfg.EnsureDefaults()
	if len(docs) == 0 {
		return cfg, d.errs // "is empty" says it all
	}
	return cfg, withoutShadowed(d.errs, cfg.Validate())
}

// ParseDefinitions decodes definition files (names in load order, data by
// name), fills defaults and validates the whole set.
func ParseDefinitions(project string, names []string, data map[string][]byte) (*Definitions, ErrorList) {
	defs := &Definitions{Project: project}
	var errs ErrorList
	for _, name := range names {
		fd, ferrs := parseFile(name, data[name])
		errs = append(errs, ferrs...)
		defs.Entities = append(defs.Entities, fd.Entities...)
		defs.Sources = append(defs.Sources, fd.Sources...)
		defs.FeatureViews = append(defs.FeatureViews, fd.FeatureViews...)
		defs.OnDemandViews = append(defs.OnDemandViews, fd.OnDemandViews...)
		defs.FeatureServices = append(defs.FeatureServices, fd.FeatureServices...)
	}
	dropNil(&defs.Entities)
	dropNil(&defs.Sources)
	dropNil(&defs.FeatureViews)
	dropNil(&defs.OnDemandViews)
	dropNil(&defs.FeatureServices)
	defs.ensureDefaults()
	errs = withoutShadowed(errs, defs.validate())
	defs.sortObjects()
	return defs, errs
}

func parseFile(name string, data []byte) (*fileDefs, ErrorList) {
	out := &fileDefs{}
	var errs ErrorList
	probe := newDecoder(name)
	docs := probe.parseDocuments(data)
	errs = append(errs, probe.errs...)
	for _, doc := range docs {
		// One decoder per document keeps field positions apart.
		d := newDecoder(name)
		var fd fileDefs
		d.decode(doc, "", reflectValue(&fd), 0)
		errs = append(errs, d.errs...)
		out.Entities = append(out.Entities, fd.Entities...)
		out.Sources = append(out.Sources, fd.Sources...)
		out.FeatureViews = append(out.FeatureViews, fd.FeatureViews...)
		out.OnDemandViews = append(out.OnDemandViews, fd.OnDemandViews...)
		out.FeatureServices = append(out.FeatureServices, fd.FeatureServices...)
	}
	return out, errs
}

func dropNil[T comparable](s *[]T) {
	var zero T
	out := (*s)[:0]
	for _, v := range *s {
		if v != zero {
			out = append(out, v)
		}
	}
	*s = out
}

// definitionFiles lists the repository's *.yaml and *.yml files other than
// quiver.yaml, skipping hidden directories and the offline data root.
func definitionFiles(ctx context.Context, dir string, cfg *Config) ([]string, error) {
	dataRoot := filepath.Clean(cfg.DataRoot())
	var files []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() {
			if p != dir && (strings.HasPrefix(e.Name(), ".") || filepath.Clean(p) == dataRoot) {
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(p)
		if ext != ".yaml" && ext != ".yml" {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == ConfigFile {
			return nil
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(files)
	return files, err
}

// unwrapPath drops the absolute path an *fs.PathError repeats: the Error
// names the file already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
