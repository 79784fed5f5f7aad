package online

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/quiverdata/quiver/aggregate"
	"github.com/quiverdata/quiver/plan"
	"github.com/quiverdata/quiver/registry"
)

// viewRead is one stored view's part of a lookup: what the plan asks of
// it, in the codec's terms.
type viewRead struct {
	view     *registry.FeatureView
	codec    *Codec
	spec     *aggregate.Spec // views with aggregations: rows are tiles
	keyTypes []registry.ValueType
	keyNames []string
	outputs  []int // the vector of each requested feature (plan column)
	slots    []int // the feature's slot in the codec's row
	first    int   // index of this view's first key in the store read
}

// viewReads derives the reads of a plan's stored views, refusing views
// that are offline only.
func (l *Lookup) viewReads(p *plan.Plan) ([]*viewRead, error) {
	reads := make([]*viewRead, len(p.Views))
	for i, pv := range p.Views {
		v := pv.View
		if !v.IsOnline() {
			return nil, invalidf("view %s is offline only (online: false)", v.Name)
		}
		r := &viewRead{view: v, codec: l.codec(p.Defs, v),
			keyNames: make([]string, len(pv.Keys)), keyTypes: make([]registry.ValueType, len(pv.Keys)),
			outputs: make([]int, len(pv.Features)), slots: make([]int, len(pv.Features))}
		if pv.Aggregated() {
			var err error
			if r.spec, err = l.spec(p.Defs, v); err != nil {
				return nil, fmt.Errorf("lookup %s: %w", v.Name, err)
			}
		}
		for k, key := range pv.Keys {
			r.keyNames[k], r.keyTypes[k] = key.Name, key.Type
		}
		names := r.codec.Names()
		for n, f := range pv.Features {
			r.outputs[n] = f.Column
			r.slots[n] = -1
			for j, name := range names {
				if name == f.Feature {
					r.slots[n] = j
				}
			}
		}
		reads[i] = r
	}
	return reads, nil
}

// encodeKeys returns the store keys of every read, rows keys per view in
// read order, and sets each read's first. Views of the same entities
// share their encoded keys.
func encodeKeys(project string, reads []*viewRead, entities map[string][]any, rows int) ([]Key, error) {
	keys := make([]Key, 0, len(reads)*rows)
	vals := make([]any, 0, 4)
	encoded := map[string][][]byte{}
	for _, r := range reads {
		r.first = len(keys)
		sig := strings.Join(r.keyNames, ",")
		if ents, ok := encoded[sig]; ok {
			for row := range rows {
				keys = append(keys, Key{Project: project, View: r.view.Name, Entity: ents[row]})
			}
			continue
		}
		ents := make([][]byte, rows)
		encoded[sig] = ents
		for row := range rows {
			vals = vals[:0]
			for k, name := range r.keyNames {
				col, ok := entities[name]
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
			keys = append(keys, Key{Project: project, View: r.view.Name, Entity: ent})
		}
	}
	return keys, nil
}

// decode fills the requested features of a view from its rows (one per
// entity row), enforcing the view's ttl against now: a row older than it
// is OutsideMaxAge with its value withheld.
func (r *viewRead) decode(values [][]byte, now time.Time, vectors []FeatureVector) error {
	slots := make([]*Column, len(r.codec.Names()))
	for n, out := range r.outputs {
		slots[r.slots[n]] = &vectors[out].Values
	}
	nulls := make([]bool, len(slots))
	ttl := r.view.TTL.Std()
	for row, value := range values {
		status := NotFound
		var at time.Time
		if value != nil {
			var ok bool
			var err error
			at, ok, err = r.codec.decodeInto(value, row, slots, nulls)
			switch {
			case err != nil:
				return fmt.Errorf("view %s, row %d: %w", r.view.Name, row, err)
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
	return nil
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
