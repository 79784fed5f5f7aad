package plan

import (
	"errors"
	"fmt"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/transform"
)

// ErrInvalid marks a request that cannot be planned: an unknown feature,
// view or service, features and a service together, colliding output
// names. The error's text is the problem alone, without this sentinel's
// text, so that an engine can wrap it in its own sentinel
// (fmt.Errorf("%w: %w", ErrInvalidRequest, err)) and read as before.
var ErrInvalid = errors.New("quiver: invalid request")

// invalidError is a planning problem; it is ErrInvalid.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }
func (e *invalidError) Unwrap() error { return ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// Request is what a lookup or a training set asks for: feature references
// (view:feature, view:*) or a feature service, not both.
type Request struct {
	Features       []string
	FeatureService string
	// FullFeatureNames names outputs view__feature instead of feature.
	FullFeatureNames bool
}

// Plan is a request resolved against one registry version: every value
// it computes, the stored views to read and the on-demand views to
// evaluate. A Plan is immutable; it may be shared by any number of
// goroutines.
type Plan struct {
	// Defs are the definitions the plan was made from.
	Defs *registry.Definitions
	// Columns are the values the plan computes: the requested features in
	// request order (Columns[:Requested]), then the inputs of on-demand
	// views that were not requested (Hidden), in the order the on-demand
	// views read them.
	Columns []Column
	// Requested is how many of Columns were requested.
	Requested int
	// Views are the stored views to read, in the order Columns first
	// name them.
	Views []*View
	// Demands are the on-demand views to evaluate, in the order the
	// request first names them.
	Demands []*Demand
}

// Column is one value of a plan.
type Column struct {
	// Name is the output name: the feature, or view__feature with full
	// feature names. Hidden columns have none.
	Name    string
	View    string
	Feature string
	Type    registry.ValueType
	// OnDemand marks a feature of an on-demand view (computed, not read).
	OnDemand bool
	// Hidden marks an on-demand input that was not requested: it is read
	// but not returned.
	Hidden bool
}

// View is a stored view a plan reads.
type View struct {
	View   *registry.FeatureView
	Source *registry.Source
	// Keys are the view's join keys (name and type), entity by entity.
	Keys []*registry.Field
	// Features are the view's features the plan reads, in column order.
	Features []ViewFeature
}

// Aggregated reports whether the view's features are windowed
// aggregations (each ViewFeature has its Aggregation).
func (v *View) Aggregated() bool { return len(v.View.Aggregations) > 0 }

// ViewFeature is a feature a plan reads from a stored view.
type ViewFeature struct {
	Feature string
	Type    registry.ValueType
	// Column is the feature's index in Plan.Columns.
	Column int
	// Aggregation is the feature's aggregation, for an aggregated view.
	Aggregation *registry.Aggregation
}

// Demand is an on-demand view a plan evaluates.
type Demand struct {
	// View is the compiled view.
	View *transform.View
	// Features are the requested features, in request order.
	Features []DemandFeature
	// Inputs are the index in Plan.Columns of each of View.Inputs.
	Inputs []int
	// Request are the request fields the view reads (View.Request): the
	// caller gives them, in the request context or the entity table.
	Request []*registry.Field
}

// DemandFeature is a requested feature of an on-demand view.
type DemandFeature struct {
	// Index is the feature's index in View.Features.
	Index int
	// Column is its index in Plan.Columns.
	Column int
}

// New plans req against defs. On-demand views are compiled through
// transforms (only when the request names one). A request that cannot be
// planned is an ErrInvalid; a failure to compile the definitions is
// returned as it is.
func New(defs *registry.Definitions, req Request, transforms *transform.Cache) (*Plan, error) {
	if defs == nil {
		return nil, invalidf("no definitions (apply the repository first)")
	}
	feats, err := defs.ResolveRequest(req.Features, req.FeatureService, req.FullFeatureNames)
	if err != nil {
		return nil, &invalidError{msg: err.Error()}
	}
	p := &Plan{Defs: defs, Columns: make([]Column, len(feats), len(feats)+4), Requested: len(feats)}
	stored := map[registry.FeatureRef]int{}
	byDemand := map[string]*Demand{}
	for i, f := range feats {
		p.Columns[i] = Column{Name: f.Output, View: f.View, Feature: f.Feature, Type: f.Type, OnDemand: f.OnDemand}
		if !f.OnDemand {
			stored[registry.FeatureRef{View: f.View, Feature: f.Feature}] = i
			continue
		}
		d := byDemand[f.View]
		if d == nil {
			set, err := transforms.Get(defs)
			if err != nil {
				return nil, err
			}
			tv := set.View(f.View)
			d = &Demand{View: tv, Request: tv.Request}
			byDemand[f.View] = d
			p.Demands = append(p.Demands, d)
		}
		for j, tf := range d.View.Features {
			if tf.Name == f.Feature {
				d.Features = append(d.Features, DemandFeature{Index: j, Column: i})
			}
		}
	}
	for _, d := range p.Demands {
		for _, in := range d.View.Inputs {
			ref := registry.FeatureRef{View: in.View, Feature: in.Feature}
			i, ok := stored[ref]
			if !ok {
				i = len(p.Columns)
				stored[ref] = i
				p.Columns = append(p.Columns, Column{View: in.View, Feature: in.Feature, Type: in.Type, Hidden: true})
			}
			d.Inputs = append(d.Inputs, i)
		}
	}
	byView := map[string]*View{}
	for i, c := range p.Columns {
		if c.OnDemand {
			continue
		}
		v := byView[c.View]
		if v == nil {
			fv := defs.FeatureView(c.View)
			v = &View{View: fv, Source: defs.Source(fv.Source), Keys: defs.JoinKeys(fv)}
			byView[c.View] = v
			p.Views = append(p.Views, v)
		}
		vf := ViewFeature{Feature: c.Feature, Type: c.Type, Column: i}
		if v.Aggregated() {
			for _, a := range v.View.Aggregations {
				if a.Name == c.Feature {
					vf.Aggregation = a
				}
			}
			if vf.Aggregation == nil {
				return nil, invalidf("view %s has no aggregation %q", v.View.Name, c.Feature)
			}
		}
		v.Features = append(v.Features, vf)
	}
	return p, nil
}

// Outputs returns the requested columns' output names, in request order.
func (p *Plan) Outputs() []string {
	out := make([]string, p.Requested)
	for i := range out {
		out[i] = p.Columns[i].Name
	}
	return out
}
