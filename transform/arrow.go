package transform

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiverdata/quiver/value"
)

// BatchResult is a batch's evaluated features.
type BatchResult struct {
	// Columns holds one array per feature, in View.Features order; the
	// caller releases them.
	Columns []arrow.Array
	// Errors counts runtime failures (null values in Columns); FirstError
	// is the first of them.
	Errors     int
	FirstError error
}

// EvalBatch evaluates every feature over rows rows: inputs[i] holds
// View.Inputs[i] and request[j] View.Request[j]. A null input is null with
// code 1. A value that does not fit its declared type is an error, not a
// runtime failure.
func (e *Evaluator) EvalBatch(mem memory.Allocator, rows int, inputs, request []arrow.Array) (*BatchResult, error) {
	v := e.view
	if len(inputs) != len(v.Inputs) || len(request) != len(v.Request) {
		return nil, fmt.Errorf("on-demand view %s: %d input and %d request columns given, want %d and %d",
			v.Def.Name, len(inputs), len(request), len(v.Inputs), len(v.Request))
	}
	builders := make([]array.Builder, len(v.Features))
	for i, f := range v.Features {
		builders[i] = array.NewBuilder(mem, value.ArrowType(f.Type))
		builders[i].Reserve(rows)
	}
	defer func() {
		for _, b := range builders {
			b.Release()
		}
	}()
	res := &BatchResult{}
	for row := range rows {
		for i, a := range inputs {
			x, err := value.FromArrow(a, row)
			if err == nil {
				err = e.SetInput(i, x)
			}
			if err != nil {
				return nil, fmt.Errorf("row %d: input %s:%s: %w", row, v.Inputs[i].View, v.Inputs[i].Feature, err)
			}
		}
		for j, a := range request {
			x, err := value.FromArrow(a, row)
			if err == nil {
				err = e.SetRequest(j, x)
			}
			if err != nil {
				return nil, fmt.Errorf("row %d: request field %s: %w", row, v.Request[j].Name, err)
			}
		}
		for f := range v.Features {
			r := e.Eval(f)
			if r.Err != nil {
				res.Errors++
				if res.FirstError == nil {
					res.FirstError = fmt.Errorf("row %d: %w", row, r.Err)
				}
			}
			value.AppendArrow(builders[f], r.Value)
		}
	}
	for _, b := range builders {
		res.Columns = append(res.Columns, b.NewArray())
	}
	return res, nil
}
