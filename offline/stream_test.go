package offline

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quiverdata/quiver/internal/testutil/parquettest"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/streamlog"
	"github.com/quiverdata/quiver/value"
)

// The window property test logs random events through streamlog, builds
// a training set over a view with every aggregation function, and compares
// each value with rule 5 computed by plain loops over the events.

// The events' schema, in order.
var windowFields = []*registry.Field{
	{Name: "driver_id", Type: registry.TypeInt64},
	{Name: "ts", Type: registry.TypeTimestamp},
	{Name: "i", Type: registry.ValueType{Elem: registry.Int32}},
	{Name: "l", Type: registry.TypeInt64},
	{Name: "f", Type: registry.ValueType{Elem: registry.Float64}},
	{Name: "g", Type: registry.ValueType{Elem: registry.Float32}},
	{Name: "s", Type: registry.TypeString},
	{Name: "p", Type: registry.TypeTimestamp},
	{Name: "tags", Type: registry.ValueType{Elem: registry.Int64, List: true}},
}

// windowAggs lists the aggregations of the view: every function over every
// column it accepts.
func windowAggs() []registry.Aggregation {
	var out []registry.Aggregation
	add := func(fn string, cols ...string) {
		for _, c := range cols {
			out = append(out, registry.Aggregation{Function: fn, Column: c})
		}
	}
	add(registry.AggCount, "", "s", "f")
	add(registry.AggSum, "i", "l", "f", "g")
	add(registry.AggAvg, "i", "l", "f", "g")
	add(registry.AggMin, "i", "l", "f", "g", "p")
	add(registry.AggMax, "i", "l", "f", "g", "p")
	add(registry.AggLast, "i", "l", "f", "g", "s", "p", "tags")
	return out
}

type windowEvent struct {
	key   *int64
	ts    *time.Time
	vals  []any // one per windowFields, nil for null
	order int   // position in the log's source order
}

type windowEntity struct {
	DriverID *int64     `parquet:"driver_id,optional"`
	TS       *time.Time `parquet:"event_timestamp,optional,timestamp(microsecond:utc)"`
	Label    int64      `parquet:"label"`
}

type windowScenario struct {
	dir      string
	defs     *registry.Definitions
	hop      time.Duration
	aggs     []registry.Aggregation // with names, windows and types
	events   []windowEvent
	entities []windowEntity
	// asOf, when set, leaves out the events after it (the log has no
	// created times: an event is known at its event time).
	asOf *time.Time
}

func newWindowScenario(t *testing.T, seed uint64) *windowScenario {
	return newWindowScenarioLogs(t, seed)
}

// newWindowScenarioLogs is newWindowScenario that also appends every
// batch to the logs open, opened on the view "w" with windowFields.
func newWindowScenarioLogs(t *testing.T, seed uint64, open ...func() *streamlog.Log) *windowScenario {
	rng := rand.New(rand.NewPCG(seed, seed*13+5))
	hops := []time.Duration{time.Minute, 7 * time.Minute, time.Hour, 90 * time.Second}
	s := &windowScenario{dir: t.TempDir(), hop: hops[rng.IntN(len(hops))]}
	hopUS := s.hop.Microseconds()
	// Instants near tile boundaries: k*hop plus {-1µs, 0, +1µs, a random
	// offset}, around an origin that is sometimes before 1970, so that
	// floor's rounding, both window ends and ties are all exercised.
	origin := []int64{time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC).UnixMicro(), -3 * hopUS, -1}[rng.IntN(3)]
	origin -= floorMod(origin, hopUS)
	span := int64(2 + rng.IntN(12)) // tiles
	instant := func() time.Time {
		k := int64(rng.IntN(int(span))) - 1
		var off int64
		switch rng.IntN(4) {
		case 0:
			off = -1
		case 1:
			off = 0
		case 2:
			off = 1
		default:
			off = rng.Int64N(hopUS)
		}
		return time.UnixMicro(origin + k*hopUS + off).UTC()
	}
	nKeys := 1 + rng.IntN(5)
	key := func() *int64 {
		if rng.IntN(15) == 0 {
			return nil
		}
		return ptr(int64(rng.IntN(nKeys)))
	}
	// Windows of 1 to 4 hops, each aggregation picking one.
	windows := []time.Duration{s.hop, 2 * s.hop, 4 * s.hop}
	for i, a := range windowAggs() {
		a.Window = registry.Duration(windows[rng.IntN(len(windows))])
		a.Name = fmt.Sprintf("a%02d_%s_%s", i, a.Function, a.Column)
		s.aggs = append(s.aggs, a)
	}

	// Events in batches of random sizes, logged in batch order. Times
	// repeat (ties) and come in any order.
	l, err := streamlog.Open(s.dir, "w", windowFields)
	require.NoError(t, err)
	mirrors := make([]*streamlog.Log, len(open))
	for i, o := range open {
		mirrors[i] = o()
	}
	type logged struct {
		date  string
		batch int
		pos   int
		ev    int
	}
	var order []logged
	for b := range 1 + rng.IntN(4) {
		var batch []streamlog.Event
		for pos := range rng.IntN(60) {
			ev := windowEvent{key: key(), vals: make([]any, len(windowFields))}
			if rng.IntN(30) > 0 {
				ev.ts = ptr(instant())
			}
			null := func() bool { return rng.IntN(6) == 0 }
			if ev.key != nil {
				ev.vals[0] = *ev.key
			}
			if ev.ts != nil {
				ev.vals[1] = *ev.ts
			}
			if !null() {
				ev.vals[2] = int32(rng.IntN(2000) - 1000)
			}
			if !null() {
				v := rng.Int64N(1000) - 500
				if rng.IntN(10) == 0 { // sums that wrap
					v = math.MaxInt64 - rng.Int64N(3)
				}
				ev.vals[3] = v
			}
			if !null() {
				v := rng.NormFloat64() * 1e3
				if rng.IntN(40) == 0 {
					v = math.NaN()
				}
				ev.vals[4] = v
			}
			if !null() {
				ev.vals[5] = float32(rng.IntN(1000)) / 7
			}
			if !null() {
				ev.vals[6] = fmt.Sprintf("s%d", rng.IntN(100))
			}
			if !null() {
				ev.vals[7] = instant()
			}
			if !null() {
				tags := make([]int64, rng.IntN(3))
				for j := range tags {
					tags[j] = rng.Int64N(10)
				}
				ev.vals[8] = tags
			}
			le := streamlog.Event{Values: ev.vals, Offset: int64(len(s.events))}
			if ev.ts != nil {
				le.Time = *ev.ts
			}
			batch = append(batch, le)
			order = append(order, logged{date: le.Time.UTC().Format(time.DateOnly), batch: b, pos: pos, ev: len(s.events)})
			s.events = append(s.events, ev)
		}
		_, err := l.Append(streamlog.Batch{Stream: fmt.Sprintf("b%02d", b), Events: batch})
		require.NoError(t, err)
		for _, m := range mirrors {
			_, err := m.Append(streamlog.Batch{Stream: fmt.Sprintf("b%02d", b), Events: batch})
			require.NoError(t, err)
		}
	}
	// The log's source order: files by date directory, then batch (the
	// batch names sort as the batches were logged), rows in batch order.
	slices.SortFunc(order, func(a, b logged) int {
		if c := strings.Compare(a.date, b.date); c != 0 {
			return c
		}
		if a.batch != b.batch {
			return a.batch - b.batch
		}
		return a.pos - b.pos
	})
	for i, o := range order {
		s.events[o.ev].order = i
	}

	for i := range 1 + rng.IntN(80) {
		e := windowEntity{DriverID: key(), Label: int64(i)}
		if rng.IntN(25) > 0 {
			e.TS = ptr(instant())
		}
		s.entities = append(s.entities, e)
	}
	for i := 0; i < len(s.entities)/6; i++ { // duplicates
		e := s.entities[rng.IntN(len(s.entities))]
		e.Label = int64(len(s.entities))
		s.entities = append(s.entities, e)
	}
	require.NoError(t, parquettest.Write(filepath.Join(s.dir, "entities.parquet"), s.entities))

	var y strings.Builder
	fmt.Fprintf(&y, "entities: [{name: driver, join_keys: [{name: driver_id, type: int64}]}]\n")
	fmt.Fprintf(&y, "sources:\n  - name: ev\n    kind: push\n    timestamp_field: ts\n    schema:\n")
	for _, f := range windowFields {
		fmt.Fprintf(&y, "      - {name: %s, type: %q}\n", f.Name, f.Type)
	}
	fmt.Fprintf(&y, "feature_views:\n  - name: w\n    entities: [driver]\n    source: ev\n    hop: %s\n    aggregations:\n", registry.Duration(s.hop))
	for _, a := range s.aggs {
		fmt.Fprintf(&y, "      - {name: %s, function: %s, column: %q, window: %s}\n", a.Name, a.Function, a.Column, a.Window)
	}
	defs, errs := registry.ParseDefinitions("windows", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(y.String())})
	require.NoError(t, errs.Err(), y.String())
	s.defs = defs
	for i, a := range defs.FeatureView("w").Aggregations {
		require.Equal(t, s.aggs[i].Name, a.Name)
		s.aggs[i].Type = a.Type
	}
	return s
}

func floorMod(a, m int64) int64 { return ((a % m) + m) % m }

// expected computes rule 5 for entity row e and aggregation a by brute
// force over every event.
func (s *windowScenario) expected(e windowEntity, a registry.Aggregation) any {
	var in []windowEvent
	if e.DriverID != nil && e.TS != nil {
		T := e.TS.UnixMicro()
		hop := s.hop.Microseconds()
		lo := T - floorMod(T, hop) - a.Window.Std().Microseconds()
		for _, ev := range s.events {
			if ev.key == nil || *ev.key != *e.DriverID || ev.ts == nil || s.asOf != nil && ev.ts.After(*s.asOf) {
				continue
			}
			if us := ev.ts.UnixMicro(); lo <= us && us <= T {
				in = append(in, ev)
			}
		}
	}
	col := slices.IndexFunc(windowFields, func(f *registry.Field) bool { return f.Name == a.Column })
	var vals []windowEvent // the events whose column is not null
	for _, ev := range in {
		if col < 0 || ev.vals[col] != nil {
			vals = append(vals, ev)
		}
	}
	if a.Function == registry.AggCount {
		return int64(len(vals))
	}
	if len(vals) == 0 {
		return nil
	}
	typ := windowFields[col].Type
	switch a.Function {
	case registry.AggSum, registry.AggAvg:
		var i int64
		var f float64
		for _, ev := range vals {
			switch v := ev.vals[col].(type) {
			case int32:
				i += int64(v)
			case int64:
				i += v // wraps, as online
			case float32:
				f += float64(v)
			case float64:
				f += v
			}
		}
		isInt := typ.Elem == registry.Int32 || typ.Elem == registry.Int64
		switch {
		case a.Function == registry.AggSum && isInt:
			return i
		case a.Function == registry.AggSum:
			return f
		case isInt:
			return float64(i) / float64(len(vals))
		}
		return f / float64(len(vals))
	case registry.AggMin, registry.AggMax:
		best := vals[0].vals[col]
		for _, ev := range vals[1:] {
			if c := compareValues(ev.vals[col], best); (a.Function == registry.AggMin && c < 0) || (a.Function == registry.AggMax && c > 0) {
				best = ev.vals[col]
			}
		}
		return outputValue(best)
	case registry.AggLast:
		best := vals[0]
		for _, ev := range vals[1:] {
			if ev.ts.After(*best.ts) || ev.ts.Equal(*best.ts) && ev.order > best.order {
				best = ev
			}
		}
		return outputValue(best.vals[col])
	}
	panic(a.Function)
}

// compareValues orders values of one column, NaN above every number.
func compareValues(a, b any) int {
	switch x := a.(type) {
	case int32:
		return int(x) - int(b.(int32))
	case int64:
		y := b.(int64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case float32:
		return compareFloats(float64(x), float64(b.(float32)))
	case float64:
		return compareFloats(x, b.(float64))
	case time.Time:
		return x.Compare(b.(time.Time))
	}
	panic(fmt.Sprintf("%T", a))
}

func compareFloats(a, b float64) int {
	switch {
	case math.IsNaN(a) && math.IsNaN(b):
		return 0
	case math.IsNaN(a):
		return 1
	case math.IsNaN(b):
		return -1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// outputValue is v as readAll returns it.
func outputValue(v any) any {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case []int64:
		out := []any{}
		for _, y := range x {
			out = append(out, y)
		}
		return out
	}
	return v
}

func TestWindowsMatchReference(t *testing.T) {
	ctx := context.Background()
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := newWindowScenario(t, uint64(seed))
			eng := openEngine(t, s.dir)
			req := &Request{Defs: s.defs, Entities: EntitiesFromParquet(filepath.Join(s.dir, "entities.parquet")), Features: []string{"w:*"}}
			if seed%3 == 1 && len(s.events) > 0 {
				// As of one event's time: the later events are not known.
				if ts := s.events[len(s.events)/2].ts; ts != nil {
					s.asOf, req.AsOf = ts, *ts
				}
			}
			rr, err := eng.TrainingSet(ctx, req)
			require.NoError(t, err)
			schema, rows := readAll(t, rr)
			require.Len(t, rows, len(s.entities))
			for _, a := range s.aggs {
				f, ok := schema.FieldsByName(a.Name)
				require.True(t, ok, a.Name)
				require.True(t, arrow.TypeEqual(value.ArrowType(a.Type), f[0].Type), "%s: %s for %s", a.Name, f[0].Type, a.Type)
			}
			for i, e := range s.entities {
				got := rows[i]
				require.Equal(t, e.Label, got["label"], "row %d: input order", i)
				for _, a := range s.aggs {
					want := s.expected(e, a)
					msg := fmt.Sprintf("row %d (driver %v, T %v), %s over %s, hop %s", i, derefAny(e.DriverID), e.TS, a.Name, a.Window, s.hop)
					if w, ok := want.(float64); ok && a.Type.Elem == registry.Float64 {
						g, ok := got[a.Name].(float64)
						require.True(t, ok, "%s: got %v", msg, got[a.Name])
						requireClose(t, w, g, msg)
						continue
					}
					require.Equal(t, want, got[a.Name], msg)
				}
			}
		})
	}
}

// requireClose compares floats with a relative tolerance of 1e-9 (float
// sums depend on the order of addition); NaN equals NaN.
func requireClose(t *testing.T, want, got float64, msg string) {
	t.Helper()
	if math.IsNaN(want) || math.IsNaN(got) {
		require.True(t, math.IsNaN(want) && math.IsNaN(got), "%s: want %v, got %v", msg, want, got)
		return
	}
	tol := 1e-9 * max(math.Abs(want), math.Abs(got), 1e-300)
	require.LessOrEqual(t, math.Abs(want-got), tol, "%s: want %v, got %v", msg, want, got)
}

// TestStreamLogIgnoresUncommittedFiles: files in the log's directory that
// no manifest names (a batch whose commit was cut short, a temporary file)
// are never read, though a glob over the directory would read them.
func TestStreamLogIgnoresUncommittedFiles(t *testing.T) {
	ctx := context.Background()
	s := newWindowScenario(t, 7)
	eng := openEngine(t, s.dir)
	req := &Request{Defs: s.defs, Entities: EntitiesFromParquet(filepath.Join(s.dir, "entities.parquet")), Features: []string{"w:*"}}
	rr, err := eng.TrainingSet(ctx, req)
	require.NoError(t, err)
	_, before := readAll(t, rr)

	files, err := streamlog.Files(s.dir, "w")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	data, err := os.ReadFile(files[0])
	require.NoError(t, err)
	dir := filepath.Dir(files[0])
	orphan := filepath.Join(dir, "zz-p00000-00000000000000099999-00000000000000099999-0.parquet")
	require.NoError(t, os.WriteFile(orphan, data, 0o644))
	require.NoError(t, os.WriteFile(orphan+".tmp", data, 0o644))
	n, err := queryCount(t, eng, "SELECT count(*) FROM read_parquet("+quoteString(filepath.Join(dir, "*.parquet"))+")")
	require.NoError(t, err)
	require.Greater(t, n, int64(0), "a glob sees the orphan")

	rr, err = eng.TrainingSet(ctx, req)
	require.NoError(t, err)
	_, after := readAll(t, rr)
	requireSameRows(t, before, after)
}

// requireSameRows compares two training sets row by row; float64 values
// (sums and averages) compare with requireClose, since DuckDB's parallel
// sums may add in another order from one run to the next.
func requireSameRows(t *testing.T, want, got []map[string]any) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.Len(t, got[i], len(want[i]), "row %d", i)
		for k, w := range want[i] {
			msg := fmt.Sprintf("row %d, column %s", i, k)
			if wf, ok := w.(float64); ok {
				gf, ok := got[i][k].(float64)
				require.True(t, ok, "%s: got %v", msg, got[i][k])
				requireClose(t, wf, gf, msg)
				continue
			}
			require.Equal(t, fmt.Sprint(w), fmt.Sprint(got[i][k]), msg)
		}
	}
}

func queryCount(t *testing.T, eng *Engine, q string) (int64, error) {
	conn, err := eng.conn(context.Background())
	require.NoError(t, err)
	defer conn.Close()
	return queryInt(context.Background(), conn, q)
}

const streamDefs = `
entities: [{name: driver, join_keys: [{name: driver_id, type: int64}]}]
sources:
  - name: ev
    kind: push
    timestamp_field: ts
    schema:
      - {name: driver_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: n, type: int32}
      - {name: g, type: float32}
      - {name: p, type: timestamp}
      - {name: tags, type: "list<string>"}
feature_views:
  - name: latest
    entities: [driver]
    source: ev
    features: [{name: n, type: int32}, {name: tags, type: "list<string>"}]
  - name: w
    entities: [driver]
    source: ev
    hop: 5m
    aggregations:
      - {name: c, function: count, window: 10m}
      - {name: sum_n, function: sum, column: n, window: 10m}
      - {name: sum_g, function: sum, column: g, window: 5m}
      - {name: avg_n, function: avg, column: n, window: 10m}
      - {name: min_n, function: min, column: n, window: 10m}
      - {name: max_g, function: max, column: g, window: 10m}
      - {name: max_p, function: max, column: p, window: 10m}
      - {name: last_tags, function: last, column: tags, window: 10m}
`

type driverAt struct {
	DriverID *int64     `parquet:"driver_id,optional"`
	TS       *time.Time `parquet:"event_timestamp,optional,timestamp(microsecond:utc)"`
}

// TestStreamViewsThroughTheAPI: schema, explain, Parquet output and
// Latest over stream views, with and without logged events.
func TestStreamViewsThroughTheAPI(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	defs, errs := registry.ParseDefinitions("s", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(streamDefs)})
	require.NoError(t, errs.Err())
	t1 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	require.NoError(t, parquettest.Write(filepath.Join(dir, "entities.parquet"), []driverAt{
		{DriverID: ptr(int64(1)), TS: ptr(t1.Add(time.Minute))}, {DriverID: ptr(int64(2)), TS: ptr(t1)}}))
	eng := openEngine(t, dir)
	req := &Request{Defs: defs, Entities: EntitiesFromParquet(filepath.Join(dir, "entities.parquet")), Features: []string{"latest:*", "w:*"}, FullFeatureNames: true}

	wantSchema := func() map[string]arrow.DataType {
		out := map[string]arrow.DataType{}
		for _, v := range []string{"latest", "w"} {
			for _, f := range defs.FeatureView(v).OutputFeatures() {
				out[v+"__"+f.Name] = value.ArrowType(f.Type)
			}
		}
		return out
	}()
	check := func(t *testing.T, wantRows int64) {
		sch, err := eng.TrainingSetSchema(ctx, req)
		require.NoError(t, err)
		for name, typ := range wantSchema {
			f, ok := sch.FieldsByName(name)
			require.True(t, ok, name)
			require.True(t, arrow.TypeEqual(typ, f[0].Type), "%s: %s, want %s", name, f[0].Type, typ)
		}
		plan, err := eng.Explain(ctx, req, false)
		require.NoError(t, err)
		require.Contains(t, plan, "ASOF")
		out := filepath.Join(t.TempDir(), "train.parquet")
		n, err := eng.WriteParquet(ctx, req, out)
		require.NoError(t, err)
		require.Equal(t, int64(2), n)
		cols, rows, err := eng.Head(ctx, out, 10)
		require.NoError(t, err)
		require.Len(t, rows, 2)
		require.Equal(t, "w__c", cols[4])
		require.Equal(t, fmt.Sprint(wantRows), rows[0][4])
		require.Equal(t, "0", rows[1][4], "no events: count 0")
	}
	t.Run("empty log", func(t *testing.T) {
		check(t, 0)
		rr, err := eng.Latest(ctx, &LatestRequest{Defs: defs, View: "latest", End: t1})
		require.NoError(t, err)
		_, rows := readAll(t, rr)
		require.Empty(t, rows)
	})

	l, err := streamlog.Open(dir, "latest", defs.Source("ev").Schema)
	require.NoError(t, err)
	w, err := streamlog.Open(dir, "w", defs.Source("ev").Schema)
	require.NoError(t, err)
	events := []streamlog.Event{
		{Values: []any{int64(1), t1, int32(3), float32(1.5), t1, []string{"a"}}, Time: t1},
		{Values: []any{int64(1), t1.Add(time.Minute), nil, float32(2.5), nil, []string{"b", "c"}}, Time: t1.Add(time.Minute)},
	}
	for _, log := range []*streamlog.Log{l, w} {
		_, err = log.Append(streamlog.Batch{Stream: "push", Partition: 0, Events: events})
		require.NoError(t, err)
	}
	t.Run("logged", func(t *testing.T) {
		check(t, 2)
		rr, err := eng.Latest(ctx, &LatestRequest{Defs: defs, View: "latest", End: t1.Add(time.Hour)})
		require.NoError(t, err)
		_, rows := readAll(t, rr)
		require.Equal(t, []map[string]any{{"driver_id": int64(1), "n": nil, "tags": []any{"b", "c"}, LatestEventTimeColumn: t1.Add(time.Minute)}}, rows)
	})
	t.Run("latest of aggregations", func(t *testing.T) {
		_, err := eng.Latest(ctx, &LatestRequest{Defs: defs, View: "w", End: t1})
		require.ErrorIs(t, err, ErrInvalidRequest)
		require.ErrorContains(t, err, "view w has aggregations")
	})
}
