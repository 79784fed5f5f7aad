package online

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

const lookupDefs = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
  - {name: rider, join_keys: [{name: rider_id, type: string}]}
sources:
  - {name: s, kind: parquet, path: x.parquet, timestamp_field: ts}
feature_views:
  - name: stats
    entities: [driver]
    source: s
    ttl: 1h
    features: [{name: rate, type: float32}, {name: trips, type: int64}, {name: emb, type: "list<float32>"}]
  - {name: riders, entities: [rider], source: s, features: [{name: rate, type: float64}]}
  - {name: archive, entities: [driver], source: s, online: false, features: [{name: old, type: int64}]}
on_demand_feature_views:
  - name: scores
    inputs: [stats]
    request: [{name: surge, type: float64}]
    features:
      - {name: adjusted, type: float64, expr: "stats.rate * request.surge"}
      - {name: rate_or_zero, type: float64, expr: "stats.?rate.orValue(0.0)"}
      - {name: per_trip, type: int64, expr: "100 / stats.trips"}
feature_services:
  - {name: svc, features: ["stats:rate", "riders:*"]}
  - {name: ranked, features: ["stats:trips", "scores:*"]}
`

func TestLookup(t *testing.T) {
	ctx := context.Background()
	defs, errs := registry.ParseDefinitions("look", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(lookupDefs)})
	require.NoError(t, errs.Err())
	store, err := OpenEmbedded(t.TempDir())
	require.NoError(t, err)
	defer store.Close()
	now := base
	l := NewLookup(store, LookupOptions{Now: func() time.Time { return now }})

	stats, riders := NewCodec(defs.FeatureView("stats")), NewCodec(defs.FeatureView("riders"))
	row := func(c *Codec, view string, ent []byte, at time.Time, vals ...any) Row {
		v, err := c.Encode(nil, at, vals)
		require.NoError(t, err)
		return Row{Key: Key{Project: "look", View: view, Entity: ent}, Value: v}
	}
	rk := func(s string) []byte {
		b, err := EncodeEntity([]registry.ValueType{registry.TypeString}, []any{s})
		require.NoError(t, err)
		return b
	}
	_, err = store.Write(ctx, []Row{
		row(stats, "stats", intKey(1), base.Add(-time.Minute), float32(0.5), int64(7), []float32{1, 2}),
		row(stats, "stats", intKey(2), base.Add(-time.Hour), nil, int64(3), nil),                           // exactly at the ttl bound
		row(stats, "stats", intKey(3), base.Add(-time.Hour-time.Microsecond), float32(0.9), int64(1), nil), // just beyond it
		row(riders, "riders", rk("a"), base.Add(-240*time.Hour), 4.5),                                      // no ttl
	}, WriteOptions{})
	require.NoError(t, err)

	resp, err := l.Get(ctx, defs, &Request{
		Entities: map[string][]any{"driver_id": {int64(1), 2, int32(3), int64(4)}, "rider_id": {"a", "b", "a", "a"}},
		Features: []string{"stats:*", "riders:rate"}, FullFeatureNames: true,
	})
	require.NoError(t, err)
	require.Equal(t, 4, resp.Rows)
	names := []string{}
	for _, f := range resp.Features {
		names = append(names, f.Name)
	}
	require.Equal(t, []string{"stats__rate", "stats__trips", "stats__emb", "riders__rate"}, names)
	rate, trips, emb, rider := &resp.Features[0], &resp.Features[1], &resp.Features[2], &resp.Features[3]
	values := func(fv *FeatureVector) []any {
		out := make([]any, len(fv.Statuses))
		for i := range out {
			out[i] = fv.Value(i)
		}
		return out
	}
	require.Equal(t, []any{float32(0.5), nil, nil, nil}, values(rate))
	require.Equal(t, []float32{0.5, 0, 0, 0}, rate.Values.Float32s, "withheld values are zero in the typed column")
	require.Equal(t, []Status{Present, NullValue, OutsideMaxAge, NotFound}, rate.Statuses)
	require.Equal(t, []any{int64(7), int64(3), nil, nil}, values(trips))
	require.Equal(t, []Status{Present, Present, OutsideMaxAge, NotFound}, trips.Statuses)
	require.Equal(t, []any{[]float32{1, 2}, nil, nil, nil}, values(emb))
	require.Equal(t, []time.Time{base.Add(-time.Minute), base.Add(-time.Hour), base.Add(-time.Hour - time.Microsecond), {}}, rate.EventTimes)
	require.Equal(t, []any{4.5, nil, 4.5, 4.5}, values(rider))
	require.Equal(t, []Status{Present, NotFound, Present, Present}, rider.Statuses)

	// Time passes: the first row ages out too.
	now = base.Add(2 * time.Hour)
	resp, err = l.Get(ctx, defs, &Request{Entities: map[string][]any{"driver_id": {int64(1)}}, Features: []string{"stats:rate"}})
	require.NoError(t, err)
	require.Equal(t, []Status{OutsideMaxAge}, resp.Features[0].Statuses)
	require.Equal(t, "rate", resp.Features[0].Name)

	resp, err = l.Get(ctx, defs, &Request{Entities: map[string][]any{"driver_id": {int64(1)}, "rider_id": {"a"}}, FeatureService: "svc", FullFeatureNames: true})
	require.NoError(t, err)
	require.Len(t, resp.Features, 2)

	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Entities: map[string][]any{"driver_id": {int64(1)}}, Features: []string{"stats:nope"}}, `view stats has no feature "nope"`},
		{Request{Entities: map[string][]any{"driver_id": {int64(1)}}, Features: []string{"riders:rate"}}, `missing join key rider_id of view riders`},
		{Request{Entities: map[string][]any{"driver_id": {"1"}}, Features: []string{"stats:rate"}}, `join key driver_id, row 0: 1 (string) is not an int64`},
		{Request{Entities: map[string][]any{"driver_id": {int64(1), int64(2)}, "rider_id": {"a"}}, Features: []string{"stats:rate"}}, `entity columns have different lengths: driver_id has 2 values, rider_id has 1`},
		{Request{Entities: map[string][]any{"driver_id": {int64(1)}}, Features: []string{"stats:rate", "riders:rate"}}, `feature name "rate" is in views stats and riders`},
		{Request{Entities: map[string][]any{"driver_id": {int64(1)}}, Features: []string{"archive:old"}}, `view archive is offline only`},
		{Request{Entities: map[string][]any{"driver_id": {int64(1)}}}, `no features requested`},
		{Request{Features: []string{"stats:rate"}}, `no entities given`},
		{Request{Entities: map[string][]any{"driver_id": {int64(1)}}, FeatureService: "nope"}, `unknown feature service "nope"`},
	} {
		_, err := l.Get(ctx, defs, &tc.req)
		require.ErrorIs(t, err, ErrInvalidRequest, tc.want)
		require.ErrorContains(t, err, tc.want)
	}
}

func TestLookupOnDemand(t *testing.T) {
	ctx := context.Background()
	defs, errs := registry.ParseDefinitions("look", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(lookupDefs)})
	require.NoError(t, errs.Err())
	store, err := OpenEmbedded(t.TempDir())
	require.NoError(t, err)
	defer store.Close()
	l := NewLookup(store, LookupOptions{Now: func() time.Time { return base }})
	stats := NewCodec(defs.FeatureView("stats"))
	var rows []Row
	for _, r := range []struct {
		id    int64
		at    time.Time
		rate  any
		trips int64
	}{
		{1, base.Add(-time.Minute), float32(0.5), 4},
		{2, base.Add(-time.Minute), nil, 0},            // null rate, zero trips
		{3, base.Add(-2 * time.Hour), float32(0.9), 1}, // beyond the ttl
	} {
		v, err := stats.Encode(nil, r.at, []any{r.rate, r.trips, nil})
		require.NoError(t, err)
		rows = append(rows, Row{Key: Key{Project: "look", View: "stats", Entity: intKey(r.id)}, Value: v})
	}
	_, err = store.Write(ctx, rows, WriteOptions{})
	require.NoError(t, err)

	resp, err := l.Get(ctx, defs, &Request{
		Entities:       map[string][]any{"driver_id": {int64(1), int64(2), int64(3), int64(4)}},
		FeatureService: "ranked",
		RequestContext: map[string][]any{"surge": {2.0, 2.0, 2.0, 2}},
	})
	require.NoError(t, err)
	names := []string{}
	for _, f := range resp.Features {
		names = append(names, f.Name)
	}
	// stats:rate is read for the expressions but not returned.
	require.Equal(t, []string{"trips", "adjusted", "rate_or_zero", "per_trip"}, names)
	adjusted, orZero, perTrip := &resp.Features[1], &resp.Features[2], &resp.Features[3]
	require.Equal(t, []Status{Present, NullValue, OutsideMaxAge, NotFound}, adjusted.Statuses)
	require.Equal(t, 1.0, adjusted.Value(0))
	require.Equal(t, []Status{Present, Present, Present, Present}, orZero.Statuses)
	require.Equal(t, []float64{0.5, 0, 0, 0}, orZero.Values.Float64s)
	// 100 / 0 fails on row 1 only; the other features are unaffected.
	require.Equal(t, []Status{Present, EvaluationError, OutsideMaxAge, NotFound}, perTrip.Statuses)
	require.Equal(t, int64(25), perTrip.Value(0))
	require.Equal(t, 1, resp.EvaluationErrors)
	require.ErrorContains(t, resp.FirstEvaluationError, "row 1: scores:per_trip: division by zero")

	for _, tc := range []struct {
		ctx  map[string][]any
		want string
	}{
		{nil, "missing request field surge (float64) of on-demand view scores"},
		{map[string][]any{"surge": {1.0}}, "request field surge has 1 values; the entity columns have 2"},
		{map[string][]any{"surge": {1.0, "x"}}, "request field surge, row 1: x (string) is not a float64"},
	} {
		_, err := l.Get(ctx, defs, &Request{Entities: map[string][]any{"driver_id": {int64(1), int64(2)}}, Features: []string{"scores:adjusted"}, RequestContext: tc.ctx})
		require.ErrorIs(t, err, ErrInvalidRequest, tc.want)
		require.ErrorContains(t, err, tc.want)
	}
}

// TestLookupTwoLiveVersions: while lookups with an old and a new registry
// version alternate (a reload under way), neither the on-demand
// expressions nor the codecs are built again per request.
func TestLookupTwoLiveVersions(t *testing.T) {
	ctx := context.Background()
	parse := func() *registry.Definitions {
		defs, errs := registry.ParseDefinitions("look", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(lookupDefs)})
		require.NoError(t, errs.Err())
		return defs
	}
	old, cur := parse(), parse()
	store, err := OpenEmbedded(t.TempDir())
	require.NoError(t, err)
	defer store.Close()
	l := NewLookup(store, LookupOptions{Now: func() time.Time { return base }})
	req := &Request{Entities: map[string][]any{"driver_id": {int64(1)}}, Features: []string{"stats:rate", "scores:adjusted"},
		RequestContext: map[string][]any{"surge": {2.0}}}
	for range 10 {
		for _, defs := range []*registry.Definitions{old, cur} {
			_, err := l.Get(ctx, defs, req)
			require.NoError(t, err)
		}
	}
	require.EqualValues(t, 2, l.plans.Transforms().Compiles(), "CEL compiled once per version")
	require.EqualValues(t, 2, l.codecs.Builds(), "codecs built once per version")
	require.EqualValues(t, 2, l.plans.Builds(), "the request planned once per version")
}
