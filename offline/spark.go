package offline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/quiverdata/quiver/internal/sparkconnect"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/streamlog"
)

// The Spark engine (offline.engine: spark) builds training sets and
// latest rows on a Spark cluster over Spark Connect, with the rules of the
// DuckDB engine and the same planner, entity-table checks and on-demand
// features. Each training set is one Spark session (its temporary views
// are gone when it closes):
//
//   - An Arrow entity table is uploaded into the session's plan
//     (sparkconnect.CreateView), numbered in input order. A Parquet entity
//     table is read by the cluster where it lies, each row numbered by its
//     file's rank (lexical, or as listed) and its row index in the file.
//   - Sources are read by the cluster from the data root, which must be a
//     file system every executor sees at the same path, or object storage
//     (s3:// is read as s3a://, with storage.s3's endpoint and path style
//     set as the session's fs.s3a settings). Source order (rule 2) is the
//     file's path, then the row's index in its file (_metadata).
//   - Views with features are joined in the union form (union.go): Spark
//     SQL has no as-of join, and the range join with a ranking that
//     replaces it sorts a hot key's rows once per entity row. Views with
//     aggregations are joined as windowSQL does, in Spark's dialect.
//   - The result streams back as Arrow, in input order; timestamp
//     features are TIMESTAMP_NTZ, as DuckDB's are naive timestamps, so
//     both engines give the same Arrow types.
//
// What the DuckDB engine does and this one does not: duckdb_query sources
// (their SQL is DuckDB's) and EXPLAIN ANALYZE (the plan is Spark's
// formatted plan, not run).

// SparkOptions configure the Spark engine.
type SparkOptions struct {
	// Remote is the Spark Connect server, sc://host:port with optional
	// ;token=..., ;use_ssl=true parameters. Empty: the DuckDB engine.
	Remote string
	// Conf are settings of each training set's Spark session (runtime
	// SQL settings such as spark.sql.shuffle.partitions).
	Conf map[string]string
	// ClientOut streams a training set saved to a local Parquet file to
	// the client, which writes it; by default the cluster writes it
	// (writeOnCluster), so the path must be on a file system it shares.
	ClientOut bool
}

// sparkConf are the settings every session gets before the user's.
var sparkConf = map[string]string{
	"spark.sql.session.timeZone": "UTC",
	// Files of one source may differ in their columns, as DuckDB's
	// union_by_name allows.
	"spark.sql.parquet.mergeSchema": "true",
	// Saved sets carry timestamps as Parquet's INT64 microseconds, as
	// DuckDB writes them, not the legacy INT96.
	"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}

// sparkRenderer renders training sets as Spark SQL.
type sparkRenderer struct {
	e    *Engine
	conf map[string]string
}

var _ renderer = sparkRenderer{}

// newSparkRenderer returns the renderer of opts.Spark, checking its
// settings (it connects per training set).
func newSparkRenderer(e *Engine, opts Options) (sparkRenderer, error) {
	if _, err := sparkconnect.ParseRemote(opts.Spark.Remote); err != nil {
		return sparkRenderer{}, fmt.Errorf("offline: spark remote: %w", err)
	}
	conf := maps.Clone(sparkConf)
	for k, v := range s3aConf(opts.Storage.S3) {
		conf[k] = v
	}
	maps.Copy(conf, opts.Spark.Conf)
	return sparkRenderer{e: e, conf: conf}, nil
}

// s3aConf are the fs.s3a settings of storage.s3 that a cluster needs to
// read the same store (credentials stay the cluster's own).
func s3aConf(o storage.S3Options) map[string]string {
	m := map[string]string{}
	if o.Endpoint != "" {
		m["fs.s3a.endpoint"] = o.Endpoint
		m["fs.s3a.connection.ssl.enabled"] = fmt.Sprint(strings.HasPrefix(o.Endpoint, "https://"))
	}
	if o.Region != "" {
		m["fs.s3a.endpoint.region"] = o.Region
	}
	if o.PathStyle {
		m["fs.s3a.path.style.access"] = "true"
	}
	return m
}

func (sparkRenderer) timestampType(have string) bool { return sparkTimestamp(have) }
func (sparkRenderer) keyType(have string, want registry.ValueType) bool {
	if want == registry.TypeString {
		return have == "string"
	}
	return sparkInteger(have)
}
func (sparkRenderer) castable(have string, want registry.ValueType) bool {
	return sparkCastable(have, want)
}

// open starts a Spark session with the engine's settings.
func (r sparkRenderer) open(ctx context.Context) (*sparkSession, error) {
	ss, err := sparkconnect.Dial(ctx, r.e.opts.Spark.Remote, sparkconnect.Options{})
	if err != nil {
		return nil, fmt.Errorf("offline: spark: %w", err)
	}
	s := &sparkSession{e: r.e, s: ss}
	if err := ss.SetConf(ctx, r.conf); err != nil {
		s.close()
		return nil, fmt.Errorf("offline: spark: %w", err)
	}
	return s, nil
}

// begin opens a Spark session and loads the entity table into it.
func (r sparkRenderer) begin(ctx context.Context, ents Entities) (session, error) {
	s, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.loadEntities(ctx, ents); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// sparkSession is a training set on Spark: a session holding the entity
// table as a temporary view, and the query once rendered.
type sparkSession struct {
	e    *Engine
	s    *sparkconnect.Session
	sql  string
	ents []column
	// sources counts the source views created.
	sources int
	// fixes are the entity columns uploaded as other types, which
	// results give back their own (sparkarrow.go).
	fixes     []sparkFix
	closeOnce sync.Once
}

var _ session = (*sparkSession)(nil)

func (s *sparkSession) close() {
	s.closeOnce.Do(func() { _ = s.s.Close() }) // releasing the session is all there is to do
}

// sparkError is the error of a Spark statement: an invalid request when
// Spark could not analyze it (a missing file or column), else a failure.
func sparkError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if sparkconnect.IsAnalysis(err) {
		return fmt.Errorf("%w: %s: %w", ErrInvalidRequest, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// loadEntities creates the entity table view, numbered in input order
// (colRow).
func (s *sparkSession) loadEntities(ctx context.Context, ents Entities) error {
	if err := ents.checkOneForm(); err != nil {
		return err
	}
	switch {
	case ents.spinePlan != nil:
		sp := ents.spinePlan
		rel, err := s.sourceRelation(ctx, sp.view)
		if err != nil {
			return fmt.Errorf("spine: %w", err)
		}
		order := colFile + ", " + colIdx
		if sp.view.source.CreatedTimestampField != "" && !sp.view.aggregated() {
			order = colC + " ASC NULLS FIRST, " + order
		}
		sql := fmt.Sprintf("CREATE TEMP VIEW %s AS %s", entitiesTable, spineSQL(sparkDialect{}, sp, rel, order))
		if err := s.s.Exec(ctx, sql); err != nil {
			return sparkError(ctx, "spine over "+sp.View, err)
		}
	case ents.reader != nil:
		for _, f := range ents.reader.Schema().Fields() {
			if strings.HasPrefix(f.Name, internalPrefix) {
				return invalidf("entity table column %q uses the reserved prefix %s", f.Name, internalPrefix)
			}
		}
		numbered := newRowNumberReader(ents.reader)
		defer numbered.Release()
		upload, fixes := sparkUploadReader(numbered)
		defer upload.Release()
		s.fixes = fixes
		if err := s.s.CreateView(ctx, entitiesTable, upload); err != nil {
			if err := upload.Err(); err != nil {
				return fmt.Errorf("entity table: %w", err)
			}
			return sparkError(ctx, "entity table", err)
		}
	case ents.path != "":
		// A path or glob: files in lexical order of their paths, each
		// file's rows in order.
		p := s.e.sparkPath(ents.path)
		files := fmt.Sprintf("SELECT *, _metadata.file_path AS %s, _metadata.row_index AS %s FROM parquet.%s", colFile, colIdx, sparkIdent(p))
		// The view keeps colFile and colIdx, which entityColumns hides.
		sql := fmt.Sprintf("CREATE TEMP VIEW %s AS SELECT e.*, (CAST(f.i AS BIGINT) << 40) + e.%s AS %s FROM (%s) AS e JOIN "+
			"(SELECT %s, row_number() OVER (ORDER BY %s) - 1 AS i FROM (SELECT DISTINCT %s FROM (%s))) AS f ON e.%s = f.%s",
			entitiesTable, colIdx, colRow, files, colFile, colFile, colFile, files, colFile, colFile)
		if err := s.s.Exec(ctx, sql); err != nil {
			return sparkError(ctx, "entity table "+ents.path, err)
		}
	case ents.files != nil:
		if len(ents.files) == 0 {
			return invalidf("entity table: an empty list of Parquet files")
		}
		parts := make([]string, len(ents.files))
		for i, f := range ents.files {
			if strings.ContainsAny(f, storage.GlobChars) {
				return invalidf("entity file %q: a listed file's name may not hold glob characters (%s)", f, storage.GlobChars)
			}
			parts[i] = fmt.Sprintf("SELECT *, (%dL << 40) + _metadata.row_index AS %s FROM parquet.%s", i, colRow, sparkIdent(s.e.sparkPath(f)))
		}
		sql := fmt.Sprintf("CREATE TEMP VIEW %s AS %s", entitiesTable, strings.Join(parts, " UNION ALL "))
		if err := s.s.Exec(ctx, sql); err != nil {
			return sparkError(ctx, "entity table "+ents.files[0], err)
		}
	default:
		return invalidf("no entity table (give a Parquet path or an Arrow stream)")
	}
	return nil
}

// Columns of the Spark engine.
const (
	colFile = "__quiver_file" // a row's file (_metadata.file_path)
	colIdx  = "__quiver_idx"  // a row's index in its file (_metadata.row_index)
)

// sparkPath is the path the cluster reads for a source or entity path: an
// absolute path below the data root, or an s3a:// URI.
func (e *Engine) sparkPath(p string) string {
	if uri, remote := e.remotePath(p); remote {
		return "s3a://" + uri[len(storage.SchemeS3+"://"):]
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(e.dataRoot, p)
}

// describe returns the columns of a query, in Spark's type names.
func (s *sparkSession) describe(ctx context.Context, query string) ([]column, error) {
	rr, err := s.s.Query(ctx, "DESCRIBE QUERY "+query)
	if err != nil {
		return nil, err
	}
	defer rr.Release()
	var out []column
	for rr.Next() {
		rec := rr.RecordBatch()
		names, ok1 := rec.Column(0).(*array.String)
		types, ok2 := rec.Column(1).(*array.String)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("describe: unexpected columns %s", rec.Schema())
		}
		for i := range int(rec.NumRows()) {
			out = append(out, column{name: names.Value(i), typ: types.Value(i)})
		}
	}
	return out, rr.Err()
}

func (s *sparkSession) entityColumns(ctx context.Context) ([]column, error) {
	cols, err := s.describe(ctx, "SELECT * FROM "+entitiesTable)
	if err != nil {
		return nil, sparkError(ctx, "entity table", err)
	}
	s.ents = slices.DeleteFunc(cols, func(c column) bool { return c.name == colRow || c.name == colFile || c.name == colIdx })
	return s.ents, nil
}

// render checks every source the joins read and renders the query.
func (s *sparkSession) render(ctx context.Context, res *resolved, ts column) error {
	sources := make([]string, len(res.plans))
	for i, p := range res.plans {
		rel, err := s.sourceRelation(ctx, p)
		if err != nil {
			return err
		}
		sources[i] = rel
	}
	s.sql = sparkTrainingSetSQL(res.plans, sources, s.ents, ts, res.demands, res.cutoff)
	return nil
}

// sourceRelation renders a view's source in the Spark dialect, as
// Engine.sourceRelation does for DuckDB: join keys, f0, ..., colTS, then
// colC (views with features over a source with created times), colFile
// and colIdx.
func (s *sparkSession) sourceRelation(ctx context.Context, p *viewPlan) (string, error) {
	src := p.source
	what := sourceWhat(src)
	var files string
	switch {
	case src.Kind == registry.SourceParquet:
		files = s.e.sparkPath(src.Path)
		what = files
	case src.Kind == registry.SourceDuckDBQuery:
		return "", invalidf("source %s (duckdb_query): its query is DuckDB SQL, which the Spark engine does not run; use a parquet source", src.Name)
	case src.Kind.IsStream():
		what = fmt.Sprintf("%s, offline log %s", src.Kind, path.Join(streamlog.Dir, p.view.Name))
		list, err := s.e.sparkLogFiles(ctx, p.view.Name)
		if err != nil {
			return "", fmt.Errorf("source %s (%s): %w", src.Name, what, err)
		}
		if list == "" {
			return sparkEmptyRelation(p), nil
		}
		files = list
	default:
		return "", invalidf("source %s of kind %s cannot be read offline", src.Name, src.Kind)
	}
	from := fmt.Sprintf("(SELECT *, _metadata.file_path AS %s, _metadata.row_index AS %s FROM parquet.%s)", colFile, colIdx, sparkIdent(files))
	cols, err := s.describe(ctx, "SELECT * FROM "+from)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: source %s (%s, data root %s): %w", ErrInvalidRequest, src.Name, what, s.e.dataRoot, err)
	}
	sc, err := checkSource(sparkRenderer{}, p, what, cols)
	if err != nil {
		return "", err
	}
	var sel []string
	for _, c := range sc.cols {
		sel = append(sel, fmt.Sprintf("%s AS %s", sparkCast(c.typ, sparkIdent(c.name), c.want), sparkIdent(c.alias)))
	}
	ts := sparkCast(sc.ts.typ, sparkIdent(sc.ts.name), registry.TypeTimestamp)
	sel = append(sel, ts+" AS "+colTS)
	var created string
	if sc.created != nil {
		created = sparkCast(sc.created.typ, sparkIdent(sc.created.name), registry.TypeTimestamp)
		if !p.aggregated() {
			sel = append(sel, created+" AS "+colC)
		}
	}
	sel = append(sel, colFile, colIdx)
	where := asOfWhere(p, ts, created, fmt.Sprintf("timestamp_micros(%d)", p.asOf.UnixMicro()))
	return fmt.Sprintf("SELECT %s FROM %s%s", strings.Join(sel, ", "), from, where), nil
}

// sparkEmptyRelation is the relation of a stream view nothing was logged
// for: no rows, with the columns sourceRelation gives.
func sparkEmptyRelation(p *viewPlan) string {
	var sel []string
	for _, k := range p.keys {
		sel = append(sel, fmt.Sprintf("CAST(NULL AS %s) AS %s", sparkType(k.typ), sparkIdent(k.joinKey)))
	}
	ins, _, _ := p.inputs() // inputs of a stream view were checked by the planner
	for i, in := range ins {
		sel = append(sel, fmt.Sprintf("CAST(NULL AS %s) AS f%d", sparkType(in.typ), i))
	}
	sel = append(sel, "CAST(NULL AS TIMESTAMP) AS "+colTS)
	if p.source.CreatedTimestampField != "" && !p.aggregated() {
		sel = append(sel, "CAST(NULL AS TIMESTAMP) AS "+colC)
	}
	sel = append(sel, "CAST(NULL AS STRING) AS "+colFile, "CAST(NULL AS BIGINT) AS "+colIdx)
	return "SELECT " + strings.Join(sel, ", ") + " WHERE false"
}

// sparkLogFiles returns a Hadoop glob that names exactly the committed
// files of a stream view's offline log ("" when there are none): a
// {a,b,...} alternation, which Hadoop expands before globbing. Their
// paths' lexical order is the log's source order.
func (e *Engine) sparkLogFiles(ctx context.Context, view string) (string, error) {
	var files []string
	if e.remoteRoot {
		_, objs, err := streamlog.Objects(ctx, e.store, e.dataRoot, view)
		if err != nil {
			return "", err
		}
		for _, o := range objs {
			files = append(files, e.sparkPath(o.Key))
		}
	} else {
		var err error
		if files, err = streamlog.Files(e.dataRoot, view); err != nil {
			return "", err
		}
	}
	for _, f := range files {
		if strings.ContainsAny(f, storage.GlobChars+",\\") {
			return "", fmt.Errorf("log file %q has a character Hadoop's globs read as a pattern", f)
		}
	}
	switch len(files) {
	case 0:
		return "", nil
	case 1:
		return files[0], nil
	}
	// The braces hold the paths below the files' common directory: a
	// pattern must start with the directory, not a brace.
	dir := files[0][:strings.LastIndex(files[0], "/")+1]
	for _, f := range files[1:] {
		for !strings.HasPrefix(f, dir) {
			dir = dir[:strings.LastIndex(strings.TrimSuffix(dir, "/"), "/")+1]
		}
	}
	rel := make([]string, len(files))
	for i, f := range files {
		rel[i] = f[len(dir):]
	}
	return dir + "{" + strings.Join(rel, ",") + "}", nil
}

// run starts the query; its reader closes the session when released.
func (s *sparkSession) run(ctx context.Context) (array.RecordReader, error) {
	rr, err := s.s.Query(ctx, s.sql)
	if err != nil {
		s.close()
		return nil, sparkError(ctx, "run training-set query", err)
	}
	return sparkRestoreReader(resultReader(rr, func() error { s.close(); return nil }), s.fixes), nil
}

func (s *sparkSession) schema(ctx context.Context) (*arrow.Schema, error) {
	rr, err := s.s.Query(ctx, "SELECT * FROM ("+s.sql+") LIMIT 0")
	if err != nil {
		return nil, sparkError(ctx, "describe training set", err)
	}
	defer rr.Release()
	for rr.Next() {
	}
	return sparkRestoreSchema(rr.Schema(), s.fixes), rr.Err()
}

// copyParquet streams the result into a Parquet file written here.
func (s *sparkSession) copyParquet(ctx context.Context, path string) (int64, error) {
	rr, err := s.run(ctx)
	if err != nil {
		return 0, err
	}
	defer rr.Release()
	return writeParquetFile(ctx, rr, path)
}

// writeOnCluster has the cluster write the result to path: Spark writes
// one Parquet file (zstd, row groups of at most SaveBatchRows rows) in
// input order into a directory beside path, which is then moved to path
// and the directory removed. The rows never pass through this process;
// the directory must be on a file system that the cluster and this
// machine share (offline.spark.out: client streams it instead).
func (s *sparkSession) writeOnCluster(ctx context.Context, path string) (int64, bool, error) {
	if s.e.opts.Spark.ClientOut || len(s.fixes) > 0 {
		// Entity columns of types Spark does not keep are given theirs
		// back in the stream, not in a file the cluster writes.
		return 0, false, nil
	}
	dir := path + ".parts"
	defer os.RemoveAll(dir) // the part file is moved out of it first
	// COALESCE(1) concatenates the sorted partitions in order, so one
	// task writes the file in input order; no shuffle follows the sort.
	sql := fmt.Sprintf("INSERT OVERWRITE DIRECTORY %s USING parquet OPTIONS ('compression' 'zstd', 'parquet.block.row.count.limit' '%d') "+
		"SELECT /*+ COALESCE(1) */ * FROM (%s) AS t", sparkString(dir), SaveBatchRows, s.sql)
	if err := s.s.Exec(ctx, sql); err != nil {
		return 0, true, sparkError(ctx, "write training set on the cluster", err)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, true, fmt.Errorf("the Spark cluster wrote the training set to %s, which this machine does not see: save it where both see the same files, to an s3:// URI, or set offline.spark.out: client to stream it here", dir)
	}
	if err != nil {
		return 0, true, err
	}
	var parts []string
	for _, en := range entries {
		if n := en.Name(); strings.HasPrefix(n, "part-") && !en.IsDir() {
			parts = append(parts, n)
		}
	}
	if len(parts) != 1 {
		return 0, true, fmt.Errorf("the Spark cluster wrote %d part files into %s, want 1", len(parts), dir)
	}
	if err := os.Rename(filepath.Join(dir, parts[0]), path); err != nil {
		return 0, true, err
	}
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return 0, true, fmt.Errorf("read back the cluster's Parquet file: %w", err)
	}
	defer pf.Close()
	return pf.NumRows(), true, nil
}

// explain returns the query and Spark's formatted plan (analyze runs
// nothing: Spark has no EXPLAIN ANALYZE).
func (s *sparkSession) explain(ctx context.Context, analyze bool) (string, error) {
	rr, err := s.s.Query(ctx, "EXPLAIN FORMATTED "+s.sql)
	if err != nil {
		return "", sparkError(ctx, "explain", err)
	}
	defer rr.Release()
	var b strings.Builder
	b.WriteString(s.sql + "\n\n")
	for rr.Next() {
		rec := rr.RecordBatch()
		if c, ok := rec.Column(0).(*array.String); ok {
			for i := range c.Len() {
				b.WriteString(c.Value(i) + "\n")
			}
		}
	}
	if err := rr.Err(); err != nil {
		return "", sparkError(ctx, "explain", err)
	}
	return b.String(), nil
}

// latest reads a view's latest rows on Spark (see Engine.Latest).
func (r sparkRenderer) latest(ctx context.Context, p *viewPlan, req *LatestRequest) (array.RecordReader, error) {
	s, err := r.open(ctx)
	if err != nil {
		return nil, err
	}
	rel, err := s.sourceRelation(ctx, p)
	if err != nil {
		s.close()
		return nil, err
	}
	rr, err := s.s.Query(ctx, sparkLatestSQL(p, rel, req))
	if err != nil {
		s.close()
		return nil, sparkError(ctx, "read latest rows of "+p.view.Name, err)
	}
	return resultReader(rr, func() error { s.close(); return nil }), nil
}
