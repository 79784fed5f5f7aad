package stream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/quiverdata/quiver/aggregate"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/streamlog"
)

// Applier applies decoded events of stream sources to the online store
// and the offline log: the one path that Kafka messages and pushed rows
// take. It is safe for concurrent use by one goroutine per (source,
// partition).
type Applier struct {
	defs     *registry.Definitions
	store    online.Store
	dataRoot string
	sources  map[string]*sourcePlan
	metrics  *Metrics
	now      func() time.Time
	// MaxFuture refuses events whose time is further ahead of the clock
	// (default 24h): one such event would move an entity's tiles forward
	// and make its real events look too old to count.
	MaxFuture time.Duration
}

// sourcePlan is a stream source and the views that read it.
type sourcePlan struct {
	src     *registry.Source
	decoder *Decoder
	views   []*viewPlan
}

// viewPlan is how one view takes an event.
type viewPlan struct {
	view     *registry.FeatureView
	log      *streamlog.Log
	keyIdx   []int // schema index of each join key
	keyTypes []registry.ValueType
	// Views with features: the codec, and the schema index of each
	// feature.
	codec   *online.Codec
	featIdx []int
	// Views with aggregations. tiles serializes the read-modify-write of
	// their tile rows across the partitions this process consumes, so an
	// entity whose events come from several partitions loses no update.
	spec  *aggregate.Spec
	tiles sync.Mutex
}

// NewApplier plans the stream views of defs: every view over a kafka or
// push source that is online. Their logs live under dataRoot, a local
// directory (NewApplierStore takes an s3:// one too).
func NewApplier(defs *registry.Definitions, store online.Store, dataRoot string, metrics *Metrics, now func() time.Time) (*Applier, error) {
	return NewApplierStore(context.Background(), defs, store, dataRoot, nil, metrics, now)
}

// NewApplierStore is NewApplier for a data root that is a local directory
// or an s3:// URI, whose bucket st opens (st may be nil for a local
// root). ctx bounds the listing that opening each log on object storage
// makes.
func NewApplierStore(ctx context.Context, defs *registry.Definitions, store online.Store, dataRoot string, st *storage.Store, metrics *Metrics, now func() time.Time) (*Applier, error) {
	if now == nil {
		now = time.Now
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	a := &Applier{defs: defs, store: store, dataRoot: dataRoot, sources: map[string]*sourcePlan{}, metrics: metrics, now: now, MaxFuture: 24 * time.Hour}
	for _, v := range defs.FeatureViews {
		src := defs.Source(v.Source)
		if src == nil || !src.Kind.IsStream() {
			continue
		}
		sp := a.sources[src.Name]
		if sp == nil {
			sp = &sourcePlan{src: src}
			a.sources[src.Name] = sp
		}
		vp, err := planView(ctx, defs, v, src, dataRoot, st)
		if err != nil {
			return nil, err
		}
		sp.views = append(sp.views, vp)
	}
	for _, sp := range a.sources {
		var required []string
		for _, vp := range sp.views {
			for _, i := range vp.keyIdx {
				required = append(required, sp.src.Schema[i].Name)
			}
		}
		d, err := NewDecoder(sp.src, required)
		if err != nil {
			return nil, err
		}
		sp.decoder = d
	}
	return a, nil
}

func planView(ctx context.Context, defs *registry.Definitions, v *registry.FeatureView, src *registry.Source, dataRoot string, st *storage.Store) (*viewPlan, error) {
	field := func(name string) (int, error) {
		for i, f := range src.Schema {
			if src.Mapped(f.Name) == name {
				return i, nil
			}
		}
		return 0, fmt.Errorf("view %s: source %s declares no field %q", v.Name, src.Name, name)
	}
	vp := &viewPlan{view: v}
	for _, k := range defs.JoinKeys(v) {
		i, err := field(k.Name)
		if err != nil {
			return nil, err
		}
		vp.keyIdx = append(vp.keyIdx, i)
		vp.keyTypes = append(vp.keyTypes, k.Type)
	}
	log, err := streamlog.OpenStore(ctx, st, dataRoot, v.Name, src.Schema)
	if err != nil {
		return nil, err
	}
	vp.log = log
	if len(v.Aggregations) > 0 {
		if vp.spec, err = aggregate.NewSpec(v, src); err != nil {
			return nil, err
		}
		return vp, nil
	}
	vp.codec = online.NewCodec(v)
	for _, f := range v.Features {
		i, err := field(f.Name)
		if err != nil {
			return nil, err
		}
		vp.featIdx = append(vp.featIdx, i)
	}
	return vp, nil
}

// Recover removes what a crash left in the views' offline logs:
// uncommitted files older than grace.
func (a *Applier) Recover(grace time.Duration) (int, error) {
	total := 0
	for _, sp := range a.sources {
		for _, vp := range sp.views {
			n, err := vp.log.Recover(grace)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// checkTime refuses an event from too far in the future.
func (a *Applier) checkTime(ev *streamlog.Event) error {
	if limit := a.now().Add(a.MaxFuture); ev.Time.After(limit) {
		return &DecodeError{Field: "", Reason: fmt.Sprintf("event time %s is more than %s ahead of the clock", ev.Time.Format(time.RFC3339Nano), a.MaxFuture)}
	}
	return nil
}

// EventError is an event of a batch that a sink refuses however often it
// is tried (a value the online encoding cannot hold): the stream
// dead-letters it and applies the rest. Index is the event's position in
// the batch.
type EventError struct {
	Index int
	Err   error
}

func (e *EventError) Error() string { return e.Err.Error() }
func (e *EventError) Unwrap() error { return e.Err }

// Sources returns the names of the stream sources that views read, sorted.
func (a *Applier) Sources() []string {
	var out []string
	for name := range a.sources {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// source returns a source's plan, or an error naming the sources there are.
func (a *Applier) source(name string) (*sourcePlan, error) {
	if sp, ok := a.sources[name]; ok {
		return sp, nil
	}
	return nil, fmt.Errorf("%s is not a stream source that an online view reads (sources: %v)", name, a.Sources())
}

// Decoder returns the decoder of a stream source.
func (a *Applier) Decoder(source string) (*Decoder, error) {
	sp, err := a.source(source)
	if err != nil {
		return nil, err
	}
	return sp.decoder, nil
}

// ApplyOnline writes a batch of one source partition's events to the
// online store: for views with features, each entity's latest event
// (event-time guarded); for views with aggregations, the events folded
// into the entities' tiles (replays skipped by offset). Events are in
// source order.
func (a *Applier) ApplyOnline(ctx context.Context, source string, partition int32, events []streamlog.Event) error {
	sp, err := a.source(source)
	if err != nil {
		return err
	}
	var rows []online.Row
	for _, vp := range sp.views {
		var err error
		if vp.spec != nil {
			vp.tiles.Lock()
			err = a.applyTiles(ctx, vp, partition, events)
			vp.tiles.Unlock()
		} else {
			rows, err = a.latestRows(vp, events, rows[:0])
			if err == nil {
				_, err = a.store.Write(ctx, rows, online.WriteOptions{})
			}
		}
		if err != nil {
			return fmt.Errorf("view %s: write online: %w", vp.view.Name, err)
		}
	}
	now := a.now()
	for i := range events {
		a.metrics.Freshness.Observe(now.Sub(events[i].Time).Seconds())
	}
	return nil
}

// entityKey encodes an event's join-key values.
func (vp *viewPlan) entityKey(ev *streamlog.Event, vals []any) ([]byte, error) {
	vals = vals[:0]
	for _, i := range vp.keyIdx {
		vals = append(vals, ev.Values[i])
	}
	return online.EncodeEntity(vp.keyTypes, vals)
}

// latestRows encodes each entity's latest event of the batch (ties: the
// later in source order, as the store's guard does).
func (a *Applier) latestRows(vp *viewPlan, events []streamlog.Event, rows []online.Row) ([]online.Row, error) {
	latest := make(map[string]int, len(events))
	var order []string
	vals := make([]any, 0, len(vp.keyIdx))
	for i := range events {
		ent, err := vp.entityKey(&events[i], vals)
		if err != nil {
			return nil, &EventError{Index: i, Err: fmt.Errorf("join key: %w", err)}
		}
		j, ok := latest[string(ent)]
		if !ok {
			order = append(order, string(ent))
		}
		if !ok || !events[i].Time.Before(events[j].Time) {
			latest[string(ent)] = i
		}
	}
	feats := make([]any, len(vp.featIdx))
	for _, ent := range order {
		ev := &events[latest[ent]]
		for k, i := range vp.featIdx {
			feats[k] = ev.Values[i]
		}
		value, err := vp.codec.Encode(nil, ev.Time, feats)
		if err != nil {
			return nil, &EventError{Index: latest[ent], Err: err}
		}
		rows = append(rows, online.Row{Key: online.Key{Project: a.defs.Project, View: vp.view.Name, Entity: []byte(ent)}, Value: value})
	}
	return rows, nil
}

// maxTileAttempts bounds how often applyTiles re-reads the tiles that
// another writer changed between its read and its write.
const maxTileAttempts = 100

// applyTiles folds the batch's events into their entities' tiles: it
// reads the tiles, folds the events in and writes them back with a
// compare-and-set, so that another process writing the same entity's
// tiles at once (a topic not keyed by entity, a consumer that lost the
// group but still runs) makes this one read again instead of losing an
// update. Replays are skipped by the offsets the tiles record.
func (a *Applier) applyTiles(ctx context.Context, vp *viewPlan, partition int32, events []streamlog.Event) error {
	byEntity := map[string][]int{}
	var keys []online.Key
	vals := make([]any, 0, len(vp.keyIdx))
	for i := range events {
		ent, err := vp.entityKey(&events[i], vals)
		if err != nil {
			return &EventError{Index: i, Err: fmt.Errorf("join key: %w", err)}
		}
		if _, ok := byEntity[string(ent)]; !ok {
			keys = append(keys, online.Key{Project: a.defs.Project, View: vp.view.Name, Entity: ent})
		}
		byEntity[string(ent)] = append(byEntity[string(ent)], i)
	}
	var rows []online.Row
	var expect [][]byte
	var rowKey []int // rows[i] is keys[rowKey[i]]
	for attempt := 1; len(keys) > 0; attempt++ {
		if attempt > maxTileAttempts {
			return fmt.Errorf("the tiles of %d entities changed under every one of %d attempts (entity %s)", len(keys), maxTileAttempts, keys[0].Entity)
		}
		stored, err := a.store.Read(ctx, keys)
		if err != nil {
			return fmt.Errorf("read tiles: %w", err)
		}
		rows, expect, rowKey = rows[:0], expect[:0], rowKey[:0]
		for k, key := range keys {
			st := &aggregate.State{}
			if stored[k] != nil {
				st, err = vp.spec.Decode(stored[k])
				switch {
				case errors.Is(err, aggregate.ErrSpecChanged):
					st = &aggregate.State{} // written for older definitions
				case err != nil:
					return fmt.Errorf("entity %s: %w", key.Entity, err)
				}
			}
			changed := false
			for _, i := range byEntity[string(key.Entity)] {
				ev := &events[i]
				if vp.spec.Apply(st, aggregate.Event{Time: ev.Time, Values: ev.Values, Partition: partition, Offset: ev.Offset}) {
					changed = true
				}
			}
			if !changed {
				continue
			}
			vp.spec.Prune(st)
			rows = append(rows, online.Row{Key: key, Value: vp.spec.Encode(nil, st)})
			expect = append(expect, stored[k])
			rowKey = append(rowKey, k)
		}
		if len(rows) == 0 {
			return nil
		}
		res, err := a.store.Write(ctx, rows, online.WriteOptions{Expect: expect})
		if err != nil {
			return err
		}
		if len(res.Conflicts) > 0 {
			a.metrics.TileConflicts.Add(float64(len(res.Conflicts)))
		}
		retry := make([]online.Key, 0, len(res.Conflicts))
		for _, i := range res.Conflicts {
			retry = append(retry, keys[rowKey[i]])
		}
		keys = retry
	}
	return nil
}

// Logged returns, for each view of a source, the last offset its log holds
// for a partition of stream (-1 when none): events at or below it are
// logged already and must not be logged again.
func (a *Applier) Logged(source, stream string, partition int32) (map[string]int64, error) {
	sp, err := a.source(source)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, vp := range sp.views {
		offs, err := vp.log.Offsets()
		if err != nil {
			return nil, err
		}
		last, ok := offs[streamlog.Position{Stream: stream, Partition: partition}]
		if !ok {
			last = -1
		}
		out[vp.view.Name] = last
	}
	return out, nil
}

// AppendLog logs a batch of one source partition's events in every view's
// offline log, durably, skipping per view the events at or below
// logged[view] (see Logged), and advances logged.
func (a *Applier) AppendLog(source, stream string, partition int32, events []streamlog.Event, logged map[string]int64) error {
	prepared, err := a.prepareLog(source, stream, partition, events, logged)
	if err != nil {
		return err
	}
	return a.commitLog(prepared, events, logged)
}

// viewBatch is a view's prepared share of a batch.
type viewBatch struct {
	view string
	p    *streamlog.Prepared
}

// prepareLog writes the views' files of a batch without committing them
// (see streamlog.Log.Prepare); on error it removes what it wrote.
func (a *Applier) prepareLog(source, stream string, partition int32, events []streamlog.Event, logged map[string]int64) ([]viewBatch, error) {
	sp, err := a.source(source)
	if err != nil {
		return nil, err
	}
	var out []viewBatch
	for _, vp := range sp.views {
		from := 0
		if last, ok := logged[vp.view.Name]; ok && last >= 0 {
			from = sort.Search(len(events), func(i int) bool { return events[i].Offset > last })
		}
		if from > 0 {
			a.metrics.Skipped.WithLabelValues(source).Add(float64(from))
		}
		if from == len(events) {
			continue
		}
		start := time.Now()
		p, err := vp.log.Prepare(streamlog.Batch{Stream: stream, Partition: partition, Events: events[from:]})
		if err != nil {
			abortLog(out)
			return nil, err
		}
		a.metrics.LogFlush.Observe(time.Since(start).Seconds())
		out = append(out, viewBatch{view: vp.view.Name, p: p})
	}
	return out, nil
}

// commitLog commits prepared batches in order. On error the ones not yet
// committed are removed; those committed stay (and logged says which).
// A batch of source offsets that another writer committed first (a
// consumer the partition moved away from, logging the same offsets; on
// object storage only) is in the log already: this writer's copy is
// removed and the batch counts as logged.
func (a *Applier) commitLog(prepared []viewBatch, events []streamlog.Event, logged map[string]int64) error {
	for i, vb := range prepared {
		if _, err := vb.p.Commit(); err != nil {
			if errors.Is(err, streamlog.ErrCommitted) && events[len(events)-1].Offset >= 0 {
				_ = vb.p.Abort() // this writer's copy; Recover removes what it cannot
			} else {
				abortLog(prepared[i:])
				return err
			}
		}
		if logged != nil && events[len(events)-1].Offset >= 0 {
			logged[vb.view] = events[len(events)-1].Offset
		}
	}
	return nil
}

// abortLog removes prepared batches that will not be committed. What it
// cannot remove no reader sees, and Recover removes it later.
func abortLog(prepared []viewBatch) {
	for _, vb := range prepared {
		_ = vb.p.Abort() // best effort, as above
	}
}
