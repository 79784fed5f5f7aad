package materialize

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"golang.org/x/sync/errgroup"

	"github.com/quiverdata/quiver/internal/arrowconv"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
)

// Options tune a batch run.
type Options struct {
	// Views limits the run to these views (default: every online view
	// over a batch source).
	Views []string
	// ChunkRows is how many rows go to the online store per write
	// (default 5,000); memory stays bounded by it.
	ChunkRows int
	// Progress, when set, is called after each chunk with the view and
	// the rows written so far.
	Progress func(view string, rows int64)
}

// Result reports one view's run.
type Result struct {
	View       string
	Start, End time.Time // Start is zero for an unbounded start
	Rows       int64     // entities read from the offline store
	Written    int64     // rows stored online
	Skipped    int64     // rows older than what the online store holds
	Took       time.Duration
}

// Materializer moves rows from an offline engine to an online store.
type Materializer struct {
	Offline *offline.Engine
	Online  online.Store
	Now     func() time.Time // default time.Now
}

// Run materializes each view's latest rows with event times in
// [start, end].
func (m *Materializer) Run(ctx context.Context, defs *registry.Definitions, start, end time.Time, opts Options) ([]Result, error) {
	views, err := batchViews(defs, opts.Views)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, v := range views {
		res, err := m.view(ctx, defs, v, start, end, opts)
		if err != nil {
			return out, err
		}
		out = append(out, res)
	}
	return out, nil
}

// Incremental materializes each view from its watermark (the end of its
// previous run; unbounded the first time) to end, then moves the
// watermark to end. Rows that arrive in the offline store with event times
// before a view's watermark are not picked up by later incremental runs;
// run Run over their range for that.
func (m *Materializer) Incremental(ctx context.Context, defs *registry.Definitions, end time.Time, opts Options) ([]Result, error) {
	views, err := batchViews(defs, opts.Views)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, v := range views {
		wm, err := Watermark(ctx, m.Online, defs.Project, v.Name)
		if err != nil {
			return out, err
		}
		start := time.Time{}
		if !wm.IsZero() {
			if !end.After(wm) {
				out = append(out, Result{View: v.Name, Start: wm, End: end})
				continue
			}
			start = wm.Add(time.Microsecond) // (watermark, end]
		}
		res, err := m.view(ctx, defs, v, start, end, opts)
		if err != nil {
			return out, err
		}
		if err := m.Online.SetMeta(ctx, defs.Project, watermarkName(v.Name), []byte(end.UTC().Format(time.RFC3339Nano))); err != nil {
			return out, fmt.Errorf("save watermark of %s: %w", v.Name, err)
		}
		out = append(out, res)
	}
	return out, nil
}

func watermarkName(view string) string { return "watermark:" + view }

// Watermark returns the end of a view's last incremental run, or zero.
func Watermark(ctx context.Context, store online.Store, project, view string) (time.Time, error) {
	b, err := store.GetMeta(ctx, project, watermarkName(view))
	if err != nil || b == nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return time.Time{}, fmt.Errorf("watermark of %s is %q: %w", view, b, err)
	}
	return t, nil
}

// batchViews returns the named views, or every online view over a batch
// source, checking that each can be materialized in batch.
func batchViews(defs *registry.Definitions, names []string) ([]*registry.FeatureView, error) {
	if len(names) == 0 {
		var out []*registry.FeatureView
		for _, v := range defs.FeatureViews {
			if v.IsOnline() && !defs.Source(v.Source).Kind.IsStream() {
				out = append(out, v)
			}
		}
		return out, nil
	}
	var out []*registry.FeatureView
	for _, n := range names {
		v := defs.FeatureView(n)
		switch {
		case v == nil:
			return nil, fmt.Errorf("%w: unknown feature view %q", offline.ErrInvalidRequest, n)
		case !v.IsOnline():
			return nil, fmt.Errorf("%w: view %s is offline only (online: false)", offline.ErrInvalidRequest, n)
		case defs.Source(v.Source).Kind.IsStream():
			return nil, fmt.Errorf("%w: view %s reads a stream source; quiver stream materializes it", offline.ErrInvalidRequest, n)
		}
		out = append(out, v)
	}
	return out, nil
}

func (m *Materializer) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Materializer) view(ctx context.Context, defs *registry.Definitions, v *registry.FeatureView, start, end time.Time, opts Options) (res Result, err error) {
	began := m.now()
	res = Result{View: v.Name, Start: start, End: end}
	chunk := opts.ChunkRows
	if chunk <= 0 {
		chunk = 5000
	}
	// The writers run in a group whose context the query runs under: the
	// first write error cancels the query and the reading, so nothing more
	// is read or encoded once a chunk could not be written.
	g, ctx := errgroup.WithContext(ctx)
	rr, err := m.Offline.Latest(ctx, &offline.LatestRequest{Defs: defs, View: v.Name, Start: start, End: end})
	if err != nil {
		_ = g.Wait() // nothing runs yet; this releases the group's context
		return res, err
	}
	defer rr.Release()
	codec := online.NewCodec(v)
	var keyTypes []registry.ValueType
	var keyNames []string
	for _, k := range defs.JoinKeys(v) {
		keyTypes = append(keyTypes, k.Type)
		keyNames = append(keyNames, k.Name)
	}
	featNames := codec.Names()
	nKeys, nFeats := len(keyTypes), len(featNames)

	// Reading and encoding (DuckDB, CPU) overlap with writing (the online
	// store, I/O), and two writers keep two pipelines in flight: Latest
	// yields one row per entity, so chunks never share a key and their
	// order does not matter. At most four chunks are in memory.
	// The reading runs here, outside the group: a read error ends the
	// chunks, and what was sent is still written, as the writers' context
	// is only cancelled by a write error.
	const writers = 2
	chunks := make(chan []online.Row, 1)
	var mu sync.Mutex // guards res's counters and Progress
	for range writers {
		g.Go(func() error {
			for rows := range chunks {
				w, err := m.Online.Write(ctx, rows, online.WriteOptions{})
				if err != nil {
					return fmt.Errorf("write %s online: %w", v.Name, err)
				}
				mu.Lock()
				res.Written += int64(w.Written)
				res.Skipped += int64(w.Skipped)
				if opts.Progress != nil {
					opts.Progress(v.Name, res.Written+res.Skipped)
				}
				mu.Unlock()
			}
			return nil
		})
	}
	var read int64 // rows read from the offline store
	send := func(rows []online.Row) error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		select {
		case chunks <- rows:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	readErr := func() error {
		defer close(chunks)
		rows := make([]online.Row, 0, chunk)
		keyVals := make([]any, nKeys)
		featVals := make([]any, nFeats)
		for rr.Next() {
			rec := rr.RecordBatch()
			tsCol, ok := rec.Column(nKeys + nFeats).(*array.Timestamp)
			if !ok {
				return fmt.Errorf("latest rows of %s: event time column is %s", v.Name, rec.Column(nKeys+nFeats).DataType())
			}
			unit := tsCol.DataType().(*arrow.TimestampType).Unit
			for i := 0; i < int(rec.NumRows()); i++ {
				row := read
				read++
				var err error
				for k := range nKeys {
					if keyVals[k], err = arrowconv.Value(rec.Column(k), i); err != nil {
						return fmt.Errorf("%s row %d: join key %s: %w", v.Name, row, keyNames[k], err)
					}
				}
				for f := range nFeats {
					if featVals[f], err = arrowconv.Value(rec.Column(nKeys+f), i); err != nil {
						return fmt.Errorf("%s row %d (entity %v): feature %s: %w", v.Name, row, keyVals, featNames[f], err)
					}
					if err := checkTimes(featVals[f]); err != nil {
						return fmt.Errorf("%s row %d (entity %v): feature %s: %w", v.Name, row, keyVals, featNames[f], err)
					}
				}
				at := tsCol.Value(i).ToTime(unit)
				if err := registry.CheckTime(at); err != nil {
					return fmt.Errorf("%s row %d (entity %v): event time: %w", v.Name, row, keyVals, err)
				}
				ent, err := online.EncodeEntity(keyTypes, keyVals)
				if err != nil {
					return fmt.Errorf("%s row %d: %w", v.Name, row, err)
				}
				val, err := codec.Encode(nil, at, featVals)
				if err != nil {
					return fmt.Errorf("%s row %d (entity %v): %w", v.Name, row, keyVals, err)
				}
				rows = append(rows, online.Row{Key: online.Key{Project: defs.Project, View: v.Name, Entity: ent}, Value: val})
				if len(rows) == chunk {
					if err := send(rows); err != nil {
						return err
					}
					rows = make([]online.Row, 0, chunk)
				}
			}
		}
		if err := rr.Err(); err != nil {
			return fmt.Errorf("read latest rows of %s: %w", v.Name, err)
		}
		if len(rows) > 0 {
			return send(rows)
		}
		return nil
	}()
	werr := g.Wait()
	res.Rows = read
	if werr != nil {
		return res, werr // the first write error, which stopped the reading
	}
	if readErr != nil {
		return res, readErr
	}
	res.Took = m.now().Sub(began)
	return res, nil
}

// checkTimes checks the times in a feature value (a timestamp, or a list
// of them) against the valid range.
func checkTimes(v any) error {
	switch x := v.(type) {
	case time.Time:
		return registry.CheckTime(x)
	case []any:
		for j, e := range x {
			if t, ok := e.(time.Time); ok {
				if err := registry.CheckTime(t); err != nil {
					return fmt.Errorf("element %d: %w", j, err)
				}
			}
		}
	}
	return nil
}
