package online

import (
	"fmt"

	"github.com/quiverdata/quiver/plan"
)

// demand is one on-demand view's part of a lookup: the plan's, with the
// request fields found in the request context.
type demand struct {
	*plan.Demand
	req [][]any // the column of each of View.Request
}

// newDemands pairs the plan's on-demand views with their request fields
// in the request context.
func newDemands(p *plan.Plan, ctx map[string][]any, rows int) ([]*demand, error) {
	demands := make([]*demand, len(p.Demands))
	for i, pd := range p.Demands {
		d := &demand{Demand: pd, req: make([][]any, 0, len(pd.Request))}
		for _, f := range pd.Request {
			col, ok := ctx[f.Name]
			if !ok {
				return nil, invalidf("missing request field %s (%s) of on-demand view %s: give it in the request context", f.Name, f.Type, pd.View.Def.Name)
			}
			if len(col) != rows {
				return nil, invalidf("request field %s has %d values; the entity columns have %d", f.Name, len(col), rows)
			}
			d.req = append(d.req, col)
		}
		demands[i] = d
	}
	return demands, nil
}

// eval computes the requested on-demand features row by row. An input
// that is not present is null with its status as the code, so a feature
// that reads it gets that status.
func (d *demand) eval(resp *Response, vectors []FeatureVector) error {
	e := d.View.NewEvaluator()
	for row := range resp.Rows {
		for i, vi := range d.Inputs {
			in := &vectors[vi]
			if st := in.Statuses[row]; st != Present {
				e.SetInputNull(i, uint8(st))
				continue
			}
			if err := e.SetInput(i, in.Values.At(row)); err != nil {
				return fmt.Errorf("on-demand view %s, row %d: %w", d.View.Def.Name, row, err)
			}
		}
		for j, col := range d.req {
			if err := e.SetRequest(j, col[row]); err != nil {
				return invalidf("request field %s, row %d: %v", d.View.Request[j].Name, row, err)
			}
		}
		for _, f := range d.Features {
			fv := &resp.Features[f.Column]
			r := e.Eval(f.Index)
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
