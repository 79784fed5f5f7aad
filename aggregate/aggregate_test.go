package aggregate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

// The source of every test view. fare_raw is renamed fare by the mapping.
const testSource = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
sources:
  - name: trips
    kind: kafka
    topic: trips
    format: json
    timestamp_field: ts
    field_mapping: {fare_raw: fare}
    schema:
      - {name: driver_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: fare_raw, type: float64}
      - {name: tip, type: float32}
      - {name: seats, type: int32}
      - {name: meters, type: int64}
      - {name: pickup, type: timestamp}
      - {name: city, type: string}
      - {name: shared, type: bool}
      - {name: emb, type: "list<float32>"}
      - {name: raw, type: bytes}
`

// Schema indexes of the test source.
const (
	colFare = 2 + iota
	colTip
	colSeats
	colMeters
	colPickup
	colCity
	colShared
	colEmb
	colRaw
	schemaLen
)

// allFunctions is every function over every column type it takes.
var allFunctions = []string{
	"count", "count city", "count emb",
	"sum fare", "sum tip", "sum seats", "sum meters",
	"avg fare", "avg meters", "avg tip",
	"min seats", "max seats", "min meters", "max fare", "min tip", "max tip", "min pickup", "max pickup",
	"last city", "last emb", "last raw", "last shared", "last fare", "last seats", "last pickup",
}

// testDefs returns definitions with one view per hop: view hN has the
// given functions over each window.
func testDefs(t testing.TB, views map[string]string, windows map[string][]string, functions []string) *registry.Definitions {
	t.Helper()
	var b strings.Builder
	b.WriteString(testSource)
	b.WriteString("feature_views:\n")
	names := make([]string, 0, len(views))
	for n := range views {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "  - name: %s\n    entities: [driver]\n    source: trips\n    hop: %s\n    aggregations:\n", name, views[name])
		for _, w := range windows[name] {
			for _, f := range functions {
				fn, col, _ := strings.Cut(f, " ")
				if col == "" {
					fmt.Fprintf(&b, "      - {function: %s, window: %s}\n", fn, w)
				} else {
					fmt.Fprintf(&b, "      - {function: %s, column: %s, window: %s}\n", fn, col, w)
				}
			}
		}
	}
	defs, errs := registry.ParseDefinitions("agg", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(b.String())})
	require.NoError(t, errs.Err())
	return defs
}

func testSpec(t testing.TB, defs *registry.Definitions, view string) *Spec {
	t.Helper()
	v := defs.FeatureView(view)
	s, err := NewSpec(v, defs.Source(v.Source))
	require.NoError(t, err)
	return s
}

// event builds an event at time at with named values.
func event(at time.Time, offset int64, vals map[int]any) Event {
	ev := Event{Time: at, Values: make([]any, schemaLen), Offset: offset}
	for i, v := range vals {
		ev.Values[i] = v
	}
	return ev
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// TestWindowsByHand checks the rule's boundaries on a few events whose
// values are worked out by hand (hop 1m).
func TestWindowsByHand(t *testing.T) {
	defs := testDefs(t, map[string]string{"v": "1m"}, map[string][]string{"v": {"2m"}},
		[]string{"count", "count fare", "sum fare", "avg fare", "min fare", "max seats", "last city", "sum seats"})
	s := testSpec(t, defs, "v")
	require.Equal(t, []string{"count_2m", "count_fare_2m", "sum_fare_2m", "avg_fare_2m", "min_fare_2m", "max_seats_2m", "last_city_2m", "sum_seats_2m"}, s.Names())
	var st State
	at := func(hms string) time.Time {
		d, err := time.ParseDuration(hms)
		require.NoError(t, err)
		return t0.Add(d)
	}
	for i, ev := range []Event{
		event(at("0s"), 0, map[int]any{colFare: 10.0, colCity: "a", colSeats: int32(1)}), // tile 12:00
		event(at("1m10s"), 1, map[int]any{colCity: "b"}),                                 // fare null
		event(at("1m50s"), 2, map[int]any{colFare: 5.0, colSeats: int32(4)}),             // city null
		event(at("2m"), 3, map[int]any{colFare: 1.0, colCity: "c", colSeats: int32(2)}),  // tile 12:02
		event(at("2m"), 4, map[int]any{colFare: 2.0, colCity: "d"}),                      // same time: applied later wins last
		event(at("30s"), -1, map[int]any{colFare: 100.0, colCity: "e", colSeats: "bad"}), // a late push row; seats mistyped: null
	} {
		require.True(t, s.Apply(&st, ev), "event %d", i)
	}
	out := make([]any, 8)
	for _, tc := range []struct {
		at   string
		want []any
	}{
		// floor(12:02:00) - 2m = 12:00:00: every event counts.
		{"2m", []any{int64(6), int64(5), 118.0, 23.6, 1.0, int32(4), "d", int64(7)}},
		// 12:02:59.999999 is in tile 12:02: the same window.
		{"2m59.999999s", []any{int64(6), int64(5), 118.0, 23.6, 1.0, int32(4), "d", int64(7)}},
		// 12:03: tiles 12:01..12:03; the events of tile 12:00 drop out.
		{"3m", []any{int64(4), int64(3), 8.0, 8.0 / 3, 1.0, int32(4), "d", int64(6)}},
		// 12:04: tiles 12:02..12:04.
		{"4m", []any{int64(2), int64(2), 3.0, 1.5, 1.0, int32(2), "d", int64(2)}},
		// 12:05: empty; count is 0, everything else null.
		{"5m", []any{int64(0), int64(0), nil, nil, nil, nil, nil, nil}},
	} {
		s.Evaluate(&st, at(tc.at), out)
		require.Equal(t, tc.want, out, "at +%s", tc.at)
	}
	mt, ok := st.MaxEventTime()
	require.True(t, ok)
	require.Equal(t, at("2m"), mt)
	off, ok := st.Offset(0)
	require.True(t, ok)
	require.Equal(t, int64(4), off)
}

// TestTilesBeforeTheEpoch: floor rounds down for negative times too.
func TestTilesBeforeTheEpoch(t *testing.T) {
	defs := testDefs(t, map[string]string{"v": "1m"}, map[string][]string{"v": {"1m"}}, []string{"count"})
	s := testSpec(t, defs, "v")
	epoch := time.Unix(0, 0).UTC()
	var st State
	s.Apply(&st, event(epoch.Add(-61*time.Second), -1, nil)) // tile -2
	s.Apply(&st, event(epoch.Add(-time.Microsecond), -1, nil))
	s.Apply(&st, event(epoch, -1, nil)) // tile 0
	require.Equal(t, 3, st.Tiles())
	out := make([]any, 1)
	for _, tc := range []struct {
		at   time.Duration
		want int64
	}{
		{-time.Microsecond, 2}, // tiles -2 and -1
		{0, 2},                 // tiles -1 and 0
		{time.Minute, 1},       // tiles 0 and 1
		{-61 * time.Second, 1}, // tiles -3 and -2
	} {
		s.Evaluate(&st, epoch.Add(tc.at), out)
		require.Equal(t, tc.want, out[0], "at %s", tc.at)
	}
}

// TestValuesAreReadAsTheColumnType: integers, []any lists and nanosecond
// times are accepted and normalized; values of another type are null.
func TestValuesAreReadAsTheColumnType(t *testing.T) {
	defs := testDefs(t, map[string]string{"v": "1m"}, map[string][]string{"v": {"1m"}},
		[]string{"count emb", "last emb", "sum meters", "sum tip", "max pickup", "last raw", "count seats"})
	s := testSpec(t, defs, "v")
	var st State
	raw := []byte("abc")
	s.Apply(&st, event(t0, -1, map[int]any{
		colEmb: []any{float32(1), 2.5}, colMeters: 7, colTip: 0.1, colPickup: t0.Add(1500 * time.Nanosecond), colRaw: raw,
		colSeats: int64(1) << 40, // beyond int32: null
	}))
	raw[0] = 'X' // the state holds its own copy
	s.Apply(&st, event(t0, -1, map[int]any{colEmb: []any{float32(1), nil}, colMeters: "7", colTip: "x"}))
	out := make([]any, 7)
	s.Evaluate(&st, t0, out)
	require.Equal(t, []any{int64(1), []float32{1, 2.5}, int64(7), float64(float32(0.1)), t0.Add(time.Microsecond), []byte("abc"), int64(0)}, out)
}

func TestFloatOrderAndNaN(t *testing.T) {
	defs := testDefs(t, map[string]string{"v": "1m"}, map[string][]string{"v": {"1m"}}, []string{"min fare", "max fare", "sum fare"})
	s := testSpec(t, defs, "v")
	var st State
	for _, f := range []float64{2, math.NaN(), -1} {
		s.Apply(&st, event(t0, -1, map[int]any{colFare: f}))
	}
	out := make([]any, 3)
	s.Evaluate(&st, t0, out)
	require.Equal(t, -1.0, out[0])
	require.True(t, math.IsNaN(out[1].(float64)), "NaN is above every number")
	require.True(t, math.IsNaN(out[2].(float64)))
}

func TestNewSpec(t *testing.T) {
	defs := testDefs(t, map[string]string{"v": "1m"}, map[string][]string{"v": {"1m", "1h"}}, []string{"sum fare", "avg fare", "count", "count fare"})
	v := defs.FeatureView("v")
	s := testSpec(t, defs, "v")
	require.Equal(t, time.Minute, s.Hop())
	require.Equal(t, time.Hour, s.MaxWindow())
	require.Len(t, s.slots, 3, "sum and avg of fare share a slot; count and count fare do not")
	require.Equal(t, []registry.ValueType{{Elem: registry.Float64}, {Elem: registry.Float64}, registry.TypeInt64, registry.TypeInt64}, s.Types()[:4])

	// The fingerprint follows what the tiles mean.
	changed := func(edit func(v *registry.FeatureView, src *registry.Source)) (*Spec, error) {
		cv := *v
		cv.Aggregations = nil
		for _, a := range v.Aggregations {
			ca := *a
			cv.Aggregations = append(cv.Aggregations, &ca)
		}
		src := *defs.Source(v.Source)
		edit(&cv, &src)
		return NewSpec(&cv, &src)
	}
	for name, edit := range map[string]func(v *registry.FeatureView, src *registry.Source){
		"window": func(v *registry.FeatureView, _ *registry.Source) { v.Aggregations[0].Window *= 2 },
		"hop": func(v *registry.FeatureView, _ *registry.Source) {
			v.Hop *= 2
			for _, a := range v.Aggregations {
				a.Window *= 2
			}
		},
		"name":            func(v *registry.FeatureView, _ *registry.Source) { v.Aggregations[0].Name = "x" },
		"timestamp field": func(_ *registry.FeatureView, src *registry.Source) { src.TimestampField = "pickup" },
		"column":          func(v *registry.FeatureView, _ *registry.Source) { v.Aggregations[3].Column = "meters" },
	} {
		c, err := changed(edit)
		require.NoError(t, err, name)
		require.NotEqual(t, s.Fingerprint(), c.Fingerprint(), name)
	}
	same, err := changed(func(*registry.FeatureView, *registry.Source) {})
	require.NoError(t, err)
	require.Equal(t, s.Fingerprint(), same.Fingerprint())

	for _, tc := range []struct {
		edit func(v *registry.FeatureView, src *registry.Source)
		want string
	}{
		{func(v *registry.FeatureView, _ *registry.Source) { v.Aggregations[0].Window = 90e9 },
			"view v: aggregation sum_fare_1m: window 1m30s is not a positive multiple of the hop 1m"},
		{func(v *registry.FeatureView, _ *registry.Source) { v.Hop = 1500; v.Aggregations = v.Aggregations[:1] },
			"view v: hop 1.5µs is not a positive whole number of microseconds"},
		{func(v *registry.FeatureView, _ *registry.Source) {
			v.Aggregations[0].Column = "nope"
			v.Aggregations[1].Function = "median"
		}, "view v: aggregation sum_fare_1m: source trips declares no field \"nope\"\naggregation avg_fare_1m: unknown function \"median\""},
		{func(v *registry.FeatureView, _ *registry.Source) { v.Aggregations[0].Column = "city" },
			"aggregation sum_fare_1m: sum needs a numeric column; city is string"},
		{func(v *registry.FeatureView, _ *registry.Source) { v.Aggregations[0].Type = registry.TypeInt64 },
			"aggregation sum_fare_1m: output type int64, but sum of float64 gives float64"},
		{func(v *registry.FeatureView, _ *registry.Source) { v.Aggregations[0].Type = registry.ValueType{} },
			"aggregation sum_fare_1m: no output type (validate the definitions first)"},
		{func(v *registry.FeatureView, _ *registry.Source) { v.Aggregations = nil }, "view v has no aggregations"},
		{func(_ *registry.FeatureView, src *registry.Source) { src.Name = "other" }, "view v: source trips not given"},
	} {
		_, err := changed(tc.edit)
		require.ErrorContains(t, err, tc.want)
	}
}

// refEvent is an event as the brute-force reference sees it.
type refEvent struct {
	us   int64
	vals []any
}

// reference computes view v's aggregations at T straight from rule 5 over
// the events, given in the order they were applied.
func reference(v *registry.FeatureView, src *registry.Source, events []refEvent, at time.Time) (out []any, scale []float64) {
	hop := v.Hop.Std().Microseconds()
	tus := at.UnixMicro()
	floorT := tus / hop
	if tus%hop < 0 {
		floorT--
	}
	floorT *= hop
	out = make([]any, len(v.Aggregations))
	scale = make([]float64, len(v.Aggregations))
	for a, ag := range v.Aggregations {
		col := -1
		var typ registry.ValueType
		for i, f := range src.Schema {
			if src.Mapped(f.Name) == ag.Column {
				col, typ = i, f.Type
			}
		}
		lo := floorT - ag.Window.Std().Microseconds()
		var vals []any
		var times []int64
		for _, e := range events {
			if e.us < lo || e.us > tus {
				continue
			}
			if col >= 0 && e.vals[col] == nil {
				continue
			}
			var x any
			if col >= 0 {
				x = e.vals[col]
			}
			vals, times = append(vals, x), append(times, e.us)
		}
		if ag.Function == registry.AggCount {
			out[a] = int64(len(vals))
			continue
		}
		if len(vals) == 0 {
			continue
		}
		float := typ.Elem == registry.Float32 || typ.Elem == registry.Float64
		num := func(x any) (int64, float64) {
			switch y := x.(type) {
			case int32:
				return int64(y), float64(y)
			case int64:
				return y, float64(y)
			case float32:
				return 0, float64(y)
			case float64:
				return 0, y
			case time.Time:
				return y.UnixMicro(), 0
			}
			panic(fmt.Sprintf("%T", x))
		}
		switch ag.Function {
		case registry.AggSum, registry.AggAvg:
			var si int64
			var sf float64
			for _, x := range vals {
				i, f := num(x)
				si += i
				sf += f
				scale[a] += math.Abs(f)
			}
			switch {
			case ag.Function == registry.AggSum && float:
				out[a] = sf
			case ag.Function == registry.AggSum:
				out[a] = si
			case float:
				out[a] = sf / float64(len(vals))
				scale[a] /= float64(len(vals))
			default:
				out[a] = float64(si) / float64(len(vals))
			}
		case registry.AggMin, registry.AggMax:
			best := vals[0]
			for _, x := range vals[1:] {
				bi, bf := num(best)
				xi, xf := num(x)
				less := xi < bi || xf < bf
				if ag.Function == registry.AggMax {
					less = xi > bi || xf > bf
				}
				if less {
					best = x
				}
			}
			out[a] = best
		case registry.AggLast:
			best := 0
			for i := range vals {
				if times[i] >= times[best] { // ties: the later applied
					best = i
				}
			}
			out[a] = vals[best]
		}
	}
	return out, scale
}

// requireMatches compares Evaluate's values with the reference's: exact,
// except float sums and averages, which tiles add in another order than
// the reference (tile by tile, then across tiles): their rounding differs
// by far less than 1e-9 of the sum of the magnitudes added.
func requireMatches(t *testing.T, v *registry.FeatureView, want, got []any, scale []float64, msg string) {
	t.Helper()
	for a, ag := range v.Aggregations {
		w, g := want[a], got[a]
		if wf, ok := w.(float64); ok && (ag.Function == registry.AggSum || ag.Function == registry.AggAvg) {
			gf, ok := g.(float64)
			require.True(t, ok, "%s: %s: got %#v, want %v", msg, ag.Name, g, w)
			require.InDelta(t, wf, gf, 1e-9*scale[a]+1e-300, "%s: %s", msg, ag.Name)
			continue
		}
		require.Equal(t, w, g, "%s: %s", msg, ag.Name)
	}
}

// randomEvents makes n events of one entity from about start to start+span:
// times out of order, some on tile boundaries, some repeated, some late
// by up to a day and a half; about a fifth of each column null.
func randomEvents(rng *rand.Rand, n int, start time.Time, span time.Duration, hop time.Duration) []refEvent {
	out := make([]refEvent, 0, n)
	var prev int64
	for i := range n {
		at := start.Add(time.Duration(rng.Int64N(int64(span/time.Millisecond))) * time.Millisecond)
		switch r := rng.IntN(10); {
		case r < 2:
			at = at.Truncate(hop) // on a tile boundary
		case r < 3 && i > 0:
			at = time.UnixMicro(prev) // the previous event's time
		case r < 4:
			at = at.Add(-time.Duration(rng.Int64N(int64(36 * time.Hour))))
		}
		if at.Before(start) {
			at = at.Add(time.Duration(rng.Int64N(int64(time.Hour))))
		}
		prev = at.UnixMicro()
		vals := make([]any, schemaLen)
		vals[1] = time.UnixMicro(prev).UTC()
		for c := colFare; c < schemaLen; c++ {
			if rng.IntN(5) == 0 {
				continue
			}
			switch c {
			case colFare:
				vals[c] = math.Round((rng.Float64()*200-50)*100) / 100
			case colTip:
				vals[c] = float32(rng.Float64() * 20)
			case colSeats:
				vals[c] = int32(rng.IntN(7) - 1)
			case colMeters:
				vals[c] = rng.Int64N(1 << 40)
			case colPickup:
				vals[c] = time.UnixMicro(prev - rng.Int64N(int64(time.Hour/time.Microsecond))).UTC()
			case colCity:
				vals[c] = []string{"paris", "lyon", "nice", ""}[rng.IntN(4)]
			case colShared:
				vals[c] = rng.IntN(2) == 0
			case colEmb:
				vals[c] = []float32{rng.Float32(), rng.Float32()}
			case colRaw:
				vals[c] = []byte{byte(rng.IntN(256))}
			}
		}
		out = append(out, refEvent{us: prev, vals: vals})
	}
	return out
}

var referenceCases = []struct {
	hop     string
	windows []string
	start   time.Time
}{
	{"1m", []string{"1m", "10m", "1h", "1d"}, t0},
	{"7s", []string{"7s", "70s", "1h10m"}, time.Unix(-3600, 0).UTC()}, // across the epoch
}

// TestAgainstReference applies random events out of order, with replays,
// to tiles and compares every function over several windows with the
// brute-force reference, at many times at or after the max event time,
// after pruning, and after a round trip through the encoding.
func TestAgainstReference(t *testing.T) {
	for _, rc := range referenceCases {
		t.Run("hop="+rc.hop, func(t *testing.T) {
			defs := testDefs(t, map[string]string{"v": rc.hop}, map[string][]string{"v": rc.windows}, allFunctions)
			v := defs.FeatureView("v")
			src := defs.Source(v.Source)
			s := testSpec(t, defs, "v")
			hop := v.Hop.Std()
			rng := rand.New(rand.NewPCG(uint64(hop), 7))
			for entity := range 3 {
				events := randomEvents(rng, 400+200*entity, rc.start, 48*time.Hour, hop)
				var st State
				var applied []refEvent
				for i, e := range events {
					ev := Event{Time: time.UnixMicro(e.us), Values: e.vals, Partition: int32(entity % 2), Offset: int64(i)}
					if i%5 == 4 {
						ev.Offset = -1 // a pushed row: no offset
					}
					if changed := s.Apply(&st, ev); ev.Offset >= 0 {
						require.True(t, changed, "a new offset")
					}
					applied = append(applied, e)
					if rng.IntN(4) == 0 { // a replay of this or an earlier event
						j := rng.IntN(i + 1)
						if j%5 != 4 {
							require.False(t, s.Apply(&st, Event{Time: time.UnixMicro(events[j].us), Values: events[j].vals, Partition: int32(entity % 2), Offset: int64(j)}))
						}
					}
				}
				maxT, ok := st.MaxEventTime()
				require.True(t, ok)
				var times []time.Time
				for _, d := range []time.Duration{0, time.Microsecond, 59 * time.Second, 25 * time.Hour} {
					times = append(times, maxT.Add(d))
				}
				next := maxT.Truncate(hop).Add(hop)
				times = append(times, next, next.Add(-time.Microsecond))
				for _, w := range v.Aggregations {
					for _, d := range []time.Duration{-time.Microsecond, 0, time.Microsecond} {
						if at := next.Add(w.Window.Std() + d); !at.Before(maxT) {
							times = append(times, at)
						}
					}
				}
				before := st.Tiles()
				pruned := st
				pruned.idx, pruned.parts = slices.Clone(st.idx), slices.Clone(st.parts)
				s.Prune(&pruned)
				require.LessOrEqual(t, pruned.Tiles(), before)
				enc := s.Encode(nil, &pruned)
				dec, err := s.Decode(enc)
				require.NoError(t, err)
				require.Equal(t, enc, s.Encode(nil, dec))
				require.Equal(t, &pruned, dec)

				got, gotPruned, gotDecoded, gotEncoded := make([]any, len(s.aggs)), make([]any, len(s.aggs)), make([]any, len(s.aggs)), make([]any, len(s.aggs))
				for _, at := range times {
					msg := fmt.Sprintf("entity %d at max+%s", entity, at.Sub(maxT))
					want, scale := reference(v, src, applied, at)
					s.Evaluate(&st, at, got)
					requireMatches(t, v, want, got, scale, msg)
					s.Evaluate(&pruned, at, gotPruned)
					require.Equal(t, got, gotPruned, msg+" (pruned)")
					s.Evaluate(dec, at, gotDecoded)
					require.Equal(t, got, gotDecoded, msg+" (decoded)")
					et, err := s.EvaluateEncoded(enc, at, gotEncoded)
					require.NoError(t, err)
					require.Equal(t, maxT, et)
					require.Equal(t, got, gotEncoded, msg+" (encoded)")
				}
			}
		})
	}
}

// TestInTimeOrderAtAnyTime applies events in time order and evaluates
// after each group of events with one time, at a time before the next:
// the tiles then hold no event later than the evaluation time, and the
// values equal the reference's.
func TestInTimeOrderAtAnyTime(t *testing.T) {
	for _, rc := range referenceCases {
		t.Run("hop="+rc.hop, func(t *testing.T) {
			defs := testDefs(t, map[string]string{"v": rc.hop}, map[string][]string{"v": rc.windows}, allFunctions)
			v := defs.FeatureView("v")
			src := defs.Source(v.Source)
			s := testSpec(t, defs, "v")
			rng := rand.New(rand.NewPCG(uint64(v.Hop), 11))
			events := randomEvents(rng, 500, rc.start, 30*time.Hour, v.Hop.Std())
			sort.SliceStable(events, func(i, j int) bool { return events[i].us < events[j].us })
			var st State
			got := make([]any, len(s.aggs))
			for i, e := range events {
				s.Apply(&st, Event{Time: time.UnixMicro(e.us), Values: e.vals, Offset: int64(i)})
				if i+1 < len(events) && events[i+1].us == e.us {
					continue
				}
				at := e.us
				if i+1 < len(events) {
					at += rng.Int64N(events[i+1].us - e.us)
				} else {
					at += rng.Int64N(int64(48 * time.Hour / time.Microsecond))
				}
				want, scale := reference(v, src, events[:i+1], time.UnixMicro(at))
				s.Evaluate(&st, time.UnixMicro(at), got)
				requireMatches(t, v, want, got, scale, fmt.Sprintf("after event %d, at %s", i, time.UnixMicro(at).UTC()))
				if i%50 == 0 {
					s.Prune(&st)
				}
			}
		})
	}
}

// TestReplayAfterCrash: a materializer that crashes after writing the
// state at some event and replays from an earlier offset ends with the
// same state as one that never crashed.
func TestReplayAfterCrash(t *testing.T) {
	defs := testDefs(t, map[string]string{"v": "1m"}, map[string][]string{"v": {"1m", "1h"}}, allFunctions)
	s := testSpec(t, defs, "v")
	rng := rand.New(rand.NewPCG(3, 5))
	events := randomEvents(rng, 600, t0, 6*time.Hour, time.Minute)
	ev := func(i int) Event {
		return Event{Time: time.UnixMicro(events[i].us), Values: events[i].vals, Partition: int32(i % 3), Offset: int64(i / 3)}
	}
	var clean State
	for i := range events {
		require.True(t, s.Apply(&clean, ev(i)))
	}
	s.Prune(&clean)

	var st State
	var durable []byte
	for i := range 400 {
		s.Apply(&st, ev(i))
		if i == 350 {
			s.Prune(&st)
			durable = s.Encode(nil, &st)
		}
	}
	// Crash: the last durable row is the one written at event 350; the
	// committed offsets are older still, so the stream replays from 300.
	restored, err := s.Decode(durable)
	require.NoError(t, err)
	for i := 300; i < len(events); i++ {
		require.Equal(t, i > 350, s.Apply(restored, ev(i)), "event %d", i)
	}
	s.Prune(restored)
	require.Equal(t, s.Encode(nil, &clean), s.Encode(nil, restored))
}

// TestTooOldEventsAreDropped: an event older than any lookup at or after
// the max event time reads is not kept, but its offset is.
func TestTooOldEventsAreDropped(t *testing.T) {
	defs := testDefs(t, map[string]string{"v": "1m"}, map[string][]string{"v": {"10m"}}, []string{"count"})
	s := testSpec(t, defs, "v")
	var st State
	require.True(t, s.Apply(&st, event(t0, 0, nil)))
	require.True(t, s.Apply(&st, event(t0.Add(-10*time.Minute), 1, nil)), "the oldest tile a lookup at the max event time reads")
	require.Equal(t, 2, st.Tiles())
	require.True(t, s.Apply(&st, event(t0.Add(-10*time.Minute-time.Microsecond), 2, nil)), "its offset is recorded")
	require.Equal(t, 2, st.Tiles())
	off, _ := st.Offset(0)
	require.Equal(t, int64(2), off)
	require.False(t, s.Apply(&st, event(t0.Add(-11*time.Minute), -1, nil)), "a pushed row too old changes nothing")

	require.True(t, s.Apply(&st, event(t0.Add(time.Minute), 3, nil)))
	s.Prune(&st)
	require.Equal(t, 2, st.Tiles(), "the tile at -10m is no longer read")
}

func BenchmarkApply(b *testing.B) {
	defs := testDefs(b, map[string]string{"v": "1m"}, map[string][]string{"v": {"1h", "1d"}}, []string{"count", "sum fare", "avg fare", "max tip", "last city"})
	s := testSpec(b, defs, "v")
	ev := event(t0, 0, map[int]any{colFare: 12.5, colTip: float32(1), colCity: "paris"})
	var st State
	b.ReportAllocs()
	for i := range b.N {
		ev.Time = t0.Add(time.Duration(i) * time.Second)
		ev.Offset = int64(i)
		s.Apply(&st, ev)
		if i%1000 == 0 {
			s.Prune(&st)
		}
	}
}

// BenchmarkEvaluateEncoded evaluates a day of minute tiles (1440 tiles),
// as a lookup of one entity does.
func BenchmarkEvaluateEncoded(b *testing.B) {
	defs := testDefs(b, map[string]string{"v": "1m"}, map[string][]string{"v": {"1h", "1d"}}, []string{"count", "sum fare", "avg fare", "max tip", "last city"})
	s := testSpec(b, defs, "v")
	var st State
	for i := range 1440 * 3 {
		s.Apply(&st, event(t0.Add(time.Duration(i)*20*time.Second), int64(i), map[int]any{colFare: float64(i), colTip: float32(1), colCity: "paris"}))
	}
	s.Prune(&st)
	row := s.Encode(nil, &st)
	b.Logf("%d tiles, %d bytes", st.Tiles(), len(row))
	out := make([]any, len(s.aggs))
	at := t0.Add(24 * time.Hour)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.EvaluateEncoded(row, at, out); err != nil {
			b.Fatal(err)
		}
	}
}
