package aggregate

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/value"
)

// Event is one source event of an entity, as the stream decoder produced
// it.
type Event struct {
	// Time is the event time; it counts to the microsecond (finer parts
	// are dropped, rounding down).
	Time time.Time
	// Values holds one value per field of the source's declared schema,
	// in schema order, nil for null: int32, int64, float32, float64, bool,
	// string, []byte, time.Time, or a slice for a list. A value that does
	// not hold its field's type counts as null; missing trailing values
	// are null.
	Values []any
	// Partition and Offset locate the event in its source. An event whose
	// Offset is not greater than the last one applied for its Partition is
	// a replay and is skipped. Offset < 0 means the event has no offset
	// (a pushed row): it is always applied.
	Partition int32
	Offset    int64
}

// partial is one slot's state in one tile, and also the running state of
// one aggregation while a window is evaluated.
type partial struct {
	n    int64   // values folded (count, sum, min, max); 1 once last holds a value
	i    int64   // integer sum; integer or timestamp (µs) min or max
	f    float64 // float sum, min or max
	last any     // last: the value of the latest event (canonical, see canon)
	at   int64   // last: that event's time, µs
}

// State is one entity's tiles for one view: for each tile that holds
// events, a partial state per slot, plus the last offset applied per
// source partition and the greatest event time applied. A State belongs
// to the Spec that built or decoded it. The zero State is empty and ready
// for use. A State is not safe for concurrent use.
type State struct {
	idx     []int64   // tile indexes, ascending
	parts   []partial // len(idx) × len(Spec.slots), tile after tile
	offsets map[int32]int64
	max     int64 // greatest event time applied, µs (when has)
	has     bool
}

// MaxEventTime returns the greatest event time applied; ok is false for
// a State that holds no event.
func (st *State) MaxEventTime() (t time.Time, ok bool) {
	if !st.has {
		return time.Time{}, false
	}
	return time.UnixMicro(st.max).UTC(), true
}

// Offset returns the last offset applied from a source partition.
func (st *State) Offset(partition int32) (int64, bool) {
	off, ok := st.offsets[partition]
	return off, ok
}

// Tiles returns how many tiles the State holds.
func (st *State) Tiles() int { return len(st.idx) }

// tile returns the partial states of tile k, adding the tile if needed.
func (st *State) tile(k int64, stride int) []partial {
	n := len(st.idx)
	switch {
	case n > 0 && st.idx[n-1] == k: // the common case: the newest tile
		return st.parts[(n-1)*stride : n*stride]
	case n == 0 || st.idx[n-1] < k:
		st.idx = append(st.idx, k)
		st.parts = append(st.parts, make([]partial, stride)...)
		return st.parts[n*stride:]
	}
	i, found := slices.BinarySearch(st.idx, k)
	if !found {
		st.idx = slices.Insert(st.idx, i, k)
		st.parts = slices.Insert(st.parts, i*stride, make([]partial, stride)...)
	}
	return st.parts[i*stride : (i+1)*stride]
}

// Apply folds ev into st and reports whether st changed (and so should be
// written back). A replay (Offset not greater than the partition's last
// applied offset) changes nothing. An event too old to matter, one whose
// tile starts before floor(max event time, hop) - max window, where no
// lookup at or after the max event time reads, is dropped; its offset is
// still recorded.
func (s *Spec) Apply(st *State, ev Event) bool {
	changed := false
	if ev.Offset >= 0 {
		if prev, ok := st.offsets[ev.Partition]; ok && ev.Offset <= prev {
			return false
		}
		if st.offsets == nil {
			st.offsets = make(map[int32]int64)
		}
		st.offsets[ev.Partition] = ev.Offset
		changed = true
	}
	us := ev.Time.UnixMicro()
	k := s.tileOf(us)
	if st.has && k < subSat(s.tileOf(st.max), s.maxTiles) {
		return changed
	}
	if !st.has || us > st.max {
		st.max, st.has = us, true
	}
	parts := st.tile(k, len(s.slots))
	for j, sl := range s.slots {
		var v any
		if sl.col >= 0 && sl.col < len(ev.Values) {
			v = ev.Values[sl.col]
		}
		p := &parts[j]
		e := partial{n: 1, at: us}
		switch sl.kind {
		case kindCount:
			if sl.col >= 0 && !valid(sl.typ, v) {
				continue
			}
		case kindSum, kindMin, kindMax:
			var ok bool
			if e.i, e.f, ok = scalar(sl.typ.Elem, v); !ok {
				continue
			}
		case kindLast:
			if p.n > 0 && us < p.at {
				continue // an older event: it cannot be the tile's last
			}
			var ok bool
			if e.last, ok = canon(sl.typ, v); !ok {
				continue
			}
		}
		sl.combine(p, &e)
	}
	return true
}

// combine folds src into dst. For last, src wins ties in event time: it
// was applied later, or (while evaluating) it is a later tile.
func (sl slot) combine(dst, src *partial) {
	if src.n == 0 {
		return
	}
	first := dst.n == 0
	switch sl.kind {
	case kindCount:
	case kindSum:
		dst.i += src.i
		dst.f += src.f
	case kindMin:
		if first || (sl.float && lessF(src.f, dst.f)) || (!sl.float && src.i < dst.i) {
			dst.i, dst.f = src.i, src.f
		}
	case kindMax:
		if first || (sl.float && lessF(dst.f, src.f)) || (!sl.float && dst.i < src.i) {
			dst.i, dst.f = src.i, src.f
		}
	case kindLast:
		if first || src.at >= dst.at {
			dst.last, dst.at = src.last, src.at
		}
		dst.n = 1
		return
	}
	dst.n += src.n
}

// lessF orders floats with NaN above every number, as SQL engines do.
func lessF(a, b float64) bool {
	switch {
	case math.IsNaN(a):
		return false
	case math.IsNaN(b):
		return true
	}
	return a < b
}

// Evaluate writes the value of each aggregation at time at into out (one
// slot per aggregation, in view order): over the tiles from
// floor(at, hop) - window to floor(at, hop), the tile that holds at
// counted whole. count gives an int64 (0 for an empty window); the other
// functions give nil for a window without values. Values may share memory
// with st (last of bytes or lists): do not modify them.
func (s *Spec) Evaluate(st *State, at time.Time, out []any) {
	if len(out) != len(s.aggs) {
		panic(fmt.Sprintf("aggregate: Evaluate with %d slots for %d aggregations", len(out), len(s.aggs)))
	}
	var buf [16]partial
	var lowBuf [16]int64
	acc := s.accumulators(buf[:0])
	kT := s.tileOf(at.UnixMicro())
	lows := s.windowStarts(lowBuf[:0], kT)
	stride := len(s.slots)
	i := sort.Search(len(st.idx), func(i int) bool { return st.idx[i] >= subSat(kT, s.maxTiles) })
	for ; i < len(st.idx) && st.idx[i] <= kT; i++ {
		s.addTile(acc, lows, st.idx[i], st.parts[i*stride:(i+1)*stride])
	}
	s.finish(acc, out)
}

func (s *Spec) accumulators(buf []partial) []partial {
	if cap(buf) < len(s.aggs) {
		return make([]partial, len(s.aggs))
	}
	return buf[:len(s.aggs)]
}

// windowStarts returns the first tile of each aggregation's window when
// the window ends with tile kT.
func (s *Spec) windowStarts(buf []int64, kT int64) []int64 {
	for _, ag := range s.aggs {
		buf = append(buf, subSat(kT, ag.tiles))
	}
	return buf
}

// addTile folds tile k into the accumulators of the aggregations whose
// window starts at or before it (lows, from windowStarts). Tiles come in
// ascending order.
func (s *Spec) addTile(acc []partial, lows []int64, k int64, parts []partial) {
	for a := range s.aggs {
		if k >= lows[a] {
			ag := &s.aggs[a]
			s.slots[ag.slot].combine(&acc[a], &parts[ag.slot])
		}
	}
}

// finish turns the accumulators into values of the output types.
func (s *Spec) finish(acc []partial, out []any) {
	for a := range s.aggs {
		ag, p := &s.aggs[a], &acc[a]
		if ag.fn == registry.AggCount {
			out[a] = p.n
			continue
		}
		if p.n == 0 {
			out[a] = nil
			continue
		}
		float := s.slots[ag.slot].float
		switch ag.fn {
		case registry.AggSum:
			if float {
				out[a] = p.f
			} else {
				out[a] = p.i
			}
		case registry.AggAvg:
			if float {
				out[a] = p.f / float64(p.n)
			} else {
				out[a] = float64(p.i) / float64(p.n)
			}
		case registry.AggMin, registry.AggMax:
			switch {
			case ag.typ.Elem == registry.Float32:
				out[a] = float32(p.f)
			case ag.typ.Elem == registry.Float64:
				out[a] = p.f
			default: // int32, int64, timestamp: folded as int64 (µs)
				out[a] = value.FromMicros(ag.typ.Elem, p.i)
			}
		case registry.AggLast:
			out[a] = p.last
		}
	}
}

// Prune drops the tiles that no evaluation at or after st's max event
// time reads: those before floor(max event time, hop) - max window.
func (s *Spec) Prune(st *State) {
	if !st.has {
		return
	}
	lo := subSat(s.tileOf(st.max), s.maxTiles)
	cut := sort.Search(len(st.idx), func(i int) bool { return st.idx[i] >= lo })
	if cut == 0 {
		return
	}
	st.idx = slices.Delete(st.idx, 0, cut)
	st.parts = slices.Delete(st.parts, 0, cut*len(s.slots))
}
