package offline

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

// TestResolve pins what a training set derives from its plan: stored
// features view by view under their output names, hidden on-demand
// inputs under internal names, request fields' internal columns, the
// join-key map's aliases, and the names checked against the entity table.
func TestResolve(t *testing.T) {
	const y = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
  - {name: rider, join_keys: [{name: rider_id, type: string}]}
sources:
  - {name: s, kind: parquet, path: x.parquet, timestamp_field: ts}
feature_views:
  - {name: stats, entities: [driver], source: s, features: [{name: rate, type: float32}, {name: trips, type: int64}]}
  - {name: riders, entities: [rider], source: s, features: [{name: score, type: float64}]}
on_demand_feature_views:
  - name: scores
    inputs: [stats]
    request: [{name: surge, type: float64}]
    features:
      - {name: adjusted, type: float64, expr: "stats.rate * request.surge"}
      - {name: per_trip, type: int64, expr: "100 / stats.trips"}
`
	defs, errs := registry.ParseDefinitions("p", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(y)})
	require.NoError(t, errs.Err())
	var e Engine
	res, err := e.resolve(&Request{Defs: defs, Features: []string{"scores:per_trip", "riders:score", "stats:rate"},
		JoinKeyMap: map[string]string{"driver_id": "d", "riders.rider_id": "r"}})
	require.NoError(t, err)
	require.Equal(t, []string{"score", "rate", "per_trip"}, res.columns)
	require.Len(t, res.plans, 2)
	var cols [][]string
	for _, p := range res.plans {
		var c []string
		for _, f := range p.features {
			c = append(c, f.column)
		}
		cols = append(cols, c)
	}
	require.Equal(t, [][]string{{"score"}, {"rate", "__quiver_in0"}}, cols)
	require.Equal(t, []keyPair{{joinKey: "rider_id", entityCol: "r", typ: registry.TypeString}}, res.plans[0].keys)
	require.Equal(t, []keyPair{{joinKey: "driver_id", entityCol: "d", typ: registry.TypeInt64}}, res.plans[1].keys)
	require.Len(t, res.demands, 1)
	d := res.demands[0]
	require.Equal(t, []int{1}, d.features)
	require.Equal(t, []string{"per_trip"}, d.outputs)
	require.Equal(t, []string{"rate", "__quiver_in0"}, d.inputCols)
	require.Equal(t, []string{"__quiver_rq0_0"}, d.reqCols)
	require.Equal(t, []string{"surge"}, d.reqFrom)

	_, err = e.resolve(&Request{Defs: defs, Features: []string{"stats:nope"}})
	require.ErrorIs(t, err, ErrInvalidRequest)
	require.EqualError(t, err, `quiver: invalid training-set request: view stats has no feature "nope"`)
	_, err = e.resolve(&Request{Features: []string{"stats:rate"}})
	require.EqualError(t, err, "quiver: invalid training-set request: no definitions (apply the repository first)")
}
