package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/registry"
)

func cmdInit(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "init", "init DIR")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 1, 1, "init DIR"); err != nil {
		return err
	}
	// Data up to the current hour, so that online lookups of the quickstart
	// find values within the views' ttl.
	if err := quickstart.Scaffold(pos[0], quickstart.GenerateOptions{End: time.Now().UTC().Truncate(time.Hour)}); err != nil {
		return err
	}
	dir := pos[0]
	if _, err := fmt.Fprintf(e.stdout, "Created feature repository %s (project rides) with generated data in %s/data.\n", dir, dir); err != nil {
		return err
	}
	if note := initGit(ctx, dir); note != "" {
		if _, err := fmt.Fprintln(e.stdout, note); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(e.stdout, "Next: cd %s && quiver plan && quiver apply\n", dir)
	return err
}

// initGit makes a new feature repository a Git repository of its own,
// unless it is inside one already, so that apply records its commits (and
// not those of whatever checkout it was made in). It returns a line for
// the user about what it found or did.
func initGit(ctx context.Context, dir string) string {
	if _, err := exec.LookPath("git"); err != nil {
		return "Git is not installed: apply records a commit once the repository is in Git."
	}
	top, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--show-toplevel").Output()
	if err == nil {
		return fmt.Sprintf("Note: %s is inside the Git repository %s, whose commit apply will record; "+
			"make a feature repository outside other checkouts to give it a repository of its own.", dir, strings.TrimSpace(string(top)))
	}
	if out, err := exec.CommandContext(ctx, "git", "init", "-q", dir).CombinedOutput(); err != nil {
		return fmt.Sprintf("git init %s failed (%s): apply records a commit once the repository is in Git.", dir, strings.TrimSpace(string(out)))
	}
	return fmt.Sprintf("Initialized a Git repository in %s (generated files are in .gitignore): commit the definitions, "+
		"git add -A && git commit -m \"feature definitions\", and apply records that commit.", dir)
}

func loadRepo(ctx context.Context, dir string) (*registry.Repo, error) {
	return registry.LoadRepoContext(ctx, dir, registry.LoadOptions{})
}

func cmdValidate(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "validate", "validate [--repo DIR]")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 0, 0, "validate [--repo DIR]"); err != nil {
		return err
	}
	repo, err := loadRepo(ctx, f.repo)
	if err != nil {
		return err
	}
	d := repo.Defs
	_, err = fmt.Fprintf(e.stdout, "ok: project %s, %d files: %d entities, %d sources, %d feature views, %d on-demand views, %d feature services\n",
		d.Project, len(repo.Files), len(d.Entities), len(d.Sources), len(d.FeatureViews), len(d.OnDemandViews), len(d.FeatureServices))
	return err
}

// planRepo loads the repository and diffs it against the latest version.
func planRepo(ctx context.Context, dir string) (*registry.Repo, *registry.Store, *registry.Plan, error) {
	repo, err := loadRepo(ctx, dir)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := openStore(ctx, repo.Config)
	if err != nil {
		return nil, nil, nil, err
	}
	latest, err := store.Latest(ctx)
	if err != nil && !errors.Is(err, registry.ErrNoSnapshot) {
		return nil, nil, nil, err
	}
	var prev *registry.Definitions
	if latest != nil {
		prev = latest.Defs
	}
	plan := registry.Diff(prev, repo.Defs)
	if latest != nil {
		plan.FromVersion = latest.Version
	}
	return repo, store, plan, nil
}

func cmdPlan(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "plan", "plan [--repo DIR] [--json] [--deny-breaking]")
	asJSON := f.Bool("json", false, "print the plan as JSON (for CI pipelines)")
	deny := f.Bool("deny-breaking", false, "exit 3 when the plan has breaking changes")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 0, 0, "plan [--repo DIR] [--json]"); err != nil {
		return err
	}
	_, _, plan, err := planRepo(ctx, f.repo)
	if err != nil {
		return err
	}
	if *asJSON {
		err = writeJSON(e.stdout, plan)
	} else {
		err = plan.WriteText(e.stdout)
	}
	if err != nil {
		return err
	}
	if *deny && plan.Breaking() {
		return exitCodeError{exitBreaking, fmt.Errorf("the plan has %d breaking change(s)", plan.Summary.Breaking)}
	}
	return nil
}

func cmdApply(ctx context.Context, e *env, args []string) error {
	f := newFlags(e, "apply", "apply [--repo DIR] [--allow-breaking] [--author NAME] [--json]")
	allow := f.Bool("allow-breaking", false, "apply even when the plan has breaking changes")
	author := f.String("author", "", "who applies (default $QUIVER_AUTHOR, Git's user.name <user.email>, or the OS user)")
	asJSON := f.Bool("json", false, "print the result as JSON")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := f.positional(pos, 0, 0, "apply [--repo DIR]"); err != nil {
		return err
	}
	repo, err := loadRepo(ctx, f.repo)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, repo.Config)
	if err != nil {
		return err
	}
	git := registry.ReadGitInfo(ctx, repo.Dir)
	if *author == "" {
		*author = registry.DefaultAuthor(git)
	}
	res, err := store.Apply(ctx, repo.Defs, registry.ApplyOptions{
		Commit: git.Commit, Dirty: git.Dirty, Author: *author, AllowBreaking: *allow,
	})
	if errors.Is(err, registry.ErrBreaking) && !*asJSON {
		if werr := res.Plan.WriteText(e.stdout); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, struct {
			Written bool           `json:"written"`
			Info    registry.Info  `json:"snapshot"`
			Plan    *registry.Plan `json:"plan"`
		}{res.Written, res.Snapshot.Info(), res.Plan})
	}
	if !res.Written {
		_, err = fmt.Fprintf(e.stdout, "No changes: registry stays at version %d (%s).\n", res.Snapshot.Version, shortHash(res.Snapshot.Hash))
		return err
	}
	if err := res.Plan.WriteText(e.stdout); err != nil {
		return err
	}
	s := res.Snapshot
	commit := ""
	if s.Commit != "" {
		commit = ", commit " + shortCommit(s.Commit, s.Dirty)
	}
	_, err = fmt.Fprintf(e.stdout, "Applied registry version %d (%s%s).\n", s.Version, shortHash(s.Hash), commit)
	return err
}

func cmdRegistry(ctx context.Context, e *env, args []string) error {
	const usage = "registry list | describe NAME | history [--repo DIR] [--version N] [--json]"
	if len(args) == 0 {
		return usageError{"usage: quiver " + usage}
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(e.stdout, "Usage: quiver %s\n\n", usage)
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  list\tthe objects of the latest registry version (or --version N)")
		fmt.Fprintln(tw, "  describe NAME\tone object as YAML, with what uses it")
		fmt.Fprintln(tw, "  history\tevery applied version: when, by whom, from which commit")
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "\nquiver registry SUBCOMMAND -h lists the flags.")
		return flag.ErrHelp
	}
	f := newFlags(e, "registry "+sub, usage)
	asJSON := f.Bool("json", false, "print JSON")
	ver := f.Int64("version", 0, "read registry version `N` (default: the latest)")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(f.repo)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	switch sub {
	case "history":
		if err := f.positional(pos, 0, 0, "registry history"); err != nil {
			return err
		}
		hist, err := store.History(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e.stdout, hist)
		}
		if len(hist) == 0 {
			return registry.ErrNoSnapshot
		}
		return writeHistory(e.stdout, hist)
	case "list", "describe":
	default:
		return usageError{fmt.Sprintf("unknown registry command %q; usage: quiver %s", sub, usage)}
	}
	var snap *registry.Snapshot
	if *ver > 0 {
		snap, err = store.Get(ctx, *ver)
	} else {
		snap, err = store.Latest(ctx)
	}
	if err != nil {
		return err
	}
	if sub == "list" {
		if err := f.positional(pos, 0, 0, "registry list"); err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e.stdout, snap.Defs)
		}
		return writeList(e.stdout, snap)
	}
	if err := f.positional(pos, 1, 1, "registry describe NAME"); err != nil {
		return err
	}
	obj, ok := snap.Defs.Lookup(pos[0])
	if !ok {
		var names []string
		for _, o := range snap.Defs.Objects() {
			names = append(names, o.ObjectName())
		}
		return fmt.Errorf("registry version %d has no object named %q (it has: %s)", snap.Version, registry.Clip(pos[0]), strings.Join(names, ", "))
	}
	if *asJSON {
		return writeJSON(e.stdout, obj)
	}
	return describe(e.stdout, snap, obj)
}

// loadConfig reads only quiver.yaml: reading the registry does not need the
// definition files to be valid.
func loadConfig(dir string) (*registry.Config, error) {
	return registry.LoadConfig(dir, registry.LoadOptions{})
}

// openStore opens the registry named in quiver.yaml.
func openStore(ctx context.Context, cfg *registry.Config) (*registry.Store, error) {
	return cfg.OpenRegistry(ctx)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func shortHash(h string) string {
	if i := strings.IndexByte(h, ':'); i >= 0 && len(h) > i+13 {
		return h[:i+13]
	}
	return h
}

func shortCommit(c string, dirty bool) string {
	if len(c) > 12 {
		c = c[:12]
	}
	if dirty {
		c += " (with uncommitted changes)"
	}
	return c
}

func writeHistory(w io.Writer, hist []registry.Info) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tAPPLIED (UTC)\tAUTHOR\tCOMMIT\tHASH")
	for _, h := range hist {
		commit := "-"
		if h.Commit != "" {
			commit = shortCommit(h.Commit, false)
			if h.Dirty {
				commit += "+dirty"
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", h.Version, h.CreatedAt.UTC().Format(time.DateTime), orDash(h.Author), commit, shortHash(h.Hash))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeList(w io.Writer, snap *registry.Snapshot) error {
	fmt.Fprintf(w, "Project %s, registry version %d:\n\n", snap.Project, snap.Version)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tDETAILS")
	for _, o := range snap.Defs.Objects() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", o.ObjectKind(), o.ObjectName(), details(o))
	}
	return tw.Flush()
}

// details summarises an object in one line.
func details(o registry.Object) string {
	switch x := o.(type) {
	case *registry.Entity:
		var keys []string
		for _, k := range x.JoinKeys {
			keys = append(keys, k.Name+" "+k.Type.String())
		}
		return "join keys: " + strings.Join(keys, ", ")
	case *registry.Source:
		switch x.Kind {
		case registry.SourceParquet:
			return "parquet " + x.Path
		case registry.SourceKafka:
			return "kafka topic " + x.Topic + " (" + x.Format + ")"
		case registry.SourceDuckDBQuery:
			return "duckdb_query"
		}
		return string(x.Kind)
	case *registry.FeatureView:
		ttl := "ttl " + x.TTL.String()
		if x.TTL == 0 {
			ttl = "no ttl"
		}
		online := "offline only"
		if x.IsOnline() {
			online = "online"
		}
		return fmt.Sprintf("%d features of %s from %s, %s, %s", len(x.OutputFeatures()), strings.Join(x.Entities, ", "), x.Source, ttl, online)
	case *registry.OnDemandView:
		return fmt.Sprintf("%d features from %s", len(x.Features), strings.Join(x.Inputs, ", "))
	case *registry.FeatureService:
		return strconv.Itoa(len(x.Features)) + " feature references"
	}
	return ""
}

// describe prints an object as YAML with its resolved features and users.
func describe(w io.Writer, snap *registry.Snapshot, obj registry.Object) error {
	fmt.Fprintf(w, "# %s %s, registry version %d (applied %s by %s)\n", obj.ObjectKind(), obj.ObjectName(),
		snap.Version, snap.CreatedAt.UTC().Format(time.DateTime), orDash(snap.Author))
	b, err := registry.ToYAML(obj)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	defs := snap.Defs
	if x, ok := obj.(*registry.FeatureService); ok {
		feats, err := defs.Resolve(x.Features)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "# resolves to %d features:\n", len(feats))
		for _, f := range feats {
			fmt.Fprintf(w, "#   %s:%s %s\n", f.View, f.Feature, f.Type)
		}
	}
	if users := usedBy(defs, obj); len(users) > 0 {
		fmt.Fprintf(w, "# used by: %s\n", strings.Join(users, ", "))
	}
	return nil
}

// usedBy lists the objects that reference obj.
func usedBy(defs *registry.Definitions, obj registry.Object) []string {
	name := obj.ObjectName()
	var out []string
	for _, fv := range defs.FeatureViews {
		for _, e := range fv.Entities {
			if e == name && obj.ObjectKind() == registry.KindEntity {
				out = append(out, "feature_view "+fv.Name)
			}
		}
		if fv.Source == name && obj.ObjectKind() == registry.KindSource {
			out = append(out, "feature_view "+fv.Name)
		}
	}
	for _, od := range defs.OnDemandViews {
		for _, in := range od.Inputs {
			if in == name {
				out = append(out, "on_demand_feature_view "+od.Name)
			}
		}
	}
	for _, fs := range defs.FeatureServices {
		for _, ref := range fs.Features {
			if r, err := registry.ParseFeatureRef(ref); err == nil && r.View == name {
				out = append(out, "feature_service "+fs.Name)
				break
			}
		}
	}
	return out
}
