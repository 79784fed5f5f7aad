package materialize

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/quiverdata/quiver/value"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/streamlog"
)

// VerifyOptions say what to verify.
type VerifyOptions struct {
	Defs    *registry.Definitions
	Offline *offline.Engine
	Online  online.Store
	// DataRoot is the data root the stream views' offline logs are
	// below: a local directory or an s3:// URI.
	DataRoot string
	// Store opens the bucket of an s3:// data root (required for one;
	// unused for a local data root).
	Store *storage.Store
	// Views to check (default: every online stream view).
	Views []string
	// Sample is the number of entities per view (default 1,000; every
	// entity when the log holds fewer).
	Sample int
	// Seed makes the sample reproducible (default 1).
	Seed uint64
	// FloatTolerance is the relative difference under which two sums or
	// averages of float columns are equal (default 1e-9): the online
	// store adds tile by tile, the join event by event.
	FloatTolerance float64
}

// VerifyReport is the outcome for every feature checked.
type VerifyReport struct {
	Views []ViewReport
}

// ViewReport is one view's outcome.
type ViewReport struct {
	View     string
	At       time.Time // the watermark the view was compared at
	Entities int       // sampled entities
	Features []FeatureReport
}

// FeatureReport counts, over the sampled entities: equal values, values
// that differ (Mismatch), values the training set has and the online
// store lacks (Missing), and values the online store has and the training
// set lacks (Extra). Example holds the first difference.
type FeatureReport struct {
	Feature                         string
	Equal, Mismatch, Missing, Extra int
	Example                         string
}

// OK reports whether every sampled value agreed.
func (r *VerifyReport) OK() bool {
	for _, v := range r.Views {
		for _, f := range v.Features {
			if f.Mismatch+f.Missing+f.Extra > 0 {
				return false
			}
		}
	}
	return true
}

// Verify checks the consistency contract for each stream view: once the
// materializer has caught up to time T, every entity's online value
// equals the point-in-time join at T. T is the view's watermark, the
// greatest event time in its committed offline log. Verify samples
// entities from the log, reads them online as of T (ttl and windows
// measured at T), builds the training set at T and compares the two
// feature by feature. It is meaningful when the materializer is caught up
// and idle (or stopped): events applied online but not yet logged show as
// differences.
func Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	if opts.Sample <= 0 {
		opts.Sample = 1000
	}
	if opts.Seed == 0 {
		opts.Seed = 1
	}
	if opts.FloatTolerance <= 0 {
		opts.FloatTolerance = 1e-9
	}
	views := opts.Views
	if len(views) == 0 {
		for _, v := range opts.Defs.FeatureViews {
			if src := opts.Defs.Source(v.Source); src != nil && src.Kind.IsStream() && v.IsOnline() {
				views = append(views, v.Name)
			}
		}
	}
	rep := &VerifyReport{}
	for _, name := range views {
		v := opts.Defs.FeatureView(name)
		if v == nil {
			return nil, fmt.Errorf("no feature view %q", name)
		}
		src := opts.Defs.Source(v.Source)
		if !src.Kind.IsStream() {
			return nil, fmt.Errorf("view %s reads batch source %s; verify checks stream views, whose watermark is their offline log's", v.Name, src.Name)
		}
		vr, err := verifyView(ctx, opts, v, src)
		if err != nil {
			return nil, fmt.Errorf("view %s: %w", v.Name, err)
		}
		rep.Views = append(rep.Views, *vr)
	}
	return rep, nil
}

func verifyView(ctx context.Context, opts VerifyOptions, v *registry.FeatureView, src *registry.Source) (*ViewReport, error) {
	ms, err := streamlog.ReadManifests(ctx, opts.Store, opts.DataRoot, v.Name)
	if err != nil {
		return nil, err
	}
	vr := &ViewReport{View: v.Name}
	for _, m := range ms {
		for _, f := range m.Files {
			if f.MaxTime.After(vr.At) {
				vr.At = f.MaxTime
			}
		}
	}
	files, err := logFiles(ctx, opts, v.Name)
	if err != nil {
		return nil, err
	}
	keys := opts.Defs.JoinKeys(v)
	entities, err := sampleEntities(ctx, files, src, keys, opts.Sample, opts.Seed)
	if err != nil {
		return nil, err
	}
	vr.Entities = len(entities)
	feats := v.OutputFeatures()
	for _, f := range feats {
		vr.Features = append(vr.Features, FeatureReport{Feature: f.Name})
	}
	if len(entities) == 0 {
		return vr, nil
	}
	// Online, as of the watermark.
	at := vr.At
	lookup := online.NewLookup(opts.Online, online.LookupOptions{Now: func() time.Time { return at }})
	cols := map[string][]any{}
	for k, key := range keys {
		for _, e := range entities {
			cols[key.Name] = append(cols[key.Name], e[k])
		}
	}
	resp, err := lookup.Get(ctx, opts.Defs, &online.Request{Entities: cols, Features: []string{v.Name + ":*"}})
	if err != nil {
		return nil, fmt.Errorf("online lookup: %w", err)
	}
	// Offline, the training set at the watermark.
	table, err := verifyEntities(keys, entities, at)
	if err != nil {
		return nil, err
	}
	rr, err := opts.Offline.TrainingSet(ctx, &offline.Request{Defs: opts.Defs, Entities: offline.EntitiesFromArrow(table), Features: []string{v.Name + ":*"}})
	table.Release()
	if err != nil {
		return nil, fmt.Errorf("training set: %w", err)
	}
	defer rr.Release()
	floats := map[string]bool{}
	for _, a := range v.Aggregations {
		if a.Function == registry.AggSum || a.Function == registry.AggAvg {
			floats[a.Name] = a.Type.Elem == registry.Float64
		}
	}
	row := 0
	for rr.Next() {
		rec := rr.RecordBatch()
		for i := range int(rec.NumRows()) {
			for fi, f := range feats {
				col := rec.Column(rec.Schema().FieldIndices(f.Name)[0])
				want, err := value.FromArrow(col, i)
				if err != nil {
					return nil, fmt.Errorf("training set row %d: feature %s: %w", row, f.Name, err)
				}
				fv := &resp.Features[fi]
				got := fv.Value(row)
				if fv.Statuses[row] == online.NotFound || fv.Statuses[row] == online.OutsideMaxAge {
					got = nil
				}
				compare(&vr.Features[fi], want, got, fv.Statuses[row], floats[f.Name], opts.FloatTolerance, entities[row])
			}
			row++
		}
	}
	if err := rr.Err(); err != nil {
		return nil, fmt.Errorf("training set: %w", err)
	}
	return vr, nil
}

func compare(fr *FeatureReport, want, got any, status online.Status, float bool, tol float64, entity []any) {
	example := func(kind string) {
		if fr.Example == "" {
			fr.Example = fmt.Sprintf("%s for entity %v: training set %v, online %v (%s)", kind, entity, want, got, status)
		}
	}
	switch {
	case want == nil && got == nil:
		fr.Equal++
	case want == nil:
		fr.Extra++
		example("extra")
	case got == nil && status == online.NotFound:
		fr.Missing++
		example("missing")
	case equal(want, got, float, tol):
		fr.Equal++
	default:
		fr.Mismatch++
		example("mismatch")
	}
}

func equal(want, got any, float bool, tol float64) bool {
	if float {
		w, ok1 := want.(float64)
		g, ok2 := got.(float64)
		if ok1 && ok2 {
			return w == g || math.Abs(w-g) <= tol*math.Max(math.Abs(w), math.Abs(g))
		}
	}
	if wt, ok := want.(time.Time); ok {
		gt, ok := got.(time.Time)
		return ok && wt.Equal(gt)
	}
	return reflect.DeepEqual(normalize(want), normalize(got))
}

// normalize turns lists into []any, so the two sides' list types compare.
func normalize(v any) any {
	rv := reflect.ValueOf(v)
	if v == nil || rv.Kind() != reflect.Slice || rv.Type().Elem().Kind() == reflect.Uint8 {
		return v
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = normalize(rv.Index(i).Interface())
	}
	return out
}

// logFile is one committed Parquet file of a view's offline log: a local
// file or an object, read where it is.
type logFile struct {
	name string // its path or URI, for messages
	open func(ctx context.Context) (logReader, error)
}

// logReader reads one log file; *os.File and storage.Object are both.
type logReader interface {
	io.ReaderAt
	io.ReadSeeker
	io.Closer
}

// logFiles lists the committed files of a view's offline log, in the
// log's source order: the files the manifests name below a local data
// root, the objects they name below an s3:// one.
func logFiles(ctx context.Context, opts VerifyOptions, view string) ([]logFile, error) {
	if !strings.HasPrefix(strings.ToLower(opts.DataRoot), storage.SchemeS3+"://") {
		paths, err := streamlog.Files(opts.DataRoot, view)
		if err != nil {
			return nil, err
		}
		out := make([]logFile, len(paths))
		for i, p := range paths {
			out[i] = logFile{name: p, open: func(context.Context) (logReader, error) { return os.Open(p) }}
		}
		return out, nil
	}
	b, objs, err := streamlog.Objects(ctx, opts.Store, opts.DataRoot, view)
	if err != nil {
		return nil, err
	}
	out := make([]logFile, len(objs))
	for i, o := range objs {
		out[i] = logFile{name: b.URI(o.Key), open: func(ctx context.Context) (logReader, error) { return b.Open(ctx, o.Key) }}
	}
	return out, nil
}

// sampleEntities reads the distinct join-key values of the log and picks
// up to n of them.
func sampleEntities(ctx context.Context, files []logFile, src *registry.Source, keys []*registry.Field, n int, seed uint64) ([][]any, error) {
	cols := make([]string, len(keys))
	for i, k := range keys {
		cols[i] = k.Name
		for from, to := range src.FieldMapping {
			if to == k.Name {
				cols[i] = from
			}
		}
	}
	seen := map[string][]any{}
	for _, f := range files {
		if err := readKeys(ctx, f, cols, seen); err != nil {
			return nil, err
		}
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	r := rand.New(rand.NewPCG(seed, 0))
	r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	ids = ids[:min(n, len(ids))]
	slices.Sort(ids)
	out := make([][]any, len(ids))
	for i, id := range ids {
		out[i] = seen[id]
	}
	return out, nil
}

// readKeys adds the distinct non-null values of cols in f to seen. It
// reads only those columns.
func readKeys(ctx context.Context, f logFile, cols []string, seen map[string][]any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path := f.name
	r, err := f.open(ctx)
	if err != nil {
		return err // it names the file
	}
	pf, err := file.NewParquetReader(r)
	if err != nil {
		_ = r.Close() // the read error is the one to report
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	schema, err := fr.Schema()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	leaves := make([]int, len(cols))
	for i, c := range cols {
		found := schema.FieldIndices(c)
		if len(found) == 0 {
			return fmt.Errorf("%s has no column %s", path, c)
		}
		if sf := fr.Manifest.Fields[found[0]]; sf.IsLeaf() {
			leaves[i] = sf.ColIndex
		} else {
			return fmt.Errorf("%s: join key column %s is not a plain column", path, c)
		}
	}
	groups := make([]int, pf.NumRowGroups())
	for i := range groups {
		groups[i] = i
	}
	tbl, err := fr.ReadRowGroups(ctx, leaves, groups)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer tbl.Release()
	idx := make([]int, len(cols))
	for i, c := range cols {
		found := tbl.Schema().FieldIndices(c)
		if len(found) == 0 {
			return fmt.Errorf("read %s: no column %s", path, c)
		}
		idx[i] = found[0]
	}
	tr := array.NewTableReader(tbl, 64<<10)
	defer tr.Release()
	var b strings.Builder
	for tr.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec := tr.RecordBatch()
		for i := range int(rec.NumRows()) {
			vals := make([]any, len(idx))
			b.Reset()
			null := false
			for k, c := range idx {
				if vals[k], err = value.FromArrow(rec.Column(c), i); err != nil {
					return fmt.Errorf("read %s: column %s: %w", path, cols[k], err)
				}
				null = null || vals[k] == nil
				fmt.Fprintf(&b, "%v\x00", vals[k])
			}
			if !null {
				if _, ok := seen[b.String()]; !ok {
					seen[b.String()] = vals
				}
			}
		}
	}
	return tr.Err()
}

// verifyEntities is the sampled entities at time at, as an Arrow stream.
func verifyEntities(keys []*registry.Field, entities [][]any, at time.Time) (array.RecordReader, error) {
	fields := make([]arrow.Field, 0, len(keys)+1)
	for _, k := range keys {
		t := arrow.DataType(arrow.PrimitiveTypes.Int64)
		if k.Type == registry.TypeString {
			t = arrow.BinaryTypes.String
		}
		fields = append(fields, arrow.Field{Name: k.Name, Type: t})
	}
	fields = append(fields, arrow.Field{Name: offline.DefaultTimestampColumn, Type: &arrow.TimestampType{Unit: arrow.Microsecond}})
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for _, e := range entities {
		for k := range keys {
			switch v := e[k].(type) {
			case int64:
				b.Field(k).(*array.Int64Builder).Append(v)
			case string:
				b.Field(k).(*array.StringBuilder).Append(v)
			default:
				return nil, fmt.Errorf("join key %s holds %T", keys[k].Name, v)
			}
		}
		b.Field(len(keys)).(*array.TimestampBuilder).Append(arrow.Timestamp(at.UnixMicro()))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	return array.NewRecordReader(schema, []arrow.RecordBatch{rec})
}
