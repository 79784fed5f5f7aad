package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
)

const trainingSetUsage = "training-set --entities FILE | --spine VIEW --start T --end T [--every D] --features REFS [--feature-service S] [--full-feature-names] [--as-of TIME | --as-of-column COL] --out FILE|-"

// latestDefinitions loads quiver.yaml and the latest applied registry
// version: commands that read definitions never read the YAML on disk.
func latestDefinitions(ctx context.Context, repo string) (*registry.Config, *registry.Snapshot, error) {
	cfg, err := loadConfig(repo)
	if err != nil {
		return nil, nil, err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	snap, err := store.Latest(ctx)
	if err != nil {
		return nil, nil, err
	}
	return cfg, snap, nil
}

// latestWithEngine is latestDefinitions and the offline engine its
// quiver.yaml configures; the caller closes the engine.
func latestWithEngine(ctx context.Context, repo string) (*registry.Config, *registry.Snapshot, *offline.Engine, error) {
	cfg, snap, err := latestDefinitions(ctx, repo)
	if err != nil {
		return nil, nil, nil, err
	}
	eng, err := offline.Open(offline.OptionsFromConfig(cfg))
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, snap, eng, nil
}

func cmdTrainingSet(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "training-set", trainingSetUsage)
	entities := f.String("entities", "", "entity table: a Parquet `FILE` (or glob, or s3:// URI) with join keys, an event timestamp and any label columns")
	features := f.String("features", "", "comma-separated feature references: view:feature or view:*")
	service := f.String("feature-service", "", "a feature service `NAME` instead of --features")
	full := f.Bool("full-feature-names", false, "name feature columns view__feature")
	out := f.String("out", "", "output `FILE` (or s3:// URI): "+outFormats)
	tsCol := f.String("timestamp-column", offline.DefaultTimestampColumn, "the entity table's event-time `COLUMN`")
	keyMap := f.String("join-key-map", "", "entity-table columns for join keys it names differently: `KEY=COLUMN` or VIEW.KEY=COLUMN, comma-separated")
	explain := f.Bool("explain", false, "print the SQL and the engine's plan instead of running it")
	preview := f.Int("preview", 0, "after writing Parquet, print its first `N` rows")
	asOf := f.String("as-of", "", "build the set as of what was known at `TIME` (RFC 3339, or a date): rows created later are left out")
	asOfCol := f.String("as-of-column", "", "instead of --as-of, each row as of the time in its entity-table `COLUMN` (e.g. event_timestamp: what was known at prediction time)")
	spineView := f.String("spine", "", "instead of --entities, generate the entity rows from feature `VIEW`: its events from --start to --end, or with --every its entities at that cadence")
	start := f.String("start", "", "with --spine: the first `TIME` of the rows")
	end := f.String("end", "", "with --spine: the last `TIME` of the rows")
	every := f.String("every", "", "with --spine: one row per entity every `DURATION` (e.g. 1h, 1d) from --start to --end")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 0, 0, trainingSetUsage); err != nil {
		return err
	}
	switch {
	case *entities == "" && *spineView == "":
		return usageError{"--entities is required (or --spine VIEW to generate the rows); usage: quiver " + trainingSetUsage}
	case *entities != "" && *spineView != "":
		return usageError{"give --entities or --spine, not both"}
	case *spineView == "" && (*start != "" || *end != "" || *every != ""):
		return usageError{"--start, --end and --every go with --spine VIEW"}
	case *spineView != "" && (*start == "" || *end == ""):
		return usageError{"--spine needs --start and --end"}
	case *out == "" && !*explain:
		return usageError{"--out is required (a Parquet file, an Arrow IPC .arrow file, or - for Arrow on stdout); usage: quiver " + trainingSetUsage}
	case *out != "" && *out != "-" && offline.DatasetFormat(*out) == "":
		ext := filepath.Ext(*out)
		if ext == "" {
			ext = "no extension"
		}
		return usageError{fmt.Sprintf("--out %s: cannot write %s; --out takes %s", clipPath(*out), registry.Clip(ext), outFormats)}
	case *preview > 0 && offline.DatasetFormat(*out) == offline.FormatArrow:
		return usageError{"--preview reads Parquet output; preview the Arrow file with a Parquet --out, or read it with any Arrow reader"}
	case *features == "" && *service == "":
		return usageError{"give --features or --feature-service; usage: quiver " + trainingSetUsage}
	}
	joinKeys, err := parseKeyMap(*keyMap)
	if err != nil {
		return err
	}
	var cutoff time.Time
	if *asOf != "" {
		if cutoff, err = parseTime(*asOf); err != nil {
			return usageError{"--as-of: " + err.Error()}
		}
	}
	ents := offline.EntitiesFromParquet(*entities)
	if *spineView != "" {
		sp := offline.Spine{View: *spineView}
		if sp.Start, err = parseTime(*start); err != nil {
			return usageError{"--start: " + err.Error()}
		}
		if sp.End, err = parseTime(*end); err != nil {
			return usageError{"--end: " + err.Error()}
		}
		if *every != "" {
			d, err := registry.ParseDuration(*every)
			if err != nil || d.Std() <= 0 {
				return usageError{fmt.Sprintf("--every: %q is not a positive duration (e.g. 1h, 15m, 1d)", *every)}
			}
			sp.Every = d.Std()
		}
		ents = offline.EntitiesFromSpine(sp)
	} else if err := checkInputPath("--entities", *entities); err != nil {
		return err
	}
	_, snap, eng, err := latestWithEngine(ctx, f.repo)
	if err != nil {
		return err
	}
	defer eng.Close()
	req := &offline.Request{
		Defs:             snap.Defs,
		Entities:         ents,
		Features:         splitList(*features),
		FeatureService:   *service,
		FullFeatureNames: *full,
		TimestampColumn:  *tsCol,
		JoinKeyMap:       joinKeys,
		AsOf:             cutoff,
		AsOfColumn:       *asOfCol,
	}
	if *explain {
		plan, err := eng.Explain(ctx, req, false)
		if err != nil {
			return err
		}
		_, err = fmt.Fprint(e.stdout, plan)
		return err
	}
	prog := startProgress(e.stderr, fmt.Sprintf("building training set from registry version %d", snap.Version))
	defer prog.Stop()
	if *out == "-" {
		_, err := eng.WriteArrow(ctx, req, func(s *arrow.Schema) (offline.ArrowWriter, error) {
			return ipc.NewWriter(e.stdout, ipc.WithSchema(s)), nil
		}, progressRows(prog))
		return err
	}
	if strings.Contains(*out, "://") {
		// An object-storage URI: built locally, then uploaded whole.
		if _, err := storage.ParseURI(*out); err != nil {
			return usageError{fmt.Sprintf("--out: %v", err)}
		}
	} else if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return fmt.Errorf("--out %s: %w; %s", clipPath(*out), err, pathsRule)
	}
	saved, err := eng.Save(ctx, req, *out, offline.SaveOptions{Overwrite: true, Progress: progressRows(prog)})
	if err != nil {
		return err
	}
	n := saved.Rows
	took := prog.Stop()
	if _, err := fmt.Fprintf(e.stdout, "Wrote %d rows to %s in %.1fs (registry version %d).\n", n, *out, took.Seconds(), snap.Version); err != nil {
		return err
	}
	if *preview <= 0 {
		return nil
	}
	cols, rows, err := eng.Head(ctx, *out, *preview)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// outFormats is what --out can write, chosen by the file's extension.
const outFormats = "a Parquet file (.parquet), an Arrow IPC file (.arrow, .arrows, .feather, .ipc), or - for an Arrow IPC stream on stdout"

// clipPath cuts a path for a message only when it is longer than any
// path the system takes (PATH_MAX).
func clipPath(p string) string { return registry.ClipTo(p, 4096) }

// pathsRule ends every error about a path the CLI was given.
const pathsRule = "CLI paths are relative to the current directory"

// checkInputPath checks that a file (or glob) given on the command line
// exists, saying how it was resolved when it does not: the CLI resolves
// paths against the current directory, where a Flight ticket's are
// relative to the data root.
func checkInputPath(flagName, path string) error {
	if strings.Contains(path, "://") {
		// An object-storage URI: the engine lists or looks it up, and says
		// which bucket or key is missing.
		if _, err := storage.ParseURI(path); err != nil {
			return usageError{fmt.Sprintf("%s: %v", flagName, err)}
		}
		return nil
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	where := fmt.Sprintf("%s %s: not found; %s (%s), not to --repo or the data root", flagName, clipPath(path), pathsRule, cwd)
	if strings.ContainsAny(path, "*?[") {
		matches, err := filepath.Glob(path)
		if err != nil {
			return usageError{fmt.Sprintf("%s %s: %v", flagName, clipPath(path), err)}
		}
		if len(matches) == 0 {
			return errors.New(strings.Replace(where, "not found", "matches no file", 1))
		}
		return nil
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return errors.New(where)
	} else if err != nil {
		return fmt.Errorf("%s: %w", flagName, err)
	}
	return nil
}

// progressRows reports the rows written so far.
func progressRows(prog *progress) func(int64) {
	return func(rows int64) { prog.Set(fmt.Sprintf("wrote %d rows", rows)) }
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseKeyMap(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
			return nil, usageError{fmt.Sprintf("--join-key-map: %q is not KEY=COLUMN", kv)}
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m, nil
}
