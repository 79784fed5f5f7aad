package offline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/internal/durable"
	"github.com/quiverdata/quiver/registry"
)

// Compacted copies. A view's rows, sorted once by join key, event time,
// created time and source order, let a training set join the view in one
// merge pass (merge.go) instead of sorting all its rows again on every
// request, which is what the ASOF join costs. The copy is a cache: the
// source files stay the truth. Each copy records the identity of the
// files it was made from (path, size, modification time), and a training
// set uses it only while every file of the source is still the same and
// no file was added or removed; otherwise the request runs the SQL join,
// so a training set over stale compacted data cannot happen. The copy is
// also keyed by everything in the view's definition that its rows depend
// on (source path, fields, field mapping, keys, feature types), so an
// applied change of definition never meets an old copy.
//
// A copy is an Arrow IPC file (uncompressed, so reading it costs no
// decoding) of the view's rows with non-null keys and event time: the
// join keys under their names, __quiver_ts, __quiver_c (the created time,
// -infinity when null, for sources with one), __quiver_o (source order)
// and the features f0, f1, ..., cast to their declared types as the SQL
// join reads them. It lives in Options.CompactDir, beside a JSON manifest
// of the source files. Only local Parquet sources of views with features
// are compacted; views with aggregations, stream views and sources on
// object storage always run in SQL.

// compactFormat versions the copies' layout; a change makes every old
// copy a miss.
const compactFormat = 1

// compactManifest is the JSON beside a copy.
type compactManifest struct {
	Format int    `json:"format"`
	View   string `json:"view"`
	// Files are the source's files when the copy was made.
	Files []fileIdentity `json:"files"`
	Rows  int64          `json:"rows"`
	// Built is when the copy was made; Seconds how long it took.
	Built   time.Time `json:"built"`
	Seconds float64   `json:"seconds"`
}

// fileIdentity is what says a source file is unchanged.
type fileIdentity struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime_ns"`
}

// CompactResult describes a compacted copy.
type CompactResult struct {
	View string
	// Path is the copy's file.
	Path string
	// Rows and Bytes are the copy's; Files the source files it covers.
	Rows, Bytes int64
	Files       int
	// Took is how long the build took (zero when Fresh).
	Took time.Duration
	// Fresh says the copy was already up to date, and nothing was built.
	Fresh bool
}

// compactable reports whether a view can have a compacted copy: a view
// with features over a local Parquet source.
func (e *Engine) compactable(p *viewPlan) bool {
	if e.opts.CompactDir == "" || p.aggregated() || p.source.Kind != registry.SourceParquet {
		return false
	}
	_, remote := e.remotePath(p.source.Path)
	return !remote
}

// compactKey names a view's copy by what its rows depend on.
func compactKey(p *viewPlan) string {
	h := sha256.New()
	fmt.Fprintf(h, "format %d\nview %s\nsource %s %s ts %s created %s\n", compactFormat, p.view.Name, p.source.Kind, p.source.Path,
		p.source.TimestampField, p.source.CreatedTimestampField)
	maps := make([]string, 0, len(p.source.FieldMapping))
	for from, to := range p.source.FieldMapping {
		maps = append(maps, from+"="+to)
	}
	slices.Sort(maps)
	fmt.Fprintf(h, "mapping %s\n", strings.Join(maps, ","))
	for _, k := range p.keys {
		fmt.Fprintf(h, "key %s %s\n", k.joinKey, k.typ)
	}
	for _, f := range p.features {
		fmt.Fprintf(h, "feature %s %s\n", f.Feature, f.Type)
	}
	return p.view.Name + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// sourceFiles lists a local Parquet source's files with their identity,
// in lexical order.
func (e *Engine) sourceFiles(src *registry.Source) ([]fileIdentity, error) {
	pattern := src.Path
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(e.dataRoot, pattern)
	}
	paths, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	slices.Sort(paths)
	out := make([]fileIdentity, 0, len(paths))
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			continue
		}
		out = append(out, fileIdentity{Path: p, Size: st.Size(), MTime: st.ModTime().UnixNano()})
	}
	return out, nil
}

// freshCopy returns the path of p's compacted copy when it exists and its
// source files are exactly those it was made from, else "".
func (e *Engine) freshCopy(p *viewPlan) (string, *compactManifest, error) {
	if !e.compactable(p) {
		return "", nil, nil
	}
	base := filepath.Join(e.opts.CompactDir, compactKey(p))
	b, err := os.ReadFile(base + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	var m compactManifest
	if err := json.Unmarshal(b, &m); err != nil || m.Format != compactFormat {
		return "", nil, nil // an unreadable or older manifest is a miss
	}
	files, err := e.sourceFiles(p.source)
	if err != nil {
		return "", nil, err
	}
	if !slices.Equal(files, m.Files) {
		return "", nil, nil
	}
	if _, err := os.Stat(base + ".arrow"); err != nil {
		return "", nil, nil
	}
	return base + ".arrow", &m, nil
}

// Compact builds the compacted copy of each named view (every view that
// can have one when views is empty) whose copy is missing or stale, and
// describes each. It needs Options.CompactDir.
func (e *Engine) Compact(ctx context.Context, defs *registry.Definitions, views ...string) ([]CompactResult, error) {
	if e.opts.CompactDir == "" {
		return nil, errors.New("offline: no compaction directory (Options.CompactDir, offline.compact.dir)")
	}
	if len(views) == 0 {
		for _, v := range defs.FeatureViews {
			views = append(views, v.Name)
		}
	}
	var out []CompactResult
	for _, name := range views {
		if defs.FeatureView(name) == nil {
			return out, invalidf("compact: no feature view %q", name)
		}
		res, err := e.resolve(&Request{Defs: defs, Features: []string{name + ":*"}})
		if err != nil {
			return out, err
		}
		p := res.plans[0]
		if !e.compactable(p) {
			if len(views) == 1 {
				return out, invalidf("compact: view %s cannot be compacted (only views with features over local Parquet sources)", name)
			}
			continue
		}
		r, err := e.compactView(ctx, p)
		if err != nil {
			return out, fmt.Errorf("compact %s: %w", name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// compactView builds p's copy unless it is fresh.
func (e *Engine) compactView(ctx context.Context, p *viewPlan) (CompactResult, error) {
	base := filepath.Join(e.opts.CompactDir, compactKey(p))
	if path, m, err := e.freshCopy(p); err != nil {
		return CompactResult{}, err
	} else if path != "" {
		st, err := os.Stat(path)
		if err != nil {
			return CompactResult{}, err
		}
		return CompactResult{View: p.view.Name, Path: path, Rows: m.Rows, Bytes: st.Size(), Files: len(m.Files), Fresh: true}, nil
	}
	start := time.Now()
	// The identity is taken before the rows are read: a file replaced
	// while the copy is made leaves a manifest that no longer matches.
	files, err := e.sourceFiles(p.source)
	if err != nil {
		return CompactResult{}, err
	}
	if err := os.MkdirAll(e.opts.CompactDir, 0o755); err != nil {
		return CompactResult{}, err
	}
	conn, err := e.conn(ctx)
	if err != nil {
		return CompactResult{}, err
	}
	defer conn.Close()
	var st staged
	defer st.release()
	rel, err := e.sourceRelation(ctx, conn, p, &st, nil)
	if err != nil {
		return CompactResult{}, err
	}
	ar, err := duckdb.NewArrowFromConn(conn)
	if err != nil {
		return CompactResult{}, err
	}
	rr, err := ar.QueryContext(ctx, compactSQL(p, rel))
	if err != nil {
		return CompactResult{}, fmt.Errorf("sort the rows: %s", duckErr(err))
	}
	defer rr.Release()
	tmp := durable.TempName(base + ".arrow")
	defer os.Remove(tmp) // gone once moved into place
	fh, err := os.Create(tmp)
	if err != nil {
		return CompactResult{}, err
	}
	w, err := ipc.NewFileWriter(fh, ipc.WithSchema(rr.Schema()))
	if err != nil {
		_ = fh.Close()
		return CompactResult{}, err
	}
	var rows int64
	m := &merger{schema: rr.Schema(), write: w.Write}
	defer m.release()
	for rr.Next() {
		rr.RecordBatch().Retain() // add takes over a reference
		if err := m.add(rr.RecordBatch()); err != nil {
			_ = fh.Close()
			return CompactResult{}, err
		}
		rows += rr.RecordBatch().NumRows()
	}
	if err := rr.Err(); err != nil {
		_ = fh.Close()
		return CompactResult{}, fmt.Errorf("sort the rows: %s", duckErr(err))
	}
	if err := m.flush(); err != nil {
		_ = fh.Close()
		return CompactResult{}, err
	}
	if err := w.Close(); err != nil {
		_ = fh.Close()
		return CompactResult{}, err
	}
	if err := fh.Close(); err != nil {
		return CompactResult{}, err
	}
	// The old manifest goes first: a crash before the new one is written
	// leaves a copy without a manifest, a miss, never a copy under the
	// identity of other files.
	if err := os.Remove(base + ".json"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return CompactResult{}, err
	}
	if err := durable.Publish(tmp, base+".arrow"); err != nil {
		return CompactResult{}, err
	}
	took := time.Since(start)
	mb, err := json.Marshal(compactManifest{Format: compactFormat, View: p.view.Name, Files: files, Rows: rows, Built: time.Now().UTC(), Seconds: took.Seconds()})
	if err != nil {
		return CompactResult{}, err
	}
	mtmp := durable.TempName(base + ".json")
	if err := os.WriteFile(mtmp, mb, 0o644); err != nil {
		return CompactResult{}, err
	}
	if err := durable.Publish(mtmp, base+".json"); err != nil {
		_ = os.Remove(mtmp)
		return CompactResult{}, err
	}
	info, err := os.Stat(base + ".arrow")
	if err != nil {
		return CompactResult{}, err
	}
	return CompactResult{View: p.view.Name, Path: base + ".arrow", Rows: rows, Bytes: info.Size(), Files: len(files), Took: took}, nil
}

// compactSQL sorts the view's rows with non-null keys and time by key,
// event time, created time and source order, rel being its source
// relation.
func compactSQL(p *viewPlan, rel string) string {
	var keys, notNull []string
	for _, k := range p.keys {
		keys = append(keys, quoteIdent(k.joinKey))
		notNull = append(notNull, quoteIdent(k.joinKey)+" IS NOT NULL")
	}
	sel := append([]string{}, keys...)
	sel = append(sel, colTS)
	order := append(append([]string{}, keys...), colTS)
	if p.source.CreatedTimestampField != "" {
		sel = append(sel, fmt.Sprintf("%s.c AS %s", colKey, colC))
		order = append(order, colC)
	}
	sel = append(sel, fmt.Sprintf("%s.o AS %s", colKey, colO))
	order = append(order, colO)
	for j := range p.features {
		sel = append(sel, fmt.Sprintf("f%d", j))
	}
	return fmt.Sprintf("SELECT %s FROM (%s) WHERE %s AND %s IS NOT NULL ORDER BY %s",
		strings.Join(sel, ", "), rel, strings.Join(notNull, " AND "), colTS, strings.Join(order, ", "))
}
