package offline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/quiverdata/quiver/internal/objcache"
	"github.com/quiverdata/quiver/internal/pqslice"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
)

// A source on object storage is staged as slices where that pays: a
// view reads only its join keys, times and features, and a training set
// only the rows at or before its latest entity time (and, with a ttl or
// windows, not long before its earliest). Before copying an object, the
// engine reads its Parquet footer (one ranged GET, kept in memory), keeps
// the columns the view reads and the row groups whose event-time
// statistics overlap the bounds, and copies just those column chunks
// into a Parquet file of their own (internal/pqslice), which DuckDB reads
// as it reads any local file. Row groups outside the bounds hold no row
// the join can choose, so dropping them changes no result; the order of
// the rows kept is unchanged, so the source order of rule 2 still holds.
// An object whose slice would copy most of it anyway, one that cannot be
// sliced (an encrypted footer), and one whose whole copy is already
// cached is staged whole.

// sliceMaxCover: a slice that would copy more than this share of an
// object's bytes is not made; the whole object is copied, which serves
// every later projection too.
const sliceMaxCover = 0.75

// projection is what a request reads of a source's objects.
type projection struct {
	// cols are the top-level columns read (matched case-insensitively).
	cols []string
	// tsCol is the event-time column whose statistics bound the row
	// groups kept: only those with events in [lo, hi] (microseconds
	// since the epoch). Empty: every row group.
	tsCol  string
	lo, hi int64
}

// timeBounds are the least and greatest entity-row times of a request, in
// microseconds since the epoch; ok is false when the entity table has
// no time at all.
type timeBounds struct {
	lo, hi int64
	ok     bool
}

// viewProjection returns what plan p reads of its source's objects,
// given the entity rows' time bounds (nil: no bound, as for latest).
func viewProjection(p *viewPlan, bounds *timeBounds) (*projection, error) {
	src := p.source
	sourceCol := func(name string) string {
		for from, to := range src.FieldMapping {
			if to == name {
				return from
			}
		}
		return name
	}
	proj := &projection{}
	add := func(c string) {
		if c != "" && !slices.ContainsFunc(proj.cols, func(h string) bool { return strings.EqualFold(h, c) }) {
			proj.cols = append(proj.cols, c)
		}
	}
	for _, k := range p.keys {
		add(sourceCol(k.joinKey))
	}
	ins, _, err := p.inputs()
	if err != nil {
		return nil, err
	}
	for _, in := range ins {
		add(sourceCol(in.name))
	}
	add(src.TimestampField)
	add(src.CreatedTimestampField)
	if bounds == nil || !bounds.ok {
		return proj, nil
	}
	// No row after the latest entity time is ever chosen (rules 1 and 5);
	// none before the earliest, less the ttl or the longest window, is
	// in range of any entity row.
	proj.tsCol, proj.lo, proj.hi = src.TimestampField, math.MinInt64, bounds.hi
	var reach int64
	if p.aggregated() {
		for _, a := range p.aggs {
			reach = max(reach, a.Window.Std().Microseconds())
		}
	} else if ttl := p.view.TTL.Std(); ttl > 0 {
		reach = ttl.Microseconds()
	}
	if reach > 0 && bounds.lo > math.MinInt64+reach {
		proj.lo = bounds.lo - reach
	}
	return proj, nil
}

// sourceProjections returns, by source name, what all of plans read of
// each source: the union of their columns, and of their row-group bounds
// (the views over one source share its staged copies).
func sourceProjections(plans []*viewPlan, bounds *timeBounds) (map[string]*projection, error) {
	out := map[string]*projection{}
	for _, p := range plans {
		proj, err := viewProjection(p, bounds)
		if err != nil {
			return nil, err
		}
		have, ok := out[p.source.Name]
		if !ok {
			out[p.source.Name] = proj
			continue
		}
		for _, c := range proj.cols {
			if !slices.ContainsFunc(have.cols, func(h string) bool { return strings.EqualFold(h, c) }) {
				have.cols = append(have.cols, c)
			}
		}
		if have.tsCol == "" || proj.tsCol == "" {
			have.tsCol = ""
		}
		have.lo, have.hi = min(have.lo, proj.lo), max(have.hi, proj.hi)
	}
	return out, nil
}

// keep returns the row-group filter of proj over footer f, and whether it
// drops any row group.
func (proj *projection) keep(f *pqslice.Footer) (func(int) bool, bool) {
	if proj.tsCol == "" {
		return nil, false
	}
	kept := make([]bool, f.RowGroups())
	dropped := false
	for i := range kept {
		lo, hi, ok := f.TimeRange(i, proj.tsCol)
		kept[i] = !ok || (hi >= proj.lo && lo <= proj.hi)
		dropped = dropped || !kept[i]
	}
	return func(i int) bool { return kept[i] }, dropped
}

// fetchOne returns a held copy of object o for proj: a slice of it where
// that pays, else the whole object.
func (e *Engine) fetchOne(ctx context.Context, cache *objcache.Cache, b storage.Bucket, o storage.ObjectInfo, proj *projection) (*objcache.Entry, error) {
	if proj == nil || e.opts.Cache.WholeObjects || cache.Has(b, o) {
		return cache.Fetch(ctx, b, o)
	}
	f, tail, obj, err := e.footer(ctx, b, o)
	if obj != nil {
		defer obj.Close()
	}
	// whole copies the object whole, from the object and tail the footer
	// read opened and read, when it did.
	whole := func() (*objcache.Entry, error) {
		if obj == nil {
			return cache.Fetch(ctx, b, o)
		}
		return cache.FetchFunc(ctx, objcache.Name(b, o), o.Size, b.URI(o.Key), func(ctx context.Context, w *os.File) error {
			return objcache.Copy(w, obj, tail)
		})
	}
	switch {
	case errors.Is(err, objcache.ErrChanged) || ctx.Err() != nil:
		return nil, err
	case err != nil:
		// Not a Parquet file a slice can be made of: copied whole, DuckDB
		// says what is wrong with it.
		return whole()
	}
	keep, pruned := proj.keep(f)
	s, err := f.Plan(proj.cols, keep)
	if err != nil || (s.Cover > sliceMaxCover && !pruned) {
		return whole()
	}
	// The slice's name: the object's version, the columns and the row
	// groups kept.
	cols := make([]string, len(proj.cols))
	for i, c := range proj.cols {
		cols[i] = strings.ToLower(c)
	}
	slices.Sort(cols)
	var rgs strings.Builder
	for i := range f.RowGroups() {
		if keep == nil || keep(i) {
			fmt.Fprintf(&rgs, "%d,", i)
		}
	}
	name := objcache.DerivedName(b, o, "slice\x00"+strings.Join(cols, "\x00")+"\x00"+rgs.String())
	return cache.FetchFunc(ctx, name, s.Size, b.URI(o.Key)+" (a slice)", func(ctx context.Context, w *os.File) error {
		src := obj
		if src == nil {
			// The footer came from memory: open the object for its chunks.
			opened, err := b.Open(ctx, o.Key)
			if err != nil {
				return err
			}
			defer opened.Close()
			if err := objcache.Check(b, o, opened.Info()); err != nil {
				return err
			}
			src = opened
		}
		e.slices.Add(1)
		return s.Write(ctx, w, src, sliceConcurrency)
	})
}

// sliceConcurrency is how many reads of one object a slice makes at once.
const sliceConcurrency = 4

// footer returns the parsed Parquet footer of object o, from memory or
// by one ranged GET of its end (two when the footer is larger than
// pqslice.TailSize). It returns the object it opened for that and the
// bytes of its end it read, if any, for the caller to read the slice or
// the rest of the object from, and close.
func (e *Engine) footer(ctx context.Context, b storage.Bucket, o storage.ObjectInfo) (f *pqslice.Footer, tail []byte, obj storage.Object, err error) {
	key := objcache.Name(b, o)
	if f := e.footers.get(key); f != nil {
		return f, nil, nil, nil
	}
	if obj, err = b.Open(ctx, o.Key); err != nil {
		return nil, nil, nil, err
	}
	if err := objcache.Check(b, o, obj.Info()); err != nil {
		return nil, nil, obj, err
	}
	if tail, err = readEnd(obj, min(o.Size, pqslice.TailSize)); err != nil {
		return nil, nil, obj, err
	}
	n, err := pqslice.MetadataLength(tail, o.Size)
	if err != nil {
		return nil, tail, obj, err
	}
	if n > int64(len(tail)) {
		if n > maxFooterBytes {
			return nil, tail, obj, fmt.Errorf("%s: a %d-byte Parquet footer", b.URI(o.Key), n)
		}
		if tail, err = readEnd(obj, n); err != nil {
			return nil, nil, obj, err
		}
	}
	if f, err = pqslice.Parse(tail, o.Size); err != nil {
		return nil, tail, obj, err
	}
	e.footers.put(key, f, int64(len(tail)))
	return f, tail, obj, nil
}

// readEnd reads the last n bytes of obj (a read that reaches the end may
// say io.EOF with them).
func readEnd(obj storage.Object, n int64) ([]byte, error) {
	buf := make([]byte, n)
	got, err := obj.ReadAt(buf, obj.Info().Size-n)
	if int64(got) == n {
		return buf, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// maxFooterBytes bounds a footer read into memory.
const maxFooterBytes = 64 << 20

// footerCache keeps parsed footers by object version, the most recently
// added up to footerCacheBytes of footer bytes.
type footerCache struct {
	mu    sync.Mutex
	m     map[string]*pqslice.Footer
	order []footerEntry
	bytes int64
}

type footerEntry struct {
	key  string
	size int64
}

const footerCacheBytes = 64 << 20

func (c *footerCache) get(key string) *pqslice.Footer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

func (c *footerCache) put(key string, f *pqslice.Footer, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*pqslice.Footer{}
	}
	if _, ok := c.m[key]; ok {
		return
	}
	c.m[key] = f
	c.order = append(c.order, footerEntry{key, size})
	c.bytes += size
	for c.bytes > footerCacheBytes && len(c.order) > 1 {
		old := c.order[0]
		c.order = c.order[1:]
		delete(c.m, old.key)
		c.bytes -= old.size
	}
}

// readsObjects reports whether any of plans reads a source on object
// storage (whose row groups the entity rows' time bounds may prune).
func (e *Engine) readsObjects(plans []*viewPlan) bool {
	for _, p := range plans {
		switch src := p.source; {
		case src.Kind == registry.SourceParquet:
			if _, remote := e.remotePath(src.Path); remote {
				return true
			}
		case src.Kind.IsStream() && e.remoteRoot:
			return true
		}
	}
	return false
}
