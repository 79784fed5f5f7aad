package online

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/aggregate"
	"github.com/quiverdata/quiver/internal/testutil/redistest"
	"github.com/quiverdata/quiver/registry"
)

const aggregateDefs = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
sources:
  - {name: s, kind: parquet, path: x.parquet, timestamp_field: ts}
  - name: trips
    kind: push
    timestamp_field: ts
    schema:
      - {name: driver_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: fare, type: float64}
      - {name: city, type: string}
feature_views:
  - name: stats
    entities: [driver]
    source: s
    ttl: 1h
    features: [{name: rate, type: float32}]
  - name: driver_trips
    entities: [driver]
    source: trips
    hop: 1m
    ttl: 1m    # does not apply to aggregations: the windows do
    aggregations:
      - {name: trips_1h, function: count, window: 1h}
      - {name: fare_sum_1h, function: sum, column: fare, window: 1h}
      - {name: fare_max_1d, function: max, column: fare, window: 1d}
      - {name: city_last, function: last, column: city, window: 1d}
on_demand_feature_views:
  - name: surge_fares
    inputs: [driver_trips]
    request: [{name: surge, type: float64}]
    features:
      - {name: surged, type: float64, expr: "driver_trips.fare_sum_1h * request.surge"}
`

// TestLookupAggregations writes tile rows as the stream does and looks
// them up with a fixed clock, beside a plain view and an on-demand view
// that reads an aggregation.
func TestLookupAggregations(t *testing.T) {
	ctx := context.Background()
	defs, errs := registry.ParseDefinitions("look", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(aggregateDefs)})
	require.NoError(t, errs.Err())
	store, err := OpenEmbedded(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	now := base.Add(30 * time.Second) // 12:00:30; the windows end with tile 12:00
	l := NewLookup(store, LookupOptions{Now: func() time.Time { return now }})

	view := defs.FeatureView("driver_trips")
	spec, err := aggregate.NewSpec(view, defs.Source("trips"))
	require.NoError(t, err)
	tiles := func(id int64, spec *aggregate.Spec, events ...aggregate.Event) Row {
		var st aggregate.State
		for i, ev := range events {
			ev.Offset = int64(i)
			spec.Apply(&st, ev)
		}
		spec.Prune(&st)
		return Row{Key: Key{Project: "look", View: "driver_trips", Entity: intKey(id)}, Value: spec.Encode(nil, &st)}
	}
	trip := func(at time.Time, fare, city any) aggregate.Event {
		return aggregate.Event{Time: at, Values: []any{int64(0), at, fare, city}}
	}
	// Driver 5's row was written for other aggregations (a window changed).
	changed := *view
	changed.Aggregations = append([]*registry.Aggregation{}, view.Aggregations...)
	wider := *changed.Aggregations[0]
	wider.Window = registry.Duration(2 * time.Hour)
	changed.Aggregations[0] = &wider
	oldSpec, err := aggregate.NewSpec(&changed, defs.Source("trips"))
	require.NoError(t, err)

	stats := NewCodec(defs.FeatureView("stats"))
	plain, err := stats.Encode(nil, base.Add(-time.Minute), []any{float32(0.25)})
	require.NoError(t, err)
	_, err = store.Write(ctx, []Row{
		// Driver 1: two trips in the last hour, one a day ago (in the 1d
		// window: floor(12:00:30) - 1d = 12:00 yesterday).
		tiles(1, spec,
			trip(base.Add(-24*time.Hour), 90.0, "lyon"),
			trip(base.Add(-30*time.Minute), 10.0, "paris"),
			trip(base.Add(-time.Hour), 5.5, nil), // on the 1h window's first microsecond
		),
		// Driver 2: its last trips are older than every window.
		tiles(2, spec, trip(base.Add(-25*time.Hour), 7.0, "nice")),
		// Driver 3: a trip without a fare.
		tiles(3, spec, trip(base.Add(-time.Minute), nil, "nice")),
		tiles(5, oldSpec, trip(base.Add(-time.Minute), 1.0, "nice")),
		{Key: Key{Project: "look", View: "stats", Entity: intKey(1)}, Value: plain},
	}, WriteOptions{Force: true})
	require.NoError(t, err)

	resp, err := l.Get(ctx, defs, &Request{
		Entities:       map[string][]any{"driver_id": {int64(1), int64(2), int64(3), int64(4), int64(5)}},
		Features:       []string{"driver_trips:*", "stats:rate", "surge_fares:surged"},
		RequestContext: map[string][]any{"surge": {2.0, 2.0, 2.0, 2.0, 2.0}},
	})
	require.NoError(t, err)
	names := []string{}
	for _, f := range resp.Features {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"trips_1h", "fare_sum_1h", "fare_max_1d", "city_last", "rate", "surged"}, names)
	values := func(fv *FeatureVector) []any {
		out := make([]any, len(fv.Statuses))
		for i := range out {
			out[i] = fv.Value(i)
		}
		return out
	}
	count, sum, maxFare, city, rate, surged := &resp.Features[0], &resp.Features[1], &resp.Features[2], &resp.Features[3], &resp.Features[4], &resp.Features[5]

	require.Equal(t, []any{int64(2), int64(0), int64(1), nil, nil}, values(count))
	require.Equal(t, []Status{Present, Present, Present, NotFound, NotFound}, count.Statuses)
	require.Equal(t, []any{15.5, nil, nil, nil, nil}, values(sum))
	require.Equal(t, []Status{Present, NullValue, NullValue, NotFound, NotFound}, sum.Statuses)
	require.Equal(t, []any{90.0, nil, nil, nil, nil}, values(maxFare))
	require.Equal(t, []any{"paris", nil, "nice", nil, nil}, values(city))
	require.Equal(t, []Status{Present, NullValue, Present, NotFound, NotFound}, city.Statuses)
	// The event time is the row's max event time.
	require.Equal(t, []time.Time{base.Add(-30 * time.Minute), base.Add(-25 * time.Hour), base.Add(-time.Minute), {}, {}}, count.EventTimes)
	require.Equal(t, count.EventTimes, city.EventTimes)

	require.Equal(t, []any{float32(0.25), nil, nil, nil, nil}, values(rate))
	require.Equal(t, []any{31.0, nil, nil, nil, nil}, values(surged))
	require.Equal(t, []Status{Present, NullValue, NullValue, NotFound, NotFound}, surged.Statuses)

	// An hour later the day-old trip has left the 1d window, and the
	// trips of the last hour the 1h window.
	now = base.Add(time.Hour + 30*time.Second)
	resp, err = l.Get(ctx, defs, &Request{
		Entities: map[string][]any{"driver_id": {int64(1)}},
		Features: []string{"driver_trips:*"},
	})
	require.NoError(t, err)
	require.Equal(t, []any{int64(0)}, values(&resp.Features[0]))
	require.Equal(t, []Status{NullValue}, resp.Features[1].Statuses)
	require.Equal(t, []any{10.0}, values(&resp.Features[2]))
	require.Equal(t, []any{"paris"}, values(&resp.Features[3]))
}

// TestTileRowsInStores: both row formats carry their event time where
// stores read it, so writes of tile rows are event-time guarded in every
// store.
func TestTileRowsInStores(t *testing.T) {
	ctx := context.Background()
	defs, errs := registry.ParseDefinitions("look", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(aggregateDefs)})
	require.NoError(t, errs.Err())
	spec, err := aggregate.NewSpec(defs.FeatureView("driver_trips"), defs.Source("trips"))
	require.NoError(t, err)
	row := func(at time.Time) []byte {
		var st aggregate.State
		spec.Apply(&st, aggregate.Event{Time: at, Values: []any{int64(1), at, 1.0, "x"}, Offset: -1})
		return spec.Encode(nil, &st)
	}
	got, err := EventTime(row(base))
	require.NoError(t, err)
	require.Equal(t, base, got)

	_, ok, err := NewCodec(defs.FeatureView("driver_trips")).Decode(row(base), make([]any, 4))
	require.NoError(t, err)
	require.False(t, ok, "a plain codec does not read tile rows")

	for name, open := range map[string]func(t *testing.T) Store{
		"embedded": func(t *testing.T) Store {
			s, err := OpenEmbedded(t.TempDir())
			require.NoError(t, err)
			return s
		},
		"redis": func(t *testing.T) Store {
			s, err := OpenRedis(ctx, RedisOptions{Addr: redistest.Start(t).Addr()})
			require.NoError(t, err)
			return s
		},
	} {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			t.Cleanup(func() { require.NoError(t, store.Close()) })
			key := Key{Project: "look", View: "driver_trips", Entity: intKey(1)}
			res, err := store.Write(ctx, []Row{{Key: key, Value: row(base)}, {Key: key, Value: row(base.Add(-time.Second))}}, WriteOptions{})
			require.NoError(t, err)
			require.Equal(t, WriteResult{Written: 1, Skipped: 1}, res)
			res, err = store.Write(ctx, []Row{{Key: key, Value: row(base.Add(time.Second))}}, WriteOptions{})
			require.NoError(t, err)
			require.Equal(t, WriteResult{Written: 1}, res)
			got, err := store.Read(ctx, []Key{key})
			require.NoError(t, err)
			require.Equal(t, row(base.Add(time.Second)), got[0])
		})
	}
}
