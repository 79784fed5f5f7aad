package offline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/quiverdata/quiver/internal/mmapfile"
	"github.com/quiverdata/quiver/internal/refreader"
	"github.com/quiverdata/quiver/registry"
)

// The merge join. With a compacted copy of every view (compact.go), a
// training set needs no sort of the views' rows: the entity rows are
// sorted by key and time (DuckDB, once per view's keys), and each view's
// copy, already sorted by key, event time, created time and source order,
// is read once beside them. Each entity row (k, T) takes the last row of
// key k at or before T that is known at the request's as_of time: rules 1
// and 2 exactly, since the copy's order is rule 2's. The ttl is checked
// on the chosen row. The matched values are gathered batch by batch of
// the copy (at most two batches of it held) and put in input order at the
// end; the entity columns come from DuckDB in input order, as the SQL
// join gives them. The result must have the SQL join's schema, column for
// column, or the request falls back to the SQL join.

// errNoMerge says the merge join does not apply to a request.
var errNoMerge = errors.New("offline: the merge join does not apply")

// mergePlan is what the DuckDB session needs to merge-join a request:
// the compacted copy of each view, in plan order.
type mergePlan struct {
	res    *resolved
	ts     column
	copies []string
}

// planMerge returns the merge plan of a request, or nil when some view
// has no fresh compacted copy (or cannot have one).
func (e *Engine) planMerge(res *resolved, ts column) (*mergePlan, error) {
	if e.opts.CompactDir == "" || len(res.plans) == 0 {
		return nil, nil
	}
	mp := &mergePlan{res: res, ts: ts}
	for _, p := range res.plans {
		path, _, err := e.freshCopy(p)
		if err != nil || path == "" {
			return nil, err
		}
		mp.copies = append(mp.copies, path)
	}
	return mp, nil
}

// entityKeys is the entity rows of one view's keys with a time and every
// key, sorted by key and time: their input positions, keys and times.
type entityKeys struct {
	pos  []int64
	keys []arrow.Array
	ts   []int64
}

// runMerged runs the merge join of mp on the session's connection and
// returns the training set with schema want.
func (q *prepared) runMerged(ctx context.Context, mp *mergePlan, want *arrow.Schema) (array.RecordReader, error) {
	ar, err := duckdb.NewArrowFromConn(q.conn)
	if err != nil {
		return nil, err
	}
	// The entity columns in input order, as the SQL join's e.* gives them,
	// and the request fields of on-demand views, which the SQL join puts
	// after the features.
	sel := []string{"* EXCLUDE (" + colRow + ")"}
	entityCols := 0
	if desc, err := describe(ctx, q.conn, "SELECT * EXCLUDE ("+colRow+") FROM "+entitiesTable); err == nil {
		entityCols = len(desc)
	} else {
		return nil, err
	}
	for _, d := range mp.res.demands {
		for j, f := range d.view.Request {
			sel = append(sel, fmt.Sprintf("CAST(%s AS %s) AS %s", quoteIdent(d.reqFrom[j]), duckType(f.Type), quoteIdent(d.reqCols[j])))
		}
	}
	base, err := queryColumns(ctx, ar, fmt.Sprintf("SELECT %s FROM %s ORDER BY %s", strings.Join(sel, ", "), entitiesTable, colRow))
	if err != nil {
		return nil, err
	}
	defer releaseAll(base)
	n := int(q.rows)
	tsExpr := castTo(mp.ts.typ, quoteIdent(mp.ts.name), registry.TypeTimestamp)
	sides := make([]*entityKeys, len(mp.res.plans))
	shared := map[string]*entityKeys{} // views with the same entity keys share their sort
	for i, p := range mp.res.plans {
		var spec []string
		for _, k := range p.keys {
			spec = append(spec, k.entityCol+" "+k.typ.String())
		}
		if side, ok := shared[strings.Join(spec, ",")]; ok {
			sides[i] = side
			continue
		}
		var keys, notNull []string
		for j := range p.keys {
			keys = append(keys, fmt.Sprintf("k%d", j))
			notNull = append(notNull, fmt.Sprintf("k%d IS NOT NULL", j))
		}
		var cast []string
		for j, k := range p.keys {
			cast = append(cast, fmt.Sprintf("CAST(%s AS %s) AS k%d", quoteIdent(k.entityCol), duckType(k.typ), j))
		}
		sql := fmt.Sprintf("SELECT p, %s, epoch_us(t) FROM (SELECT row_number() OVER (ORDER BY %s) - 1 AS p, %s, %s AS t FROM %s) WHERE t IS NOT NULL AND %s ORDER BY %s, t",
			strings.Join(keys, ", "), colRow, strings.Join(cast, ", "), tsExpr, entitiesTable, strings.Join(notNull, " AND "), strings.Join(keys, ", "))
		cols, err := queryColumns(ctx, ar, sql)
		if err != nil {
			return nil, err
		}
		side := &entityKeys{pos: int64Values(cols[0]), keys: cols[1 : 1+len(p.keys)], ts: int64Values(cols[len(cols)-1])}
		defer releaseAll(cols)
		sides[i] = side
		shared[strings.Join(spec, ",")] = side
	}
	// The views' merges, two at a time.
	features := make([][]arrow.Array, len(mp.res.plans))
	errs := make([]error, len(mp.res.plans))
	var wg sync.WaitGroup
	threads := q.e.opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	sem := make(chan struct{}, threads)
	for i, p := range mp.res.plans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			features[i], errs[i] = mergeView(ctx, p, mp.copies[i], sides[i], n)
		}()
	}
	wg.Wait()
	defer func() {
		for _, fs := range features {
			releaseAll(fs)
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cols := append([]arrow.Array{}, base[:entityCols]...)
	for _, fs := range features {
		cols = append(cols, fs...)
	}
	cols = append(cols, base[entityCols:]...)
	if len(cols) != want.NumFields() {
		return nil, fmt.Errorf("%w: %d columns, the SQL join has %d", errNoMerge, len(cols), want.NumFields())
	}
	for i, c := range cols {
		if !arrow.TypeEqual(c.DataType(), want.Field(i).Type) {
			return nil, fmt.Errorf("%w: column %s is %s, the SQL join's %s", errNoMerge, want.Field(i).Name, c.DataType(), want.Field(i).Type)
		}
	}
	// The batches: slices of the columns, SaveBatchRows rows each.
	var recs []arrow.RecordBatch
	for lo := 0; lo < n; lo += SaveBatchRows {
		hi := min(lo+SaveBatchRows, n)
		sl := make([]arrow.Array, len(cols))
		for i, c := range cols {
			sl[i] = array.NewSlice(c, int64(lo), int64(hi))
		}
		recs = append(recs, array.NewRecordBatch(want, sl, int64(hi-lo)))
		releaseAll(sl)
	}
	rr, err := array.NewRecordReader(want, recs)
	for _, r := range recs {
		r.Release()
	}
	if err != nil {
		return nil, err
	}
	q.e.merged.Add(1)
	return refreader.New(rr, q.closeConn), nil
}

// mergeView merge-joins one view's compacted copy with its entity rows
// and returns its feature columns for the n entity rows in input order.
//
// The copy is read from a memory map, batch by batch; the pages of the
// batches behind the merge are dropped from the process's memory as it
// goes, so resident memory stays near two batches of the copy.
func mergeView(ctx context.Context, p *viewPlan, path string, side *entityKeys, n int) (_ []arrow.Array, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	data, unmap, err := mmapfile.Map(fh, st.Size(), false)
	if err != nil {
		return nil, err
	}
	defer unmap() //nolint:errcheck // nothing to do about a failed unmap
	// A copy truncated under the map faults on read: an error, not a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			// A copy that cannot be read is a cache miss: the SQL join runs.
			err = fmt.Errorf("%w: compacted copy of %s: read failed (changed while read?): %v", errNoMerge, p.view.Name, r)
		}
	}()
	r, err := ipc.NewMappedFileReader(data, ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return nil, fmt.Errorf("%w: compacted copy of %s: %w", errNoMerge, p.view.Name, err)
	}
	defer r.Close()
	base := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	// start is where a batch's buffers begin in the map.
	start := func(rec arrow.RecordBatch) int {
		lo := len(data)
		for _, c := range rec.Columns() {
			for _, b := range c.Data().Buffers() {
				if b == nil || b.Len() == 0 {
					continue
				}
				off := int(uintptr(unsafe.Pointer(unsafe.SliceData(b.Bytes()))) - base)
				if off >= 0 && off < lo {
					lo = off
				}
			}
		}
		return lo
	}
	nk, nf := len(p.keys), len(p.features)
	hasCreated := p.source.CreatedTimestampField != ""
	tsCol, oCol := nk, nk+1
	if hasCreated {
		oCol = nk + 2
	}
	fCol := oCol + 1
	if r.Schema().NumFields() != fCol+nf {
		return nil, fmt.Errorf("%w: compacted copy of %s has %d columns, want %d", errNoMerge, p.view.Name, r.Schema().NumFields(), fCol+nf)
	}
	// The columns the merge reads must have the types it reads them as.
	sch := r.Schema()
	for j := range nk {
		if !arrow.TypeEqual(sch.Field(j).Type, side.keys[j].DataType()) {
			return nil, fmt.Errorf("%w: compacted copy of %s: key %s is %s, the entity rows' %s", errNoMerge, p.view.Name, sch.Field(j).Name, sch.Field(j).Type, side.keys[j].DataType())
		}
	}
	for c := nk; c < fCol; c++ {
		want := arrow.DataType(arrow.PrimitiveTypes.Int64) // source order
		if c < oCol {
			want = &arrow.TimestampType{Unit: arrow.Microsecond}
		}
		if !arrow.TypeEqual(sch.Field(c).Type, want) {
			return nil, fmt.Errorf("%w: compacted copy of %s: column %s is %s, want %s", errNoMerge, p.view.Name, sch.Field(c).Name, sch.Field(c).Type, want)
		}
	}
	ttl := p.view.TTL.Std().Microseconds()
	asOf, hasAsOf := p.asOf.UnixMicro(), !p.asOf.IsZero()

	cmpKeys := make([]func(ea arrow.Array, ei int, va arrow.Array, vi int) int, nk)
	for j := range nk {
		switch side.keys[j].(type) {
		case *array.Int64:
			cmpKeys[j] = func(ea arrow.Array, ei int, va arrow.Array, vi int) int {
				return cmp.Compare(ea.(*array.Int64).Value(ei), va.(*array.Int64).Value(vi))
			}
		case *array.String:
			cmpKeys[j] = func(ea arrow.Array, ei int, va arrow.Array, vi int) int {
				return strings.Compare(ea.(*array.String).Value(ei), va.(*array.String).Value(vi))
			}
		default:
			return nil, fmt.Errorf("%w: key type %s", errNoMerge, side.keys[j].DataType())
		}
	}
	// compare orders entity row e before (<0), at (0) or after (>0) the
	// key of view row v of batch rec.
	compare := func(e int, rec arrow.RecordBatch, v int) int {
		for j := range nk {
			if c := cmpKeys[j](side.keys[j], e, rec.Column(j), v); c != 0 {
				return c
			}
		}
		return 0
	}

	// gathered holds, per batch of the copy that had matches, the rows
	// taken and the input positions they go to.
	type pending struct {
		rec       arrow.RecordBatch
		take, pos []int64
	}
	var chunks [][]arrow.Array // per feature, the taken values
	chunks = make([][]arrow.Array, nf)
	var positions [][]int64
	finish := func(pd *pending) error {
		defer pd.rec.Release()
		if len(pd.take) == 0 {
			return nil
		}
		idx := array.NewInt64Builder(memory.DefaultAllocator)
		defer idx.Release()
		idx.AppendValues(pd.take, nil)
		ia := idx.NewArray()
		defer ia.Release()
		for j := range nf {
			out, err := compute.TakeArray(ctx, pd.rec.Column(fCol+j), ia)
			if err != nil {
				return err
			}
			chunks[j] = append(chunks[j], out)
		}
		positions = append(positions, pd.pos)
		return nil
	}

	// The candidate: the last known row so far, its batch and time.
	var cand *pending
	candRow, candTS := -1, int64(0)
	candKeyOf := func(e int) bool { return cand != nil && candRow >= 0 && compare(e, cand.rec, candRow) == 0 }
	emit := func(e int) {
		if candKeyOf(e) && (ttl == 0 || candTS >= side.ts[e]-ttl) {
			cand.take = append(cand.take, int64(candRow))
			cand.pos = append(cand.pos, side.pos[e])
		}
	}
	e, ne := 0, len(side.pos)
	var cur *pending
	for i := range r.NumRecords() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, err := r.RecordBatch(i)
		if err != nil {
			return nil, fmt.Errorf("%w: compacted copy of %s: %w", errNoMerge, p.view.Name, err)
		}
		rec.Retain()
		cur = &pending{rec: rec}
		ts := rec.Column(tsCol).(*array.Timestamp).TimestampValues()
		var created []arrow.Timestamp
		if hasCreated {
			created = rec.Column(nk + 1).(*array.Timestamp).TimestampValues()
		}
		for v := range int(rec.NumRows()) {
			vts := int64(ts[v])
			// The entity rows before this row take the candidate.
			for e < ne {
				c := compare(e, rec, v)
				if c > 0 || c == 0 && side.ts[e] >= vts {
					break
				}
				emit(e)
				e++
			}
			if hasAsOf {
				known := vts
				if hasCreated {
					if c := int64(created[v]); c > minKnownCreated {
						known = c
					}
				}
				if known > asOf {
					continue
				}
			}
			if cand != cur {
				if cand != nil {
					if err := finish(cand); err != nil {
						cur.rec.Release()
						return nil, err
					}
				}
				cand = cur
			}
			candRow, candTS = v, vts
		}
		live := start(cur.rec)
		if cand != nil && cand != cur {
			live = min(live, start(cand.rec))
		}
		if cand != cur {
			cur.rec.Release() // no row of it became the candidate
		}
		mmapfile.Drop(data, live)
	}
	for ; e < ne; e++ {
		emit(e)
	}
	if cand != nil {
		if err := finish(cand); err != nil {
			return nil, err
		}
	}
	// Input order: each position's offset in the taken values, or null.
	offsets := array.NewInt64Builder(memory.DefaultAllocator)
	defer offsets.Release()
	where := make([]int64, n)
	for i := range where {
		where[i] = -1
	}
	var off int64
	for _, ps := range positions {
		for _, p := range ps {
			where[p] = off
			off++
		}
	}
	offsets.Reserve(n)
	for _, w := range where {
		if w < 0 {
			offsets.AppendNull()
		} else {
			offsets.UnsafeAppend(w)
		}
	}
	oa := offsets.NewArray()
	defer oa.Release()
	out := make([]arrow.Array, nf)
	for j := range nf {
		var vals arrow.Array
		if len(chunks[j]) == 0 {
			vals = array.MakeArrayOfNull(memory.DefaultAllocator, r.Schema().Field(fCol+j).Type, 0)
		} else {
			var err error
			vals, err = array.Concatenate(chunks[j], memory.DefaultAllocator)
			if err != nil {
				releaseAll(out)
				return nil, err
			}
		}
		releaseAll(chunks[j])
		o, err := compute.TakeArray(ctx, vals, oa)
		vals.Release()
		if err != nil {
			releaseAll(out)
			return nil, err
		}
		out[j] = o
	}
	return out, nil
}

// MergeJoins is how many training sets the merge join has built.
func (e *Engine) MergeJoins() int64 { return e.merged.Load() }

// minKnownCreated: a compacted copy's created time at or below it is a
// null created time (DuckDB's -infinity).
const minKnownCreated = -(1 << 62)

// queryColumns runs sql and returns its result as one array per column.
func queryColumns(ctx context.Context, ar *duckdb.Arrow, sql string) ([]arrow.Array, error) {
	rr, err := ar.QueryContext(ctx, sql)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errors.New(duckErr(err))
	}
	defer rr.Release()
	nc := rr.Schema().NumFields()
	parts := make([][]arrow.Array, nc)
	for rr.Next() {
		rec := rr.RecordBatch()
		for i := range nc {
			c := rec.Column(i)
			c.Retain()
			parts[i] = append(parts[i], c)
		}
	}
	defer func() {
		for _, p := range parts {
			releaseAll(p)
		}
	}()
	if err := rr.Err(); err != nil {
		return nil, errors.New(duckErr(err))
	}
	out := make([]arrow.Array, nc)
	for i := range nc {
		if len(parts[i]) == 0 {
			out[i] = array.MakeArrayOfNull(memory.DefaultAllocator, rr.Schema().Field(i).Type, 0)
			continue
		}
		c, err := array.Concatenate(parts[i], memory.DefaultAllocator)
		if err != nil {
			releaseAll(out[:i])
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// int64Values is an int64 column's values (its nulls read as 0).
func int64Values(a arrow.Array) []int64 {
	if c, ok := a.(*array.Int64); ok {
		return c.Int64Values()
	}
	return nil
}

func releaseAll(as []arrow.Array) {
	for _, a := range as {
		if a != nil {
			a.Release()
		}
	}
}
