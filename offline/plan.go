package offline

import (
	"fmt"
	"slices"
	"strings"

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
