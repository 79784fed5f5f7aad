package online

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/quiverdata/quiver/aggregate"
	"github.com/quiverdata/quiver/internal/recent"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/transform"
	"github.com/quiverdata/quiver/wire"
)

// Status says what a looked-up value is; see wire.Status.
type Status = wire.Status

// Statuses of looked-up values.
const (
	Present         = wire.Present
	NullValue       = wire.NullValue
	NotFound        = wire.NotFound
	OutsideMaxAge   = wire.OutsideMaxAge
	EvaluationError = wire.EvaluationError
)

// Request asks for features of entities. Entities holds one column per
// join key (values int64 or string, Go integers accepted for int64), all
// of the same length. RequestContext holds one column per request field
// of the requested on-demand views, as long as the entity columns (values
// as transform.ToCEL takes them).
type Request struct {
	Entities         map[string][]any
	Features         []string
	FeatureService   string
	FullFeatureNames bool
	RequestContext   map[string][]any
}

// FeatureVector is one feature's values for every requested entity row,
// typed, with a status and an event time each (zero when not found).
type FeatureVector struct {
	Name       string
	View       string
	Feature    string
	Type       registry.ValueType
	Values     Column
	Statuses   []Status
	EventTimes []time.Time
}

// Value returns row i's value, or nil unless its status is Present.
func (fv *FeatureVector) Value(i int) any {
	if fv.Statuses[i] != Present {
		return nil
	}
	return fv.Values.At(i)
}

// Response is columnar: one vector per requested feature, in request
// order, each as long as the entity columns.
type Response struct {
	Rows     int
	Features []FeatureVector
	// EvaluationErrors counts on-demand values that failed at run time
	// (status EvaluationError); FirstEvaluationError is the first.
	EvaluationErrors     int
	FirstEvaluationError error
}

// Lookup answers online feature requests from a Store. It is safe for
// concurrent use.
type Lookup struct {
	store      Store
	now        func() time.Time
	codecs     recent.Cache[*registry.Definitions, *codecCache]
	transforms transform.Cache
}

type codecCache struct {
	byView map[string]*Codec
	specs  map[string]specOrErr // views with aggregations
}

type specOrErr struct {
	spec *aggregate.Spec
	err  error
}

// LookupOptions tune a Lookup.
type LookupOptions struct {
	// Now is the clock ttl is measured against and aggregation windows
	// end at (default time.Now).
	Now func() time.Time
}

// NewLookup returns a lookup engine over store.
func NewLookup(store Store, opts LookupOptions) *Lookup {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Lookup{store: store, now: opts.Now}
}

// cache returns the codecs and aggregation specs of defs' views, cached
// for the last few definitions seen (two are live during a reload).
func (l *Lookup) cache(defs *registry.Definitions) *codecCache {
	cache, _ := l.codecs.Get(defs, func() (*codecCache, error) { // building cannot fail
		cache := &codecCache{byView: make(map[string]*Codec), specs: make(map[string]specOrErr)}
		for _, fv := range defs.FeatureViews {
			cache.byView[fv.Name] = NewCodec(fv)
			if len(fv.Aggregations) > 0 {
				spec, err := aggregate.NewSpec(fv, defs.Source(fv.Source))
				cache.specs[fv.Name] = specOrErr{spec, err}
			}
		}
		return cache, nil
	})
	return cache
}

// codec returns the view's codec.
func (l *Lookup) codec(defs *registry.Definitions, v *registry.FeatureView) *Codec {
	if c, ok := l.cache(defs).byView[v.Name]; ok {
		return c
	}
	return NewCodec(v)
}

// spec returns the aggregation spec of a view with aggregations.
func (l *Lookup) spec(defs *registry.Definitions, v *registry.FeatureView) (*aggregate.Spec, error) {
	if s, ok := l.cache(defs).specs[v.Name]; ok {
		return s.spec, s.err
	}
	return aggregate.NewSpec(v, defs.Source(v.Source))
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// viewRead is one view's part of a request.
type viewRead struct {
	view     *registry.FeatureView
	codec    *Codec
	spec     *aggregate.Spec // views with aggregations: rows are tiles
	keyTypes []registry.ValueType
	keyNames []string
	outputs  []int // index in Response.Features of each requested feature
	slots    []int // the feature's slot in the codec's row
	first    int   // index of this view's first key in the store read
}

// Get looks the request's features up, one store read for all views and
// entities.
func (l *Lookup) Get(ctx context.Context, defs *registry.Definitions, req *Request) (*Response, error) {
	feats, err := defs.ResolveRequest(req.Features, req.FeatureService, req.FullFeatureNames)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidRequest, err)
	}
	rows, err := entityRows(req.Entities)
	if err != nil {
		return nil, err
	}
	resp := &Response{Rows: rows, Features: make([]FeatureVector, len(feats))}
	newVector := func(f registry.ResolvedFeature) FeatureVector {
		return FeatureVector{Name: f.Output, View: f.View, Feature: f.Feature, Type: f.Type,
			Values: newColumn(f.Type, rows), Statuses: make([]Status, rows), EventTimes: make([]time.Time, rows)}
	}
	// vectors are the response's, then those of on-demand inputs that
	// were not requested.
	vectors := resp.Features
	stored := map[registry.FeatureRef]int{}
	var demands []*demand
	byDemand := map[string]*demand{}
	for i, f := range feats {
		vectors[i] = newVector(f)
		if !f.OnDemand {
			stored[registry.FeatureRef{View: f.View, Feature: f.Feature}] = i
			continue
		}
		d := byDemand[f.View]
		if d == nil {
			set, err := l.transforms.Get(defs)
			if err != nil {
				return nil, err
			}
			d = &demand{view: set.View(f.View)}
			byDemand[f.View] = d
			demands = append(demands, d)
		}
		for j, tf := range d.view.Features {
			if tf.Name == f.Feature {
				d.features = append(d.features, j)
				d.outputs = append(d.outputs, i)
			}
		}
	}
	for _, d := range demands {
		for _, in := range d.view.Inputs {
			ref := registry.FeatureRef{View: in.View, Feature: in.Feature}
			i, ok := stored[ref]
			if !ok {
				i = len(vectors)
				stored[ref] = i
				hidden := registry.ResolvedFeature{View: in.View, Feature: in.Feature, Type: in.Type}
				vectors = append(vectors, newVector(hidden))
				feats = append(feats, hidden)
			}
			d.inputs = append(d.inputs, i)
		}
		if err := d.request(req.RequestContext, rows); err != nil {
			return nil, err
		}
	}
	var reads []*viewRead
	byView := map[string]*viewRead{}
	for i, f := range feats {
		if f.OnDemand {
			continue
		}
		r := byView[f.View]
		if r == nil {
			v := defs.FeatureView(f.View)
			if !v.IsOnline() {
				return nil, invalidf("view %s is offline only (online: false)", v.Name)
			}
			r = &viewRead{view: v, codec: l.codec(defs, v)}
			if len(v.Aggregations) > 0 {
				if r.spec, err = l.spec(defs, v); err != nil {
					return nil, fmt.Errorf("lookup %s: %w", v.Name, err)
				}
			}
			for _, k := range defs.JoinKeys(v) {
				r.keyNames = append(r.keyNames, k.Name)
				r.keyTypes = append(r.keyTypes, k.Type)
			}
			byView[f.View] = r
			reads = append(reads, r)
		}
		slot := -1
		for j, n := range r.codec.Names() {
			if n == f.Feature {
				slot = j
			}
		}
		r.outputs = append(r.outputs, i)
		r.slots = append(r.slots, slot)
	}
	keys := make([]Key, 0, len(reads)*rows)
	vals := make([]any, 0, 4)
	// Views of the same entities share their encoded keys.
	encoded := map[string][][]byte{}
	for _, r := range reads {
		r.first = len(keys)
		sig := strings.Join(r.keyNames, ",")
		if ents, ok := encoded[sig]; ok {
			for row := range rows {
				keys = append(keys, Key{Project: defs.Project, View: r.view.Name, Entity: ents[row]})
			}
			continue
		}
		ents := make([][]byte, rows)
		encoded[sig] = ents
		for row := range rows {
			vals = vals[:0]
			for k, name := range r.keyNames {
				col, ok := req.Entities[name]
				if !ok {
					return nil, invalidf("missing join key %s of view %s (give an entity column %q)", name, r.view.Name, name)
				}
				v := col[row]
				if err := checkKey(v, r.keyTypes[k]); err != nil {
					return nil, invalidf("join key %s, row %d: %v", name, row, err)
				}
				vals = append(vals, v)
			}
			ent, err := EncodeEntity(r.keyTypes, vals)
			if err != nil {
				return nil, invalidf("join key of view %s, row %d: %v", r.view.Name, row, err)
			}
			ents[row] = ent
			keys = append(keys, Key{Project: defs.Project, View: r.view.Name, Entity: ent})
		}
	}
	got, err := l.store.Read(ctx, keys)
	if err != nil {
		return nil, err
	}
	now := l.now()
	for _, r := range reads {
		if r.spec != nil {
			if err := r.evaluate(got[r.first:r.first+rows], now, vectors); err != nil {
				return nil, err
			}
			continue
		}
		slots := make([]*Column, len(r.codec.Names()))
		for n, out := range r.outputs {
			slots[r.slots[n]] = &vectors[out].Values
		}
		nulls := make([]bool, len(slots))
		ttl := r.view.TTL.Std()
		for row := range rows {
			value := got[r.first+row]
			status := NotFound
			var at time.Time
			if value != nil {
				var ok bool
				at, ok, err = r.codec.decodeInto(value, row, slots, nulls)
				switch {
				case err != nil:
					return nil, fmt.Errorf("view %s, row %d: %w", r.view.Name, row, err)
				case !ok:
					status = NotFound
				case ttl > 0 && at.Before(now.Add(-ttl)):
					status = OutsideMaxAge
				default:
					status = Present
				}
			}
			for n, out := range r.outputs {
				fv := &vectors[out]
				fv.Statuses[row] = status
				if status == NotFound {
					continue
				}
				fv.EventTimes[row] = at
				switch {
				case status == OutsideMaxAge:
					fv.Values.zero(row) // the value is withheld, not only flagged
				case nulls[r.slots[n]]:
					fv.Statuses[row] = NullValue
				}
			}
		}
	}
	for _, d := range demands {
		if err := d.eval(resp, vectors); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// evaluate fills the requested aggregations of a view from its tile rows
// (one per entity row), with windows ending at now. The status is Present
// with the row's max event time as event time, NullValue where a window
// holds no value, NotFound without a row or with one written for other
// aggregations (the stream rebuilds it). The view's ttl does not apply:
// the windows bound what is counted.
func (r *viewRead) evaluate(values [][]byte, now time.Time, vectors []FeatureVector) error {
	vals := make([]any, len(r.codec.Names()))
	for row, value := range values {
		status := NotFound
		var at time.Time
		if value != nil {
			var err error
			at, err = r.spec.EvaluateEncoded(value, now, vals)
			switch {
			case errors.Is(err, aggregate.ErrSpecChanged):
			case err != nil:
				return fmt.Errorf("view %s, row %d: %w: %w", r.view.Name, row, ErrCorruptRow, err)
			case !at.IsZero(): // zero: a row that holds no event
				status = Present
			}
		}
		for n, out := range r.outputs {
			fv := &vectors[out]
			fv.Statuses[row] = status
			if status == NotFound {
				continue
			}
			fv.EventTimes[row] = at
			if v := vals[r.slots[n]]; v != nil {
				fv.Values.set(row, v)
			} else {
				fv.Statuses[row] = NullValue
			}
		}
	}
	return nil
}

// demand is one on-demand view's part of a request.
type demand struct {
	view     *transform.View
	features []int   // index in view.Features of each requested feature
	outputs  []int   // its index in Response.Features
	inputs   []int   // the vector of each of view.Inputs
	req      [][]any // the column of each of view.Request
}

// request finds the view's request fields in the request context.
func (d *demand) request(ctx map[string][]any, rows int) error {
	for _, f := range d.view.Request {
		col, ok := ctx[f.Name]
		if !ok {
			return invalidf("missing request field %s (%s) of on-demand view %s: give it in the request context", f.Name, f.Type, d.view.Def.Name)
		}
		if len(col) != rows {
			return invalidf("request field %s has %d values; the entity columns have %d", f.Name, len(col), rows)
		}
		d.req = append(d.req, col)
	}
	return nil
}

// eval computes the requested on-demand features row by row. An input
// that is not present is null with its status as the code, so a feature
// that reads it gets that status.
func (d *demand) eval(resp *Response, vectors []FeatureVector) error {
	e := d.view.NewEvaluator()
	for row := range resp.Rows {
		for i, vi := range d.inputs {
			in := &vectors[vi]
			if st := in.Statuses[row]; st != Present {
				e.SetInputNull(i, uint8(st))
				continue
			}
			if err := e.SetInput(i, in.Values.At(row)); err != nil {
				return fmt.Errorf("on-demand view %s, row %d: %w", d.view.Def.Name, row, err)
			}
		}
		for j, col := range d.req {
			if err := e.SetRequest(j, col[row]); err != nil {
				return invalidf("request field %s, row %d: %v", d.view.Request[j].Name, row, err)
			}
		}
		for n, f := range d.features {
			fv := &resp.Features[d.outputs[n]]
			r := e.Eval(f)
			switch {
			case r.Err != nil:
				fv.Statuses[row] = EvaluationError
				resp.EvaluationErrors++
				if resp.FirstEvaluationError == nil {
					resp.FirstEvaluationError = fmt.Errorf("row %d: %w", row, r.Err)
				}
			case r.Null != 0:
				fv.Statuses[row] = Status(r.Null)
			case r.Value == nil:
				fv.Statuses[row] = NullValue
			default:
				fv.Values.set(row, r.Value)
			}
		}
	}
	return nil
}

// entityRows checks that the entity columns are non-empty and of one length.
func entityRows(cols map[string][]any) (int, error) {
	if len(cols) == 0 {
		return 0, invalidf("no entities given")
	}
	names := make([]string, 0, len(cols))
	for n := range cols {
		names = append(names, n)
	}
	sort.Strings(names)
	rows := len(cols[names[0]])
	for _, n := range names[1:] {
		if len(cols[n]) != rows {
			return 0, invalidf("entity columns have different lengths: %s has %d values, %s has %d", names[0], rows, n, len(cols[n]))
		}
	}
	return rows, nil
}

func checkKey(v any, t registry.ValueType) error {
	switch t {
	case registry.TypeInt64:
		if _, ok := asInt(v); ok {
			return nil
		}
		return fmt.Errorf("%v (%T) is not an int64", v, v)
	case registry.TypeString:
		if _, ok := v.(string); ok {
			return nil
		}
		return fmt.Errorf("%v (%T) is not a string", v, v)
	}
	return fmt.Errorf("join keys are int64 or string, not %s", t)
}
