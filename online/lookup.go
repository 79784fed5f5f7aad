package online

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/quiverdata/quiver/aggregate"
	"github.com/quiverdata/quiver/internal/recent"
	"github.com/quiverdata/quiver/plan"
	"github.com/quiverdata/quiver/registry"
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
	store  Store
	now    func() time.Time
	codecs recent.Cache[*registry.Definitions, *codecCache]
	plans  plan.Cache
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

// Get looks the request's features up, one store read for all views and
// entities: plan (cached per registry version and request shape), encode
// the entity keys, read, decode, then evaluate on-demand features.
func (l *Lookup) Get(ctx context.Context, defs *registry.Definitions, req *Request) (*Response, error) {
	p, err := l.plans.Get(defs, plan.Request{Features: req.Features, FeatureService: req.FeatureService, FullFeatureNames: req.FullFeatureNames})
	if err != nil {
		if errors.Is(err, plan.ErrInvalid) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		return nil, err
	}
	rows, err := entityRows(req.Entities)
	if err != nil {
		return nil, err
	}
	demands, err := newDemands(p, req.RequestContext, rows)
	if err != nil {
		return nil, err
	}
	reads, err := l.viewReads(p)
	if err != nil {
		return nil, err
	}
	keys, err := encodeKeys(defs.Project, reads, req.Entities, rows)
	if err != nil {
		return nil, err
	}
	got, err := l.store.Read(ctx, keys)
	if err != nil {
		return nil, err
	}
	vectors := newVectors(p, rows)
	now := l.now()
	for _, r := range reads {
		values := got[r.first : r.first+rows]
		if r.spec != nil {
			err = r.evaluate(values, now, vectors)
		} else {
			err = r.decode(values, now, vectors)
		}
		if err != nil {
			return nil, err
		}
	}
	resp := &Response{Rows: rows, Features: vectors[:p.Requested:p.Requested]}
	for _, d := range demands {
		if err := d.eval(resp, vectors); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// newVectors returns one vector per plan column: the response's, then
// those of on-demand inputs that were not requested.
func newVectors(p *plan.Plan, rows int) []FeatureVector {
	vectors := make([]FeatureVector, len(p.Columns))
	for i, c := range p.Columns {
		vectors[i] = FeatureVector{Name: c.Name, View: c.View, Feature: c.Feature, Type: c.Type,
			Values: newColumn(c.Type, rows), Statuses: make([]Status, rows), EventTimes: make([]time.Time, rows)}
	}
	return vectors
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
