package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/quiverdata/quiver/value"
)

// ErrCorrupt is returned (wrapped) by Decode when a row cannot be decoded.
var ErrCorrupt = errors.New("quiver: corrupt aggregation tiles")

// Tile-row format (version 2 of online rows; version 1 is a plain row):
//
//	[0]      format (2)
//	[1:9]    max event time, µs since the Unix epoch, big-endian with the
//	         sign bit flipped (as in row format 1, so that stores read and
//	         compare it without knowing the format); the smallest int64 when
//	         the state holds no event
//	[9:13]   the Spec's fingerprint, little-endian
//	[13:]    payload:
//	           uvarint P, then P times (partitions ascending):
//	             varint partition, varint last applied offset
//	           uvarint T, then T tiles (indexes ascending):
//	             tile index: varint for the first, uvarint delta (≥ 1) after
//	             per slot: uvarint n (values folded; 0: nothing follows), then
//	               count: nothing
//	               sum, min, max: float64 8 bytes little-endian (float
//	                 columns) or varint (integers; timestamps in µs)
//	               last: uvarint event time - tile start (µs), then the
//	                 value as in row format 1
//
// A slot is a partial state that one or more aggregations read (sum and
// avg of one column share one); slots are in the order of the view's
// aggregations that first need them.
const (
	tileRowFormat = value.FormatTiles
	headerLen     = value.HeaderLen
)

// Encode appends st's encoding to dst.
func (s *Spec) Encode(dst []byte, st *State) []byte {
	maxTime := int64(minInt64)
	if st.has {
		maxTime = st.max
	}
	dst = value.AppendHeader(dst, value.Header{Format: tileRowFormat, EventMicros: maxTime, Fingerprint: s.fingerprint})

	dst = binary.AppendUvarint(dst, uint64(len(st.offsets)))
	parts := make([]int32, 0, len(st.offsets))
	for p := range st.offsets {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		dst = binary.AppendVarint(dst, int64(p))
		dst = binary.AppendVarint(dst, st.offsets[p])
	}

	dst = binary.AppendUvarint(dst, uint64(len(st.idx)))
	stride := len(s.slots)
	for t, k := range st.idx {
		if t == 0 {
			dst = binary.AppendVarint(dst, k)
		} else {
			dst = binary.AppendUvarint(dst, uint64(k-st.idx[t-1]))
		}
		for j, sl := range s.slots {
			p := &st.parts[t*stride+j]
			dst = binary.AppendUvarint(dst, uint64(p.n))
			if p.n == 0 {
				continue
			}
			switch sl.kind {
			case kindSum, kindMin, kindMax:
				if sl.float {
					dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(p.f))
				} else {
					dst = binary.AppendVarint(dst, p.i)
				}
			case kindLast:
				dst = binary.AppendUvarint(dst, uint64(p.at-k*s.hop))
				dst = appendLast(dst, sl.typ, p.last)
			}
		}
	}
	return dst
}

// Decode decodes a row that Encode wrote with this Spec. A row written
// with another Spec (or in row format 1) is an error wrapping
// ErrSpecChanged; a row that cannot be decoded, one wrapping ErrCorrupt.
func (s *Spec) Decode(row []byte) (*State, error) {
	st := &State{}
	stride := len(s.slots)
	var err error
	st.max, st.has, err = s.parse(row, math.MinInt64, func(p int32, off int64) {
		if st.offsets == nil {
			st.offsets = make(map[int32]int64)
		}
		st.offsets[p] = off
	}, func(k int64, parts []partial, _ [][]byte) {
		st.idx = append(st.idx, k)
		st.parts = append(st.parts, parts[:stride]...)
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// EvaluateEncoded evaluates a row as Evaluate evaluates its decoded State,
// without building the State: it walks the row once and materializes no
// value of a tile outside the windows. It returns the row's max event
// time, the zero Time when the row holds no event. Errors are those of
// Decode.
func (s *Spec) EvaluateEncoded(row []byte, at time.Time, out []any) (time.Time, error) {
	if len(out) != len(s.aggs) {
		return time.Time{}, fmt.Errorf("evaluate tiles: %d slots for %d aggregations", len(out), len(s.aggs))
	}
	var buf [16]partial
	acc := s.accumulators(buf[:0])
	// The last values of the tiles in the windows stay encoded until the
	// walk has found the latest of each.
	var rawBuf [16][]byte
	raws := rawBuf[:0]
	if len(s.aggs) > len(rawBuf) {
		raws = make([][]byte, len(s.aggs))
	}
	raws = raws[:len(s.aggs)]
	var lowBuf [16]int64
	kT := s.tileOf(at.UnixMicro())
	lows := s.windowStarts(lowBuf[:0], kT)
	maxTime, has, err := s.parse(row, subSat(kT, s.maxTiles), nil, func(k int64, parts []partial, encoded [][]byte) {
		if k > kT {
			return
		}
		s.addTile(acc, lows, k, parts)
		for _, a := range s.lasts {
			if ag := &s.aggs[a]; parts[ag.slot].n > 0 && k >= lows[a] {
				raws[a] = encoded[ag.slot] // a later tile wins, as in combine
			}
		}
	})
	if err != nil {
		return time.Time{}, err
	}
	for a, raw := range raws {
		if raw != nil {
			if acc[a].last, _, err = value.Read(raw, s.slots[s.aggs[a].slot].typ); err != nil {
				return time.Time{}, fmt.Errorf("%w: view %s: %v", ErrCorrupt, s.view, err) // parse checked it
			}
		}
	}
	s.finish(acc, out)
	if !has {
		return time.Time{}, nil
	}
	return time.UnixMicro(maxTime).UTC(), nil
}

// parse walks an encoded row, calling offset for each partition's offset
// (when not nil) and tile for each tile, whose partial states are valid
// only during the call. With from = math.MinInt64, last values are
// decoded into the partial states; otherwise they are checked and left
// encoded, and tile gets each last slot's encoded value (nil for other
// slots and for tiles before from).
func (s *Spec) parse(row []byte, from int64, offset func(int32, int64), tile func(int64, []partial, [][]byte)) (maxTime int64, has bool, err error) {
	h, ok := value.ReadHeader(row)
	if !ok {
		return 0, false, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(row))
	}
	switch h.Format {
	case tileRowFormat:
	case value.FormatRow:
		return 0, false, fmt.Errorf("%w: a plain row (format 1), not tiles", ErrSpecChanged)
	default:
		return 0, false, fmt.Errorf("%w: unknown row format %d", ErrCorrupt, h.Format)
	}
	maxTime = h.EventMicros
	if h.Fingerprint != s.fingerprint {
		return 0, false, fmt.Errorf("%w: view %s: fingerprint %08x, want %08x", ErrSpecChanged, s.view, h.Fingerprint, s.fingerprint)
	}
	r := reader{b: row[headerLen:]}
	corrupt := func(format string, args ...any) (int64, bool, error) {
		return 0, false, fmt.Errorf("%w: view %s: %s", ErrCorrupt, s.view, fmt.Sprintf(format, args...))
	}

	n := r.count()
	prev := int64(math.MinInt32) - 1
	for range n {
		p, off := r.varint(), r.varint()
		if r.err != nil {
			return corrupt("offsets: %v", r.err)
		}
		if p <= prev || p > math.MaxInt32 {
			return corrupt("partition %d out of order or range", p)
		}
		prev = p
		if offset != nil {
			offset(int32(p), off)
		}
	}

	n = r.count()
	var buf [16]partial
	var rawBuf [16][]byte
	parts, raws := buf[:0], rawBuf[:0]
	if len(s.slots) > len(buf) {
		parts, raws = make([]partial, len(s.slots)), make([][]byte, len(s.slots))
	}
	parts, raws = parts[:len(s.slots)], raws[:len(s.slots)]
	decode := from == math.MinInt64
	var k int64
	for t := range n {
		if t == 0 {
			k = r.varint()
		} else {
			d := r.uvarint()
			if d == 0 || d > uint64(maxInt64-k) {
				return corrupt("tile %d: index delta %d", t, d)
			}
			k += int64(d)
		}
		if k < s.minTile || k > s.maxTile {
			return corrupt("tile %d: index %d out of range", t, k)
		}
		start := k * s.hop
		for j, sl := range s.slots {
			p := &parts[j]
			*p, raws[j] = partial{n: int64(r.uvarint())}, nil
			if p.n < 0 {
				return corrupt("tile %d: count out of range", t)
			}
			if p.n == 0 || r.err != nil {
				continue
			}
			switch sl.kind {
			case kindSum, kindMin, kindMax:
				if sl.float {
					p.f = math.Float64frombits(r.u64())
				} else {
					p.i = r.varint()
				}
			case kindLast:
				off := r.uvarint()
				if r.err == nil && (off >= uint64(s.hop) || start > maxInt64-int64(off)) {
					return corrupt("tile %d: event time offset %d", t, off)
				}
				p.at = start + int64(off)
				if decode {
					r.value(sl, p)
				} else if b := r.b; r.skip(sl) && k >= from {
					raws[j] = b[:len(b)-len(r.b)]
				}
			}
		}
		if r.err != nil {
			return corrupt("tile %d: %v", t, r.err)
		}
		tile(k, parts, raws)
	}
	if r.err != nil {
		return corrupt("%v", r.err)
	}
	if len(r.b) != 0 {
		return corrupt("%d trailing bytes", len(r.b))
	}
	return maxTime, maxTime != minInt64, nil
}

// reader reads a payload; its first error sticks and stops further reads.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	if len(r.b) > 0 && r.b[0] < 0x80 { // one byte: most counts and deltas
		v := uint64(r.b[0])
		r.b = r.b[1:]
		return v
	}
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.fail(errors.New("bad uvarint"))
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Varint(r.b)
	if k <= 0 {
		r.fail(errors.New("bad varint"))
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *reader) u64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail(value.ErrShort)
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// count reads a count of entries that take at least a byte each.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(fmt.Errorf("count %d exceeds the %d bytes left", n, len(r.b)))
		return 0
	}
	return int(n)
}

func (r *reader) value(sl slot, p *partial) {
	if r.err != nil {
		return
	}
	v, rest, err := value.Read(r.b, sl.typ)
	if err != nil {
		r.fail(err)
		return
	}
	p.last, r.b = v, rest
}

// skip steps over a value without materializing it; false on error.
func (r *reader) skip(sl slot) bool {
	if r.err != nil {
		return false
	}
	rest, err := value.Skip(r.b, sl.typ)
	if err != nil {
		r.fail(err)
		return false
	}
	r.b = rest
	return true
}
