package aggregate

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/quiverdata/quiver/registry"
)

// ErrSpecChanged is returned (wrapped) by Decode when a stored row was
// written for other aggregations, another hop or another row format: the
// view's definitions changed since. The caller discards the row and
// rebuilds the state from the stream.
var ErrSpecChanged = errors.New("quiver: aggregation tiles written for other definitions")

// kind is what a slot accumulates per tile.
type kind uint8

const (
	kindCount kind = iota // non-null values (or events, for count without a column)
	kindSum               // count and sum; serves sum and avg
	kindMin
	kindMax
	kindLast
)

// slot is one partial state kept per tile. Aggregations that need the same
// partial state of the same column share a slot: sum(fare) over 1h and
// avg(fare) over 1d read one slot.
type slot struct {
	kind  kind
	col   int                // source schema index; -1 for count without a column
	typ   registry.ValueType // the column's type (zero for count without a column)
	float bool               // sum, min and max are held as float64, not int64
}

// agg is one aggregation of the view.
type agg struct {
	name  string
	fn    string
	slot  int
	tiles int64 // window in tiles
	typ   registry.ValueType
}

// Spec is a feature view's aggregations compiled for tiling: which source
// field each reads, its window in tiles, its output type. It is immutable
// and safe for concurrent use.
type Spec struct {
	view        string
	hop         int64 // µs
	slots       []slot
	aggs        []agg
	lasts       []int // the aggregations that are last
	maxTiles    int64
	fingerprint uint32
	// minTile and maxTile bound the tiles whose start is an int64 (µs).
	minTile, maxTile int64
}

// NewSpec compiles the aggregations of v, whose source is src. The
// definitions must have been validated (output types are set then).
func NewSpec(v *registry.FeatureView, src *registry.Source) (*Spec, error) {
	if len(v.Aggregations) == 0 {
		return nil, fmt.Errorf("view %s has no aggregations", v.Name)
	}
	if src == nil || src.Name != v.Source {
		return nil, fmt.Errorf("view %s: source %s not given", v.Name, v.Source)
	}
	hop := v.Hop.Std()
	if hop <= 0 || hop%time.Microsecond != 0 {
		return nil, fmt.Errorf("view %s: hop %s is not a positive whole number of microseconds", v.Name, v.Hop)
	}
	s := &Spec{view: v.Name, hop: int64(hop / time.Microsecond)}
	s.minTile, s.maxTile = minInt64/s.hop, maxInt64/s.hop
	h := fnv.New32a()
	fmt.Fprintf(h, "hop=%d;ts=%s;", s.hop, src.TimestampField)
	shared := map[slot]int{}
	var errs []error
	for _, a := range v.Aggregations {
		w := a.Window.Std()
		if w <= 0 || w%hop != 0 {
			errs = append(errs, fmt.Errorf("aggregation %s: window %s is not a positive multiple of the hop %s", a.Name, a.Window, v.Hop))
			continue
		}
		if a.Type.IsZero() {
			errs = append(errs, fmt.Errorf("aggregation %s: no output type (validate the definitions first)", a.Name))
			continue
		}
		sl := slot{col: -1}
		switch a.Function {
		case registry.AggCount:
			sl.kind = kindCount
		case registry.AggSum, registry.AggAvg:
			sl.kind = kindSum
		case registry.AggMin:
			sl.kind = kindMin
		case registry.AggMax:
			sl.kind = kindMax
		case registry.AggLast:
			sl.kind = kindLast
		default:
			errs = append(errs, fmt.Errorf("aggregation %s: unknown function %q", a.Name, a.Function))
			continue
		}
		if a.Column != "" {
			for i, f := range src.Schema {
				if src.Mapped(f.Name) == a.Column {
					sl.col, sl.typ = i, f.Type
					break
				}
			}
			if sl.col < 0 {
				errs = append(errs, fmt.Errorf("aggregation %s: source %s declares no field %q", a.Name, src.Name, a.Column))
				continue
			}
		} else if sl.kind != kindCount {
			errs = append(errs, fmt.Errorf("aggregation %s: %s needs a column", a.Name, a.Function))
			continue
		}
		if err := checkTypes(a, sl); err != nil {
			errs = append(errs, fmt.Errorf("aggregation %s: %w", a.Name, err))
			continue
		}
		sl.float = sl.typ.Elem == registry.Float32 || sl.typ.Elem == registry.Float64
		if sl.kind == kindCount || sl.kind == kindLast {
			sl.float = false
		}
		idx, ok := shared[sl]
		if !ok {
			idx = len(s.slots)
			shared[sl] = idx
			s.slots = append(s.slots, sl)
		}
		tiles := int64(w / hop)
		if sl.kind == kindLast {
			s.lasts = append(s.lasts, len(s.aggs))
		}
		s.aggs = append(s.aggs, agg{name: a.Name, fn: a.Function, slot: idx, tiles: tiles, typ: a.Type})
		s.maxTiles = max(s.maxTiles, tiles)
		fmt.Fprintf(h, "%s:%s:%s:%s:%d:%s;", a.Name, a.Function, a.Column, sl.typ, tiles, a.Type)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("view %s: %w", v.Name, err)
	}
	s.fingerprint = h.Sum32()
	return s, nil
}

// checkTypes checks that an aggregation's output type is the one its
// function gives for its column (what registry validation derives).
func checkTypes(a *registry.Aggregation, sl slot) error {
	t, out := sl.typ, a.Type
	var want registry.ValueType
	switch a.Function {
	case registry.AggCount:
		want = registry.TypeInt64
	case registry.AggSum, registry.AggAvg:
		if t.List || !t.Elem.Numeric() {
			return fmt.Errorf("%s needs a numeric column; %s is %s", a.Function, a.Column, t)
		}
		want = registry.TypeInt64
		if a.Function == registry.AggAvg || t.Elem == registry.Float32 || t.Elem == registry.Float64 {
			want = registry.ValueType{Elem: registry.Float64}
		}
	case registry.AggMin, registry.AggMax:
		if t.List || !(t.Elem.Numeric() || t.Elem == registry.Timestamp) {
			return fmt.Errorf("%s needs a numeric or timestamp column; %s is %s", a.Function, a.Column, t)
		}
		want = t
	case registry.AggLast:
		want = t
	}
	if out != want {
		return fmt.Errorf("output type %s, but %s of %s gives %s", out, a.Function, t, want)
	}
	return nil
}

// Hop returns the tile size.
func (s *Spec) Hop() time.Duration { return time.Duration(s.hop) * time.Microsecond }

// MaxWindow returns the longest window of the view's aggregations.
func (s *Spec) MaxWindow() time.Duration {
	return time.Duration(s.maxTiles*s.hop) * time.Microsecond
}

// Names returns the aggregations' names in view order (the order of
// Evaluate's values).
func (s *Spec) Names() []string {
	out := make([]string, len(s.aggs))
	for i, a := range s.aggs {
		out[i] = a.name
	}
	return out
}

// Types returns the aggregations' output types in view order.
func (s *Spec) Types() []registry.ValueType {
	out := make([]registry.ValueType, len(s.aggs))
	for i, a := range s.aggs {
		out[i] = a.typ
	}
	return out
}

// Fingerprint identifies the spec: an FNV-32a hash of the hop, the
// source's timestamp field, and each aggregation's name, function,
// column, column type, window and output type. Encoded rows carry it.
func (s *Spec) Fingerprint() uint32 { return s.fingerprint }

// tileOf returns the index of the tile that holds time us (floor
// division, also for negative times).
func (s *Spec) tileOf(us int64) int64 { return floorDiv(us, s.hop) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// subSat is a-b, saturated at the int64 range (b ≥ 0).
func subSat(a, b int64) int64 {
	if a < minInt64+b {
		return minInt64
	}
	return a - b
}

const (
	minInt64 = -1 << 63
	maxInt64 = 1<<63 - 1
)
