package offline

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiverdata/quiver/internal/testutil/parquettest"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

// The property tests generate random repositories and entity tables, run
// the training set through DuckDB, and compare every value with a
// brute-force reference written as plain loops over the rows.

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// at returns t0 plus n minutes; a small set of instants makes exact ties
// and ttl boundaries common.
func at(n int) *time.Time { t := t0.Add(time.Duration(n) * time.Minute); return &t }

type driverRow struct {
	DriverID       *int64     `parquet:"driver_id,optional"`
	EventTimestamp *time.Time `parquet:"event_timestamp,optional,timestamp(microsecond:utc)"`
	Created        *time.Time `parquet:"created,optional,timestamp(microsecond:utc)"`
	ConversionRate float32    `parquet:"conversion_rate"`
	Trips          int64      `parquet:"trips"`
	Emb            []float32  `parquet:"emb,list"`
}

type riderRow struct {
	RiderID *string    `parquet:"rider_id,optional"`
	TS      *time.Time `parquet:"ts,optional,timestamp(microsecond:local)"`
	Rating  *float64   `parquet:"rating,optional"`
	Tier    string     `parquet:"tier"`
}

type pairRow struct {
	DriverID *int64     `parquet:"driver_id,optional"`
	RiderID  *string    `parquet:"rider_id,optional"`
	TS       *time.Time `parquet:"ts,optional,timestamp(millisecond:local)"`
	Trips    int32      `parquet:"trips_together"`
}

type entityRowUTC struct {
	DriverID *int64     `parquet:"driver_id,optional"`
	Rider    *string    `parquet:"rider,optional"`
	TS       *time.Time `parquet:"event_timestamp,optional,timestamp(microsecond:utc)"`
	Label    int64      `parquet:"label"`
}

type entityRowNaive struct {
	DriverID *int64     `parquet:"driver_id,optional"`
	Rider    *string    `parquet:"rider,optional"`
	TS       *time.Time `parquet:"event_timestamp,optional,timestamp(microsecond:local)"`
	Label    int64      `parquet:"label"`
}

const pitDefs = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
  - {name: rider, join_keys: [{name: rider_id, type: string}]}
sources:
  - name: driver_src
    kind: parquet
    path: drivers/*.parquet
    timestamp_field: event_timestamp
    created_timestamp_field: created
    field_mapping: {conversion_rate: conv}
  - {name: rider_src, kind: parquet, path: riders.parquet, timestamp_field: ts}
  - {name: pair_src, kind: parquet, path: pairs.parquet, timestamp_field: ts}
feature_views:
  - name: drivers
    entities: [driver]
    source: driver_src
    ttl: %s
    features:
      - {name: conv, type: float32}
      - {name: trips, type: int64}
      - {name: emb, type: "list<float32>"}
  - name: riders
    entities: [rider]
    source: rider_src
    ttl: %s
    features:
      - {name: rating, type: float64}
      - {name: tier, type: string}
  - name: pairs
    entities: [driver, rider]
    source: pair_src
    features:
      - {name: trips_together, type: int64}
`

// scenario is one random repository and entity table.
type scenario struct {
	dir           string
	defs          *registry.Definitions
	driverTTL     time.Duration
	riderTTL      time.Duration
	drivers       [][]driverRow // per file, files in lexical order
	riders        []riderRow
	pairs         []pairRow
	entities      []entityRowUTC
	naiveEntities bool
	entityFiles   int
	// asOf, when set, leaves out the rows not known then: created after
	// it, or without a created time, with an event time after it.
	asOf *time.Time
	// asOfRowTime makes each entity row's own time its cutoff
	// (Request.AsOfColumn: event_timestamp).
	asOfRowTime bool
}

func ptr[T any](v T) *T { return &v }

func newScenario(t *testing.T, seed uint64, size int) *scenario {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	nKeys := 1 + rng.IntN(max(2, size/4))
	nTimes := 2 + rng.IntN(12)
	ttls := []time.Duration{0, time.Minute, 2 * time.Minute, 5 * time.Minute, time.Hour}
	s := &scenario{dir: t.TempDir(), driverTTL: ttls[rng.IntN(len(ttls))], riderTTL: ttls[rng.IntN(len(ttls))],
		naiveEntities: rng.IntN(2) == 0, entityFiles: 1 + rng.IntN(2)}
	key := func() *int64 {
		if rng.IntN(20) == 0 {
			return nil
		}
		return ptr(int64(rng.IntN(nKeys)))
	}
	rider := func() *string {
		if rng.IntN(20) == 0 {
			return nil
		}
		return ptr(fmt.Sprintf("r%d", rng.IntN(nKeys)))
	}
	when := func() *time.Time {
		if rng.IntN(25) == 0 {
			return nil
		}
		return at(rng.IntN(nTimes))
	}
	files := 1 + rng.IntN(3)
	s.drivers = make([][]driverRow, files)
	for f := range files {
		for range rng.IntN(size + 1) {
			var created *time.Time
			if rng.IntN(3) > 0 {
				created = at(rng.IntN(3))
			}
			emb := make([]float32, rng.IntN(3))
			for i := range emb {
				emb[i] = float32(rng.IntN(100))
			}
			s.drivers[f] = append(s.drivers[f], driverRow{DriverID: key(), EventTimestamp: when(), Created: created,
				ConversionRate: float32(rng.IntN(1000)) / 8, Trips: int64(rng.IntN(1000)), Emb: emb})
		}
	}
	for range 1 + rng.IntN(size+1) {
		var rating *float64
		if rng.IntN(5) > 0 {
			rating = ptr(float64(rng.IntN(50)) / 10)
		}
		s.riders = append(s.riders, riderRow{RiderID: rider(), TS: when(), Rating: rating, Tier: fmt.Sprintf("t%d", rng.IntN(4))})
	}
	for range 1 + rng.IntN(size+1) {
		s.pairs = append(s.pairs, pairRow{DriverID: key(), RiderID: rider(), TS: when(), Trips: int32(rng.IntN(100))})
	}
	for i := range 1 + rng.IntN(size+1) {
		s.entities = append(s.entities, entityRowUTC{DriverID: key(), Rider: rider(), TS: when(), Label: int64(i)})
	}
	// Duplicate some entity rows.
	for i := 0; i < len(s.entities)/5; i++ {
		e := s.entities[rng.IntN(len(s.entities))]
		e.Label = int64(len(s.entities))
		s.entities = append(s.entities, e)
	}
	s.write(t)
	return s
}

func (s *scenario) write(t *testing.T) {
	data := filepath.Join(s.dir, "data")
	require.NoError(t, os.MkdirAll(filepath.Join(data, "drivers"), 0o755))
	for f, rows := range s.drivers {
		// An empty file still has the schema; names sort in file order.
		require.NoError(t, parquettest.Write(filepath.Join(data, "drivers", fmt.Sprintf("part-%02d.parquet", f)), rows))
	}
	require.NoError(t, parquettest.Write(filepath.Join(data, "riders.parquet"), s.riders))
	require.NoError(t, parquettest.Write(filepath.Join(data, "pairs.parquet"), s.pairs))
	// The entity table, split over files when asked.
	per := (len(s.entities) + s.entityFiles - 1) / s.entityFiles
	for f := range s.entityFiles {
		lo, hi := min(f*per, len(s.entities)), min((f+1)*per, len(s.entities))
		name := filepath.Join(s.dir, fmt.Sprintf("entities-%d.parquet", f))
		if s.naiveEntities {
			rows := make([]entityRowNaive, 0, hi-lo)
			for _, e := range s.entities[lo:hi] {
				rows = append(rows, entityRowNaive(e))
			}
			require.NoError(t, parquettest.Write(name, rows))
		} else {
			require.NoError(t, parquettest.Write(name, s.entities[lo:hi]))
		}
	}
	defs, errs := registry.ParseDefinitions("pit", []string{"f.yaml"}, map[string][]byte{
		"f.yaml": fmt.Appendf(nil, pitDefs, registry.Duration(s.driverTTL), registry.Duration(s.riderTTL))})
	require.NoError(t, errs.Err())
	s.defs = defs
}

// --- the reference ---

type candidate struct {
	ts, created *time.Time
	file, row   int
}

// later reports whether a wins over b by rule 2.
func later(a, b candidate) bool {
	if !a.ts.Equal(*b.ts) {
		return a.ts.After(*b.ts)
	}
	ac, bc := a.created, b.created
	switch {
	case ac == nil && bc != nil:
		return false
	case ac != nil && bc == nil:
		return true
	case ac != nil && bc != nil && !ac.Equal(*bc):
		return ac.After(*bc)
	}
	if a.file != b.file {
		return a.file > b.file
	}
	return a.row > b.row
}

func eligible(c candidate, T *time.Time, ttl time.Duration) bool {
	if T == nil || c.ts == nil || c.ts.After(*T) {
		return false
	}
	return ttl == 0 || !c.ts.Before(T.Add(-ttl))
}

// known reports whether a row was known at asOf (nil: always).
func known(c candidate, asOf *time.Time) bool {
	if asOf == nil {
		return true
	}
	k := c.created
	if k == nil {
		k = c.ts
	}
	return k != nil && !k.After(*asOf)
}

// expected computes, for each entity row, the features by brute force.
func (s *scenario) expected() []map[string]any {
	out := make([]map[string]any, len(s.entities))
	for i, e := range s.entities {
		cutoff := s.asOf
		if s.asOfRowTime {
			cutoff = e.TS
		}
		row := map[string]any{"conv": nil, "trips": nil, "emb": nil, "rating": nil, "tier": nil, "trips_together": nil}
		var best *candidate
		var bestRow driverRow
		for f, rows := range s.drivers {
			for r, d := range rows {
				c := candidate{ts: d.EventTimestamp, created: d.Created, file: f, row: r}
				if e.DriverID == nil || d.DriverID == nil || *d.DriverID != *e.DriverID || !eligible(c, e.TS, s.driverTTL) || !known(c, cutoff) {
					continue
				}
				if best == nil || later(c, *best) {
					best, bestRow = &c, d
				}
			}
		}
		if best != nil {
			row["conv"], row["trips"] = bestRow.ConversionRate, bestRow.Trips
			emb := bestRow.Emb
			if emb == nil {
				emb = []float32{}
			}
			row["emb"] = emb
		}
		best = nil
		var bestRider riderRow
		for r, d := range s.riders {
			c := candidate{ts: d.TS, row: r}
			if e.Rider == nil || d.RiderID == nil || *d.RiderID != *e.Rider || !eligible(c, e.TS, s.riderTTL) || !known(c, cutoff) {
				continue
			}
			if best == nil || later(c, *best) {
				best, bestRider = &c, d
			}
		}
		if best != nil {
			if bestRider.Rating != nil {
				row["rating"] = *bestRider.Rating
			}
			row["tier"] = bestRider.Tier
		}
		best = nil
		var bestPair pairRow
		for r, d := range s.pairs {
			c := candidate{ts: d.TS, row: r}
			if e.Rider == nil || e.DriverID == nil || d.RiderID == nil || d.DriverID == nil ||
				*d.RiderID != *e.Rider || *d.DriverID != *e.DriverID || !eligible(c, e.TS, 0) || !known(c, cutoff) {
				continue
			}
			if best == nil || later(c, *best) {
				best, bestPair = &c, d
			}
		}
		if best != nil {
			row["trips_together"] = int64(bestPair.Trips)
		}
		out[i] = row
	}
	return out
}

// --- running it ---

func (s *scenario) request(entities Entities) *Request {
	return &Request{
		Defs:       s.defs,
		Entities:   entities,
		Features:   []string{"drivers:*", "riders:rating", "riders:tier", "pairs:trips_together"},
		JoinKeyMap: map[string]string{"rider_id": "rider"},
	}
}

func openEngine(t testing.TB, dataRoot string) *Engine {
	eng, err := Open(Options{DataRoot: dataRoot, Threads: 2})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, eng.Close()) })
	return eng
}

// readAll collects a reader's rows as maps of Go values.
func readAll(t testing.TB, rr array.RecordReader) (*arrow.Schema, []map[string]any) {
	t.Helper()
	defer rr.Release()
	var rows []map[string]any
	for rr.Next() {
		rec := rr.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			row := map[string]any{}
			for c, f := range rec.Schema().Fields() {
				row[f.Name] = cellValue(rec.Column(c), i)
			}
			rows = append(rows, row)
		}
	}
	require.NoError(t, rr.Err())
	return rr.Schema(), rows
}

func cellValue(a arrow.Array, i int) any {
	if a.IsNull(i) {
		return nil
	}
	switch c := a.(type) {
	case *array.Int64:
		return c.Value(i)
	case *array.Int32:
		return int64(c.Value(i))
	case *array.Float32:
		return c.Value(i)
	case *array.Float64:
		return c.Value(i)
	case *array.String:
		return strings.Clone(c.Value(i)) // the value aliases the batch's memory

	case *array.LargeString:
		return strings.Clone(c.Value(i))
	case *array.Date32:
		return c.Value(i).ToTime()
	case *array.Boolean:
		return c.Value(i)
	case *array.Binary:
		return bytes.Clone(c.Value(i))
	case *array.Timestamp:
		unit := c.DataType().(*arrow.TimestampType).Unit
		return c.Value(i).ToTime(unit).UTC()
	case *array.List:
		start, end := c.ValueOffsets(i)
		vals := c.ListValues()
		switch v := vals.(type) {
		case *array.Float32:
			return append([]float32{}, v.Float32Values()[start:end]...)
		}
		out := []any{}
		for j := start; j < end; j++ {
			out = append(out, cellValue(vals, int(j)))
		}
		return out
	}
	panic(fmt.Sprintf("no value for %T", a))
}

func (s *scenario) check(t *testing.T, rows []map[string]any) {
	t.Helper()
	want := s.expected()
	require.Len(t, rows, len(s.entities), "one output row per input row")
	for i, e := range s.entities {
		got := rows[i]
		require.Equal(t, e.Label, got["label"], "row %d: input order and carried columns", i)
		require.Equal(t, derefAny(e.DriverID), got["driver_id"], "row %d", i)
		require.Equal(t, derefAny(e.Rider), got["rider"], "row %d", i)
		if e.TS == nil {
			require.Nil(t, got["event_timestamp"], "row %d", i)
		} else {
			require.Equal(t, *e.TS, got["event_timestamp"], "row %d", i)
		}
		for k, v := range want[i] {
			require.Equal(t, v, got[k], "row %d (label %d, driver %v, rider %v, T %v) feature %s\nscenario ttl driver=%v rider=%v",
				i, e.Label, derefAny(e.DriverID), derefAny(e.Rider), e.TS, k, s.driverTTL, s.riderTTL)
		}
	}
}

// checkRun builds req's training set on eng and checks it against the
// reference.
func (s *scenario) checkRun(t *testing.T, eng *Engine, req *Request) {
	t.Helper()
	rr, err := eng.TrainingSet(context.Background(), req)
	require.NoError(t, err)
	_, rows := readAll(t, rr)
	s.check(t, rows)
}

func derefAny[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestPointInTimeMatchesReference(t *testing.T) {
	ctx := context.Background()
	sizes := []int{3, 10, 40}
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := range seeds {
		size := sizes[seed%len(sizes)]
		if seed%10 == 9 {
			size = 400
		}
		t.Run(fmt.Sprintf("seed%d_size%d", seed, size), func(t *testing.T) {
			s := newScenario(t, uint64(seed), size)
			eng := openEngine(t, filepath.Join(s.dir, "data"))
			rr, err := eng.TrainingSet(ctx, s.request(EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))))
			require.NoError(t, err)
			_, rows := readAll(t, rr)
			s.check(t, rows)
		})
	}
}

// TestArrowEntitiesMatchParquetEntities feeds the same entity table as an
// Arrow stream (in small batches) and compares with the reference.
func TestArrowEntitiesMatchReference(t *testing.T) {
	ctx := context.Background()
	for seed := range 6 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := newScenario(t, uint64(100+seed), 30)
			eng := openEngine(t, filepath.Join(s.dir, "data"))
			rr, err := eng.TrainingSet(ctx, s.request(EntitiesFromArrow(s.arrowEntities(t, 7))))
			require.NoError(t, err)
			_, rows := readAll(t, rr)
			s.check(t, rows)
		})
	}
}

func (s *scenario) arrowEntities(t *testing.T, batch int) array.RecordReader {
	tsType := &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	if s.naiveEntities {
		tsType = &arrow.TimestampType{Unit: arrow.Microsecond}
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "rider", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "event_timestamp", Type: tsType, Nullable: true},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	var recs []arrow.RecordBatch
	for lo := 0; lo < len(s.entities); lo += batch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		for _, e := range s.entities[lo:min(lo+batch, len(s.entities))] {
			if e.DriverID == nil {
				b.Field(0).AppendNull()
			} else {
				b.Field(0).(*array.Int64Builder).Append(*e.DriverID)
			}
			if e.Rider == nil {
				b.Field(1).AppendNull()
			} else {
				b.Field(1).(*array.StringBuilder).Append(*e.Rider)
			}
			if e.TS == nil {
				b.Field(2).AppendNull()
			} else {
				b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(e.TS.UnixMicro()))
			}
			b.Field(3).(*array.Int64Builder).Append(e.Label)
		}
		recs = append(recs, b.NewRecordBatch())
		b.Release()
	}
	rr, err := array.NewRecordReader(schema, recs)
	require.NoError(t, err)
	for _, r := range recs {
		r.Release()
	}
	t.Cleanup(rr.Release)
	return rr
}
