package online

import (
	"errors"
	"fmt"

	"github.com/quiverdata/quiver/plan"
	"github.com/quiverdata/quiver/registry"
)

// Plan returns the plan Get makes of req's features against defs, from
// the same cache: the views it reads with their join keys, and the
// on-demand views it evaluates with their request fields. Surfaces that
// must sort a client's columns into join keys and request fields before
// they build a Request (Feast's, which sends both as entities) ask it. A
// request that cannot be planned is an ErrInvalidRequest. The plan is
// shared and must not be changed.
func (l *Lookup) Plan(defs *registry.Definitions, req *Request) (*plan.Plan, error) {
	p, err := l.plans.Get(defs, plan.Request{Features: req.Features, FeatureService: req.FeatureService, FullFeatureNames: req.FullFeatureNames})
	if errors.Is(err, plan.ErrInvalid) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return p, err
}
