package offline

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/internal/refreader"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/streamlog"
	"github.com/quiverdata/quiver/transform"
)

// DefaultTimestampColumn is the entity table's event-time column unless a
// request names another.
const DefaultTimestampColumn = "event_timestamp"

// ErrInvalidRequest marks problems with a request (as opposed to failures
// of the engine); servers map it to InvalidArgument.
var ErrInvalidRequest = errors.New("quiver: invalid training-set request")

// Entities is a training set's entity table: join-key columns, an event
// timestamp column and any other columns (labels), which are carried
// through. Build one with EntitiesFromParquet, EntitiesFromParquetFiles or
// EntitiesFromArrow.
type Entities struct {
	path   string
	files  []string
	reader array.RecordReader
}

// EntitiesFromParquetFiles reads the entity table from Parquet files, in
// the order given. The names are taken as they are: no glob is expanded
// (a server confines what a client names to its data root and passes the
// files here).
func EntitiesFromParquetFiles(paths []string) Entities {
	return Entities{files: append([]string(nil), paths...)}
}

// EntitiesFromParquet reads the entity table from a Parquet file or glob
// (files in lexical order, rows in file order).
func EntitiesFromParquet(path string) Entities { return Entities{path: path} }

// EntitiesFromArrow reads the entity table from an Arrow stream. The
// training set consumes the stream; the caller still releases it.
func EntitiesFromArrow(r array.RecordReader) Entities { return Entities{reader: r} }

// Request asks for a point-in-time-correct training set.
type Request struct {
	// Defs are the applied definitions to read views from.
	Defs *registry.Definitions
	// Entities is the entity table.
	Entities Entities
	// Features are references: view:feature or view:*.
	Features []string
	// FeatureService names a feature service instead of Features.
	FeatureService string
	// FullFeatureNames names feature columns view__feature.
	FullFeatureNames bool
	// TimestampColumn is the entity table's event time (default
	// event_timestamp).
	TimestampColumn string
	// JoinKeyMap names entity-table columns for join keys the table names
	// differently: "driver_id" → "driver" for every view, or
	// "view.driver_id" → "other_driver" for one view.
	JoinKeyMap map[string]string
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// Internal column names; entity tables must not use the prefix.
const (
	internalPrefix = "__quiver_"
	colRow         = "__quiver_row"
	colTS          = "__quiver_ts"
	colKey         = "__quiver_key"
	colOrd         = "__quiver_ord"
	entitiesTable  = "__quiver_entities"
)

// viewPlan is one requested view: its source, the features to read and
// how its join keys meet the entity table.
type viewPlan struct {
	view     *registry.FeatureView
	source   *registry.Source
	features []outputFeature
	keys     []keyPair
	// aggs holds, for a view with aggregations, the aggregation of each
	// feature (rule 5 instead of rules 1 and 2), and aggInput the index of
	// the input each reads (see inputs).
	aggs     []*registry.Aggregation
	aggInput []int
}

// aggregated reports whether the view's features are windowed
// aggregations.
func (p *viewPlan) aggregated() bool { return len(p.view.Aggregations) > 0 }

// input is a source column a view plan reads besides its join keys and
// times, by its view-side name (after field_mapping).
type input struct {
	name string
	typ  registry.ValueType
	role string // what reads it, for errors
}

// inputs returns the columns sourceRelation projects as f0, f1, ...: one
// per feature, or for aggregations one per distinct aggregated column;
// aggInput gives each aggregation's index in them (-1 for count without
// a column).
func (p *viewPlan) inputs() (ins []input, aggInput []int, err error) {
	if !p.aggregated() {
		for _, f := range p.features {
			ins = append(ins, input{name: f.Feature, typ: f.Type, role: fmt.Sprintf("feature %s:%s", f.View, f.Feature)})
		}
		return ins, nil, nil
	}
	index := map[string]int{}
	for _, a := range p.aggs {
		if a.Column == "" {
			aggInput = append(aggInput, -1)
			continue
		}
		i, ok := index[a.Column]
		if !ok {
			f := p.source.SchemaField(a.Column)
			if f == nil {
				return nil, nil, invalidf("aggregation %s:%s reads %q, which source %s does not declare", p.view.Name, a.Name, a.Column, p.source.Name)
			}
			i = len(ins)
			index[a.Column] = i
			ins = append(ins, input{name: a.Column, typ: f.Type, role: fmt.Sprintf("aggregation %s:%s", p.view.Name, a.Name)})
		}
		aggInput = append(aggInput, i)
	}
	return ins, aggInput, nil
}

type outputFeature struct {
	registry.ResolvedFeature
	column string // output column name
}

type keyPair struct {
	joinKey   string
	entityCol string
	typ       registry.ValueType
}

// demand is a requested on-demand view: the features to compute, and the
// columns of the joined result that hold its inputs and request fields.
type demand struct {
	view      *transform.View
	features  []int    // index in view.Features
	outputs   []string // output column of each
	inputCols []string // column of each of view.Inputs
	reqCols   []string // column of each of view.Request (cast in SQL)
	reqFrom   []string // the entity-table column each is cast from
}

// resolved is a request's plan: the views to join, the output feature
// columns and the on-demand views computed over the join.
type resolved struct {
	plans   []*viewPlan
	columns []string
	demands []*demand
}

// resolve turns the request's references into per-view plans, in the order
// the references name them, and checks output names for collisions.
// On-demand features add their inputs to the join as hidden columns when
// they are not requested themselves.
func (e *Engine) resolve(req *Request) (*resolved, error) {
	if req.Defs == nil {
		return nil, invalidf("no definitions (apply the repository first)")
	}
	feats, err := req.Defs.ResolveRequest(req.Features, req.FeatureService, req.FullFeatureNames)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidRequest, err)
	}
	res := &resolved{}
	var plans []*viewPlan
	byView := map[string]*viewPlan{}
	var columns []string
	stored := map[registry.FeatureRef]string{}
	byDemand := map[string]*demand{}
	var stc []registry.ResolvedFeature
	for _, f := range feats {
		if !f.OnDemand {
			stc = append(stc, f)
			stored[registry.FeatureRef{View: f.View, Feature: f.Feature}] = f.Output
			continue
		}
		d := byDemand[f.View]
		if d == nil {
			set, err := e.transforms.Get(req.Defs)
			if err != nil {
				return nil, err
			}
			d = &demand{view: set.View(f.View)}
			byDemand[f.View] = d
			res.demands = append(res.demands, d)
		}
		for j, tf := range d.view.Features {
			if tf.Name == f.Feature {
				d.features = append(d.features, j)
				d.outputs = append(d.outputs, f.Output)
			}
		}
	}
	hidden := 0
	for di, d := range res.demands {
		for _, in := range d.view.Inputs {
			ref := registry.FeatureRef{View: in.View, Feature: in.Feature}
			col, ok := stored[ref]
			if !ok {
				col = fmt.Sprintf("%sin%d", internalPrefix, hidden)
				hidden++
				stored[ref] = col
				stc = append(stc, registry.ResolvedFeature{View: in.View, Feature: in.Feature, Type: in.Type, Output: col})
			}
			d.inputCols = append(d.inputCols, col)
		}
		for j, f := range d.view.Request {
			d.reqCols = append(d.reqCols, fmt.Sprintf("%srq%d_%d", internalPrefix, di, j))
			d.reqFrom = append(d.reqFrom, f.Name)
		}
	}
	for _, f := range stc {
		p := byView[f.View]
		if p == nil {
			v := req.Defs.FeatureView(f.View)
			p = &viewPlan{view: v, source: req.Defs.Source(v.Source)}
			byView[f.View] = p
			plans = append(plans, p)
		}
		if !strings.HasPrefix(f.Output, internalPrefix) {
			columns = append(columns, f.Output)
		}
		p.features = append(p.features, outputFeature{ResolvedFeature: f, column: f.Output})
	}
	for _, d := range res.demands {
		columns = append(columns, d.outputs...)
	}
	for _, p := range plans {
		if p.aggregated() {
			for _, f := range p.features {
				i := slices.IndexFunc(p.view.Aggregations, func(a *registry.Aggregation) bool { return a.Name == f.Feature })
				if i < 0 {
					return nil, invalidf("view %s has no aggregation %q", p.view.Name, f.Feature)
				}
				p.aggs = append(p.aggs, p.view.Aggregations[i])
			}
			if _, p.aggInput, err = p.inputs(); err != nil {
				return nil, err
			}
		}
		for _, k := range req.Defs.JoinKeys(p.view) {
			col := k.Name
			if alias, ok := req.JoinKeyMap[k.Name]; ok {
				col = alias
			}
			if alias, ok := req.JoinKeyMap[p.view.Name+"."+k.Name]; ok {
				col = alias
			}
			p.keys = append(p.keys, keyPair{joinKey: k.Name, entityCol: col, typ: k.Type})
		}
	}
	res.plans, res.columns = plans, columns
	return res, nil
}

// column is a named, typed column as DuckDB describes it.
type column struct {
	name, typ string
}

// TrainingSet builds the training set and returns a reader that streams it
// in input order. The caller must Release the reader; it holds a DuckDB
// connection until then.
func (e *Engine) TrainingSet(ctx context.Context, req *Request) (array.RecordReader, error) {
	q, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	return q.run(ctx)
}

// run starts the prepared query and returns its reader, which closes the
// connection when released; on-demand features are computed batch by
// batch over it.
func (q *prepared) run(ctx context.Context) (array.RecordReader, error) {
	ar, err := duckdb.NewArrowFromConn(q.conn)
	if err != nil {
		return nil, q.fail(err)
	}
	rr, err := ar.QueryContext(ctx, q.sql)
	if err != nil {
		if ctx.Err() != nil {
			return nil, q.fail(ctx.Err())
		}
		return nil, q.fail(fmt.Errorf("run training-set query: %s", duckErr(err)))
	}
	out := resultReader(rr, q.conn)
	if len(q.demands) > 0 {
		out = newDemandReader(out, q.demands)
	}
	return out, nil
}

// TrainingSetSchema returns the Arrow schema of the training set a request
// would build, without running the join.
func (e *Engine) TrainingSetSchema(ctx context.Context, req *Request) (*arrow.Schema, error) {
	q, err := e.prepare(ctx, req)
	if err != nil {
		return nil, err
	}
	defer q.close()
	ar, err := duckdb.NewArrowFromConn(q.conn)
	if err != nil {
		return nil, err
	}
	rr, err := ar.QueryContext(ctx, "SELECT * FROM ("+q.sql+") LIMIT 0")
	if err != nil {
		return nil, fmt.Errorf("describe training set: %s", duckErr(err))
	}
	defer rr.Release()
	if len(q.demands) > 0 {
		return newDemandReader(rr, q.demands).Schema(), nil
	}
	return rr.Schema(), nil
}

// WriteParquet builds the training set into a Parquet file at path,
// written to a temporary name beside it, synced, and renamed into place
// (the directory synced too), so that path holds either its old content or
// the whole new file, after a crash as well. On any failure the temporary
// file is removed. It returns the number of rows written.
func (e *Engine) WriteParquet(ctx context.Context, req *Request, path string) (n int64, err error) {
	q, err := e.prepare(ctx, req)
	if err != nil {
		return 0, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, q.fail(err)
	}
	tmp := fmt.Sprintf("%s.tmp-%d-%d", abs, os.Getpid(), tmpSeq.Add(1))
	defer func() {
		if err == nil {
			return
		}
		// Whatever failed, nothing is left behind under the temporary name
		// (after a successful rename there is nothing there to remove).
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("remove temporary file: %w", rerr))
		}
	}()
	if len(q.demands) > 0 {
		// On-demand columns are computed in Go: stream the result through
		// them into a Parquet writer.
		rr, err := q.run(ctx)
		if err != nil {
			return 0, err
		}
		defer rr.Release()
		if n, err = writeParquetFile(ctx, rr, tmp); err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("write training set to %s: %w", path, err)
		}
	} else {
		defer q.close()
		n, err = execCount(ctx, q.conn, "COPY ("+q.sql+") TO "+quoteString(tmp)+" (FORMAT parquet, COMPRESSION zstd)")
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("write training set to %s: %s", path, duckErr(err))
		}
	}
	if err := syncPath(tmp); err != nil {
		return 0, fmt.Errorf("write training set to %s: sync: %w", path, err)
	}
	if err := os.Rename(tmp, abs); err != nil {
		return 0, fmt.Errorf("write training set to %s: %w", path, err)
	}
	if err := syncPath(filepath.Dir(abs)); err != nil {
		return 0, fmt.Errorf("write training set to %s: sync directory: %w", path, err)
	}
	return n, nil
}

// tmpSeq keeps the temporary names of concurrent writes apart.
var tmpSeq atomic.Int64

// syncPath flushes a file, or a directory's entries, to stable storage.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one to report
		return err
	}
	return f.Close()
}

// prepared is a request ready to run: its connection (holding the entity
// table), the query, and the number of entity rows.
type prepared struct {
	conn    *duckdb.Conn
	sql     string
	rows    int64
	release func()
	demands []*demand
}

func (q *prepared) close() {
	if q.release != nil {
		q.release()
	}
	_ = q.conn.Close() // closing drops the temporary tables; nothing to report
}

func (q *prepared) fail(err error) error {
	q.close()
	return err
}

// prepare opens a connection, loads the entity table, checks every column
// the joins need and renders the query.
func (e *Engine) prepare(ctx context.Context, req *Request) (*prepared, error) {
	res, err := e.resolve(req)
	if err != nil {
		return nil, err
	}
	plans, outCols := res.plans, res.columns
	tsCol := req.TimestampColumn
	if tsCol == "" {
		tsCol = DefaultTimestampColumn
	}
	conn, err := e.conn(ctx)
	if err != nil {
		return nil, err
	}
	q := &prepared{conn: conn, demands: res.demands}
	if err := e.loadEntities(ctx, q, req.Entities); err != nil {
		return nil, q.fail(err)
	}
	ecols, err := describe(ctx, conn, "SELECT * FROM "+entitiesTable)
	if err != nil {
		return nil, q.fail(err)
	}
	if err := checkEntities(ecols, tsCol, plans, outCols, res.demands); err != nil {
		return nil, q.fail(err)
	}
	sources := make([]string, len(plans))
	for i, p := range plans {
		rel, err := e.sourceRelation(ctx, conn, p)
		if err != nil {
			return nil, q.fail(err)
		}
		sources[i] = rel
	}
	q.sql = trainingSetSQL(plans, sources, tsCol, res.demands)
	return q, nil
}

// loadEntities copies the entity table into a temporary table with its
// input row number.
func (e *Engine) loadEntities(ctx context.Context, q *prepared, ents Entities) error {
	given := 0
	for _, set := range []bool{ents.path != "", ents.files != nil, ents.reader != nil} {
		if set {
			given++
		}
	}
	switch {
	case given > 1:
		return invalidf("entity table: give a Parquet path, Parquet files or an Arrow stream, not several")
	case ents.path != "" || ents.files != nil:
		what, list, err := parquetList(ents)
		if err != nil {
			return err
		}
		// Row order is (file, row in file); a glob's files come in lexical
		// order, a list's as listed.
		sql := fmt.Sprintf("CREATE TEMP TABLE %s AS SELECT *, (file_index::BIGINT << 40) + file_row_number AS %s FROM read_parquet(%s)",
			entitiesTable, colRow, list)
		if _, err := execCount(ctx, q.conn, sql); err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // cancelled while loading, not a bad table
			}
			return fmt.Errorf("%w: entity table %s: %s", ErrInvalidRequest, what, duckErr(err))
		}
	case ents.reader != nil:
		for _, f := range ents.reader.Schema().Fields() {
			if strings.HasPrefix(f.Name, internalPrefix) {
				return invalidf("entity table column %q uses the reserved prefix %s", f.Name, internalPrefix)
			}
		}
		numbered := newRowNumberReader(ents.reader)
		defer numbered.Release()
		ar, err := duckdb.NewArrowFromConn(q.conn)
		if err != nil {
			return err
		}
		release, err := ar.RegisterView(numbered, "__quiver_entity_stream")
		if err != nil {
			return fmt.Errorf("entity table: %w", err)
		}
		defer release()
		sql := fmt.Sprintf("CREATE TEMP TABLE %s AS SELECT * FROM __quiver_entity_stream", entitiesTable)
		if _, err := execCount(ctx, q.conn, sql); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := numbered.Err(); err != nil {
				// The stream failed (a bad or oversized message): that is
				// the cause, not DuckDB's report of it.
				return fmt.Errorf("entity table: %w", err)
			}
			return fmt.Errorf("%w: entity table: %s", ErrInvalidRequest, duckErr(err))
		}
		if err := numbered.Err(); err != nil {
			return fmt.Errorf("entity table: %w", err)
		}
	default:
		return invalidf("no entity table (give a Parquet path or an Arrow stream)")
	}
	n, err := queryInt(ctx, q.conn, "SELECT count(*) FROM "+entitiesTable)
	if err != nil {
		return err
	}
	q.rows = n
	return nil
}

// globChars are the characters DuckDB expands in a Parquet path.
const globChars = "*?[{"

// parquetList renders the read_parquet argument of a Parquet entity table:
// a path (or glob) as given, or a list of files, none of which may hold a
// glob character (DuckDB would expand it).
func parquetList(ents Entities) (what, list string, err error) {
	if ents.path != "" {
		path, err := filepath.Abs(ents.path)
		if err != nil {
			return "", "", err
		}
		return ents.path, quoteString(path), nil
	}
	if len(ents.files) == 0 {
		return "", "", invalidf("entity table: an empty list of Parquet files")
	}
	quoted := make([]string, len(ents.files))
	for i, f := range ents.files {
		if strings.ContainsAny(f, globChars) {
			return "", "", invalidf("entity file %q: a listed file's name may not hold glob characters (%s)", f, globChars)
		}
		path, err := filepath.Abs(f)
		if err != nil {
			return "", "", err
		}
		quoted[i] = quoteString(path)
	}
	what = ents.files[0]
	if len(ents.files) > 1 {
		what = fmt.Sprintf("%s (and %d more files)", ents.files[0], len(ents.files)-1)
	}
	return what, "[" + strings.Join(quoted, ", ") + "]", nil
}

// checkEntities checks the entity table's columns against the request.
func checkEntities(cols []column, tsCol string, plans []*viewPlan, outCols []string, demands []*demand) error {
	byName := map[string]column{}
	var names []string
	for _, c := range cols {
		if c.name == colRow {
			continue
		}
		if strings.HasPrefix(c.name, internalPrefix) {
			return invalidf("entity table column %q uses the reserved prefix %s", c.name, internalPrefix)
		}
		byName[c.name] = c
		names = append(names, c.name)
	}
	ts, ok := byName[tsCol]
	switch {
	case !ok:
		return invalidf("entity table has no timestamp column %q (it has %s; name another with the timestamp column option)", tsCol, strings.Join(names, ", "))
	case !isTimestampType(ts.typ):
		return invalidf("entity table column %q is %s; the event timestamp must be a timestamp or date", tsCol, ts.typ)
	}
	for _, p := range plans {
		for _, k := range p.keys {
			c, ok := byName[k.entityCol]
			if !ok {
				return invalidf("entity table has no column %q for join key %s of view %s (map another column with the join-key map)", k.entityCol, k.joinKey, p.view.Name)
			}
			if !keyTypeOK(c.typ, k.typ) {
				return invalidf("entity table column %q is %s; join key %s of view %s is %s", k.entityCol, c.typ, k.joinKey, p.view.Name, k.typ)
			}
		}
	}
	for _, d := range demands {
		for _, f := range d.view.Request {
			c, ok := byName[f.Name]
			if !ok {
				return invalidf("entity table has no column %q for request field %s (%s) of on-demand view %s", f.Name, f.Name, f.Type, d.view.Def.Name)
			}
			if !castable(c.typ, f.Type) {
				return invalidf("entity table column %q is %s; request field %s of on-demand view %s is %s", f.Name, c.typ, f.Name, d.view.Def.Name, f.Type)
			}
		}
	}
	for _, name := range outCols {
		if _, clash := byName[name]; clash {
			return invalidf("feature %q has the name of an entity table column; rename the column or request full feature names", name)
		}
	}
	return nil
}

func keyTypeOK(have string, want registry.ValueType) bool {
	if want == registry.TypeString {
		return have == "VARCHAR"
	}
	return isIntegerType(have)
}

// sourceRelation renders the SQL relation of a view's source, projected to
// its join keys, its inputs (f0, f1, ...), its event time and ordering
// key, after checking that the source has every column with a usable type.
// For a view with features the ordering key is the struct of rule 2
// (colKey); for a view with aggregations it is the source order alone
// (colOrd), which breaks ties of last.
func (e *Engine) sourceRelation(ctx context.Context, conn *duckdb.Conn, p *viewPlan) (string, error) {
	src := p.source
	what := sourceWhat(src)
	// order is the source order of rule 2: (file, row in file) packed
	// into one integer, files in lexical order.
	var from, order string
	switch {
	case src.Kind == registry.SourceParquet:
		from = "read_parquet(" + quoteString(src.Path) + ", union_by_name = true)"
		order = "(file_index::BIGINT << 40) + file_row_number"
	case src.Kind == registry.SourceDuckDBQuery:
		from = "(" + src.Query + ")"
		order = "(row_number() OVER ())::BIGINT"
	case src.Kind.IsStream():
		// The view's offline log, read like a Parquet source: only the
		// files a manifest commits, by explicit list (a glob would see
		// files being written), in the log's source order.
		what = fmt.Sprintf("%s, offline log %s", src.Kind, filepath.ToSlash(filepath.Join(streamlog.Dir, p.view.Name)))
		files, err := streamlog.Files(e.dataRoot, p.view.Name)
		if err != nil {
			return "", fmt.Errorf("source %s (%s): %w", src.Name, what, err)
		}
		if len(files) == 0 {
			// Nothing logged yet: no rows, with the declared types.
			from, order = emptyRelation(src.Schema), "0::BIGINT"
			break
		}
		quoted := make([]string, len(files))
		for i, f := range files {
			quoted[i] = quoteString(f)
		}
		from = "read_parquet([" + strings.Join(quoted, ", ") + "], union_by_name = true)"
		order = "(file_index::BIGINT << 40) + file_row_number"
	default:
		return "", invalidf("source %s of kind %s cannot be read offline", src.Name, src.Kind)
	}
	cols, err := describe(ctx, conn, "SELECT * FROM "+from)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: source %s (%s, data root %s): %s", ErrInvalidRequest, src.Name, what, e.dataRoot, duckErr(err))
	}
	byName := map[string]column{}
	for _, c := range cols {
		byName[c.name] = c
	}
	// sourceCol finds the source column a view column comes from.
	sourceCol := func(name string) string {
		for from, to := range src.FieldMapping {
			if to == name {
				return from
			}
		}
		return name
	}
	need := func(col, role string, ok func(string) bool, want string) error {
		c, found := byName[col]
		if !found {
			return invalidf("source %s (%s) has no column %q (%s)", src.Name, what, col, role)
		}
		if !ok(c.typ) {
			return invalidf("source %s column %q is %s; %s must be %s", src.Name, col, c.typ, role, want)
		}
		return nil
	}
	var sel []string
	for _, k := range p.keys {
		col := sourceCol(k.joinKey)
		if err := need(col, "join key "+k.joinKey, func(t string) bool { return keyTypeOK(t, k.typ) }, k.typ.String()); err != nil {
			return "", err
		}
		sel = append(sel, fmt.Sprintf("%s AS %s", castTo(byName[col].typ, quoteIdent(col), k.typ), quoteIdent(k.joinKey)))
	}
	ins, _, err := p.inputs()
	if err != nil {
		return "", err
	}
	for i, in := range ins {
		col := sourceCol(in.name)
		if err := need(col, in.role, func(t string) bool { return castable(t, in.typ) }, in.typ.String()); err != nil {
			return "", err
		}
		sel = append(sel, fmt.Sprintf("%s AS f%d", castTo(byName[col].typ, quoteIdent(col), in.typ), i))
	}
	if err := need(src.TimestampField, "the timestamp field", isTimestampType, "a timestamp"); err != nil {
		return "", err
	}
	ts := castTo(byName[src.TimestampField].typ, quoteIdent(src.TimestampField), registry.TypeTimestamp)
	if p.aggregated() {
		// Rule 5 reads every event in the window; created times play no
		// part, and source order breaks ties of last.
		sel = append(sel, ts+" AS "+colTS, order+" AS "+colOrd)
		return fmt.Sprintf("SELECT %s FROM %s", strings.Join(sel, ", "), from), nil
	}
	// The ordering key of rule 2. A null event time makes the struct's
	// first field null, which sorts after every time, so the row is never
	// chosen; rows with null keys are matched to entity rows with null keys
	// by DuckDB's ASOF join and discarded in the projection (filtering them
	// here costs a third of the join's time).
	key := fmt.Sprintf("struct_pack(t := %s, o := %s)", ts, order)
	if src.CreatedTimestampField != "" {
		if err := need(src.CreatedTimestampField, "the created timestamp field", isTimestampType, "a timestamp"); err != nil {
			return "", err
		}
		created := castTo(byName[src.CreatedTimestampField].typ, quoteIdent(src.CreatedTimestampField), registry.TypeTimestamp)
		key = fmt.Sprintf("struct_pack(t := %s, c := coalesce(%s, '-infinity'::TIMESTAMP), o := %s)", ts, created, order)
	}
	sel = append(sel, ts+" AS "+colTS, key+" AS "+colKey)
	return fmt.Sprintf("SELECT %s FROM %s", strings.Join(sel, ", "), from), nil
}

// emptyRelation is a relation without rows whose columns are the declared
// fields, with their types.
func emptyRelation(fields []*registry.Field) string {
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = fmt.Sprintf("NULL::%s AS %s", duckType(f.Type), quoteIdent(f.Name))
	}
	if len(cols) == 0 {
		cols = []string{"NULL AS " + internalPrefix + "none"}
	}
	return "(SELECT " + strings.Join(cols, ", ") + " WHERE false)"
}

// castTo converts a column expression of DuckDB type have to the type that
// holds want, leaving it alone when it already is.
func castTo(have, expr string, want registry.ValueType) string {
	if have == duckType(want) {
		return expr
	}
	return fmt.Sprintf("CAST(%s AS %s)", expr, duckType(want))
}

// entityKey is the left side of the ordering comparison: the entity row's
// time with null tie-breakers, which compare greater than any value, so
// that every candidate at time T qualifies.
func entityKey(p *viewPlan, ts string) string {
	if p.source.CreatedTimestampField != "" {
		return fmt.Sprintf("struct_pack(t := %s, c := NULL::TIMESTAMP, o := NULL::BIGINT)", ts)
	}
	return fmt.Sprintf("struct_pack(t := %s, o := NULL::BIGINT)", ts)
}

func sourceWhat(s *registry.Source) string {
	if s.Kind == registry.SourceParquet {
		return s.Path
	}
	return string(s.Kind)
}

// trainingSetSQL renders the point-in-time join: one ASOF LEFT JOIN per
// view with features, the ttl bound on the chosen row; one LEFT JOIN per
// view with aggregations to its windows per entity row (windowSQL); input
// order.
func trainingSetSQL(plans []*viewPlan, sources []string, tsCol string, demands []*demand) string {
	ts := "CAST(" + quoteIdent(tsCol) + " AS TIMESTAMP)"
	var b strings.Builder
	b.WriteString("SELECT e.* EXCLUDE (" + colRow + ", " + colTS)
	for i, p := range plans {
		if !p.aggregated() {
			fmt.Fprintf(&b, ", %s%d", colKey, i)
		}
	}
	b.WriteString(")")
	for i, p := range plans {
		v := fmt.Sprintf("v%d", i)
		if p.aggregated() {
			// Entity rows the window join has no events for (or that have
			// a null key or time) get no row: count 0, the rest null.
			for j, f := range p.features {
				if p.aggs[j].Function == registry.AggCount {
					fmt.Fprintf(&b, ", coalesce(%s.a%d, 0) AS %s", v, j, quoteIdent(f.column))
				} else {
					fmt.Fprintf(&b, ", %s.a%d AS %s", v, j, quoteIdent(f.column))
				}
			}
			continue
		}
		// A match counts only for an entity row with a time and non-null
		// keys (DuckDB matches null keys to each other), within the ttl.
		conds := []string{"e." + colTS + " IS NOT NULL"}
		for _, k := range p.keys {
			conds = append(conds, "e."+quoteIdent(k.entityCol)+" IS NOT NULL")
		}
		if ttl := p.view.TTL.Std(); ttl > 0 {
			conds = append(conds, fmt.Sprintf("%s.%s >= e.%s - to_microseconds(%d)", v, colTS, colTS, ttl.Microseconds()))
		}
		cond := strings.Join(conds, " AND ")
		for j, f := range p.features {
			fmt.Fprintf(&b, ", CASE WHEN %s THEN %s.f%d END AS %s", cond, v, j, quoteIdent(f.column))
		}
	}
	for _, d := range demands {
		for j, f := range d.view.Request {
			fmt.Fprintf(&b, ", CAST(e.%s AS %s) AS %s", quoteIdent(d.reqFrom[j]), duckType(f.Type), quoteIdent(d.reqCols[j]))
		}
	}
	fmt.Fprintf(&b, " FROM (SELECT *, %s AS %s", ts, colTS)
	for i, p := range plans {
		if !p.aggregated() {
			fmt.Fprintf(&b, ", %s AS %s%d", entityKey(p, ts), colKey, i)
		}
	}
	fmt.Fprintf(&b, " FROM %s) AS e", entitiesTable)
	for i, p := range plans {
		v := fmt.Sprintf("v%d", i)
		if p.aggregated() {
			fmt.Fprintf(&b, " LEFT JOIN (%s) AS %s ON %s.%s = e.%s", windowSQL(p, sources[i], ts), v, v, colRow, colRow)
			continue
		}
		fmt.Fprintf(&b, " ASOF LEFT JOIN (%s) AS %s ON ", sources[i], v)
		for _, k := range p.keys {
			fmt.Fprintf(&b, "e.%s = %s.%s AND ", quoteIdent(k.entityCol), v, quoteIdent(k.joinKey))
		}
		fmt.Fprintf(&b, "e.%s%d >= %s.%s", colKey, i, v, colKey)
	}
	b.WriteString(" ORDER BY e." + colRow)
	return b.String()
}

// describe returns the columns a query would produce.
func describe(ctx context.Context, conn *duckdb.Conn, query string) ([]column, error) {
	rows, err := conn.QueryContext(ctx, "DESCRIBE "+query, nil)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []column
	vals := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(vals); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		out = append(out, column{name: fmt.Sprint(vals[0]), typ: fmt.Sprint(vals[1])})
	}
}

func queryInt(ctx context.Context, conn *duckdb.Conn, query string) (int64, error) {
	rows, err := conn.QueryContext(ctx, query, nil)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	vals := make([]driver.Value, 1)
	if err := rows.Next(vals); err != nil {
		return 0, err
	}
	switch v := vals[0].(type) {
	case int64:
		return v, nil
	case int32:
		return int64(v), nil
	}
	return 0, fmt.Errorf("%s: unexpected %T", query, vals[0])
}

// execCount runs a statement and returns the number of rows it affected.
func execCount(ctx context.Context, conn *duckdb.Conn, query string) (int64, error) {
	res, err := conn.ExecContext(ctx, query, nil)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// duckErr shortens DuckDB's multi-line errors to their first line.
func duckErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// resultReader wraps a query's reader so that its last Release closes the
// request's connection (which drops the temporary tables).
func resultReader(rr array.RecordReader, conn *duckdb.Conn) array.RecordReader {
	return refreader.New(rr, conn.Close)
}

// rowNumberReader appends the input row number to every batch.
type rowNumberReader struct {
	in     array.RecordReader
	schema *arrow.Schema
	next   int64
	cur    arrow.RecordBatch
	refs   int64
}

func newRowNumberReader(in array.RecordReader) *rowNumberReader {
	fields := append(append([]arrow.Field{}, in.Schema().Fields()...), arrow.Field{Name: colRow, Type: arrow.PrimitiveTypes.Int64})
	md := in.Schema().Metadata()
	return &rowNumberReader{in: in, schema: arrow.NewSchema(fields, &md), refs: 1}
}

func (r *rowNumberReader) Schema() *arrow.Schema { return r.schema }
func (r *rowNumberReader) Retain()               { atomic.AddInt64(&r.refs, 1) }
func (r *rowNumberReader) Release() {
	if atomic.AddInt64(&r.refs, -1) == 0 && r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}
func (r *rowNumberReader) Err() error                     { return r.in.Err() }
func (r *rowNumberReader) Record() arrow.RecordBatch      { return r.cur }
func (r *rowNumberReader) RecordBatch() arrow.RecordBatch { return r.cur }

func (r *rowNumberReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if !r.in.Next() {
		return false
	}
	rec := r.in.RecordBatch()
	n := int(rec.NumRows())
	b := array.NewInt64Builder(memory.DefaultAllocator)
	defer b.Release()
	b.Reserve(n)
	for i := range n {
		b.UnsafeAppend(r.next + int64(i))
	}
	r.next += int64(n)
	rowCol := b.NewArray()
	defer rowCol.Release()
	cols := append(append([]arrow.Array{}, rec.Columns()...), rowCol)
	r.cur = array.NewRecordBatch(r.schema, cols, int64(n))
	return true
}

// Explain returns the training set's SQL and DuckDB's plan for it; with
// analyze, the plan is run and annotated with timings.
func (e *Engine) Explain(ctx context.Context, req *Request, analyze bool) (string, error) {
	q, err := e.prepare(ctx, req)
	if err != nil {
		return "", err
	}
	defer q.close()
	stmt := "EXPLAIN "
	if analyze {
		stmt = "EXPLAIN ANALYZE "
	}
	rows, err := q.conn.QueryContext(ctx, stmt+q.sql, nil)
	if err != nil {
		return "", fmt.Errorf("explain: %s", duckErr(err))
	}
	defer rows.Close()
	var b strings.Builder
	b.WriteString(q.sql + "\n\n")
	vals := make([]driver.Value, len(rows.Columns()))
	for {
		if err := rows.Next(vals); err != nil {
			if errors.Is(err, io.EOF) {
				return b.String(), nil
			}
			return "", err
		}
		b.WriteString(fmt.Sprint(vals[len(vals)-1]) + "\n")
	}
}
