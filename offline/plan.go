package offline

import (
	"errors"
	"fmt"
	"time"

	"github.com/quiverdata/quiver/plan"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/transform"
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
	// asOf is the request's AsOf: source rows known later are left out.
	asOf time.Time
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
	// cutoff is the entity column of a per-row as_of (Request.AsOfColumn),
	// once the entity table is described; name "" without one.
	cutoff column
}

// resolve plans the request (package plan, cached per registry version
// and request shape) and derives what the engine needs besides: the
// output column of every feature (hidden on-demand inputs get internal
// names), the entity-table column of every join key (JoinKeyMap), the
// aggregations' inputs, and the internal columns of request fields.
func (e *Engine) resolve(req *Request) (*resolved, error) {
	p, err := e.plans.Get(req.Defs, plan.Request{Features: req.Features, FeatureService: req.FeatureService, FullFeatureNames: req.FullFeatureNames})
	if err != nil {
		if errors.Is(err, plan.ErrInvalid) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
		}
		return nil, err
	}
	res, err := newResolved(p, req.JoinKeyMap)
	if err != nil {
		return nil, err
	}
	for _, vp := range res.plans {
		vp.asOf = req.AsOf
	}
	if req.AsOfColumn != "" {
		if !req.AsOf.IsZero() {
			return nil, invalidf("give as_of or as_of_column, not both")
		}
		for _, vp := range res.plans {
			if vp.aggregated() {
				return nil, invalidf("view %s has windowed aggregations, which take a training-set-wide as_of, not as_of_column %q", vp.view.Name, req.AsOfColumn)
			}
		}
		res.cutoff.name = req.AsOfColumn
	}
	return res, nil
}

// newResolved derives a request's views, output columns and on-demand
// views from its plan. Training sets name a plan column by its output
// name, or a hidden one __quiver_inN; they write the stored features view
// by view, then the on-demand ones.
func newResolved(p *plan.Plan, joinKeyMap map[string]string) (*resolved, error) {
	names := make([]string, len(p.Columns))
	res := &resolved{}
	for i, c := range p.Columns {
		names[i] = c.Name
		if c.Hidden {
			names[i] = fmt.Sprintf("%sin%d", internalPrefix, i-p.Requested)
		}
		if !c.OnDemand && !c.Hidden {
			res.columns = append(res.columns, c.Name)
		}
	}
	for di, pd := range p.Demands {
		d := &demand{view: pd.View}
		for _, f := range pd.Features {
			d.features = append(d.features, f.Index)
			d.outputs = append(d.outputs, names[f.Column])
		}
		for _, in := range pd.Inputs {
			d.inputCols = append(d.inputCols, names[in])
		}
		for j, f := range pd.Request {
			d.reqCols = append(d.reqCols, fmt.Sprintf("%srq%d_%d", internalPrefix, di, j))
			d.reqFrom = append(d.reqFrom, f.Name)
		}
		res.columns = append(res.columns, d.outputs...)
		res.demands = append(res.demands, d)
	}
	for _, pv := range p.Views {
		vp := &viewPlan{view: pv.View, source: pv.Source}
		for _, f := range pv.Features {
			c := p.Columns[f.Column]
			vp.features = append(vp.features, outputFeature{
				ResolvedFeature: registry.ResolvedFeature{View: c.View, Feature: c.Feature, Type: c.Type, Output: names[f.Column]},
				column:          names[f.Column]})
			if f.Aggregation != nil {
				vp.aggs = append(vp.aggs, f.Aggregation)
			}
		}
		if vp.aggregated() {
			var err error
			if _, vp.aggInput, err = vp.inputs(); err != nil {
				return nil, err
			}
		}
		vp.keys = joinKeys(pv, joinKeyMap)
		res.plans = append(res.plans, vp)
	}
	return res, nil
}

// joinKeys pairs a view's join keys with the entity-table columns that
// hold them: the key's name, unless the join-key map names another
// column for every view ("driver_id") or for this one ("view.driver_id").
func joinKeys(pv *plan.View, joinKeyMap map[string]string) []keyPair {
	keys := make([]keyPair, 0, len(pv.Keys))
	for _, k := range pv.Keys {
		col := k.Name
		if alias, ok := joinKeyMap[k.Name]; ok {
			col = alias
		}
		if alias, ok := joinKeyMap[pv.View.Name+"."+k.Name]; ok {
			col = alias
		}
		keys = append(keys, keyPair{joinKey: k.Name, entityCol: col, typ: k.Type})
	}
	return keys
}
