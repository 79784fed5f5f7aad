package plan

import (
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/transform"
)

const testDefs = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
  - {name: rider, join_keys: [{name: rider_id, type: string}]}
sources:
  - {name: s, kind: parquet, path: x.parquet, timestamp_field: ts}
feature_views:
  - {name: stats, entities: [driver], source: s, features: [{name: rate, type: float32}, {name: trips, type: int64}]}
  - {name: riders, entities: [rider], source: s, features: [{name: rate, type: float64}]}
on_demand_feature_views:
  - name: scores
    inputs: [stats]
    request: [{name: surge, type: float64}]
    features:
      - {name: adjusted, type: float64, expr: "stats.rate * request.surge"}
      - {name: per_trip, type: int64, expr: "100 / stats.trips"}
feature_services:
  - {name: svc, features: ["riders:rate", "scores:per_trip", "stats:rate"]}
`

func parse(t *testing.T) *registry.Definitions {
	t.Helper()
	defs, errs := registry.ParseDefinitions("p", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(testDefs)})
	require.NoError(t, errs.Err())
	return defs
}

func TestNew(t *testing.T) {
	defs := parse(t)
	var tc transform.Cache
	p, err := New(defs, Request{FeatureService: "svc", FullFeatureNames: true}, &tc)
	require.NoError(t, err)
	require.Equal(t, 3, p.Requested)
	require.Equal(t, []Column{
		{Name: "riders__rate", View: "riders", Feature: "rate", Type: registry.ValueType{Elem: registry.Float64}},
		{Name: "scores__per_trip", View: "scores", Feature: "per_trip", Type: registry.TypeInt64, OnDemand: true},
		{Name: "stats__rate", View: "stats", Feature: "rate", Type: registry.ValueType{Elem: registry.Float32}},
		{View: "stats", Feature: "trips", Type: registry.TypeInt64, Hidden: true},
	}, p.Columns)
	require.Equal(t, []string{"riders__rate", "scores__per_trip", "stats__rate"}, p.Outputs())
	require.Len(t, p.Views, 2)
	require.Equal(t, "riders", p.Views[0].View.Name)
	require.Equal(t, []ViewFeature{{Feature: "rate", Type: registry.ValueType{Elem: registry.Float64}, Column: 0}}, p.Views[0].Features)
	require.Equal(t, "driver_id", p.Views[1].Keys[0].Name)
	require.Equal(t, []ViewFeature{
		{Feature: "rate", Type: registry.ValueType{Elem: registry.Float32}, Column: 2},
		{Feature: "trips", Type: registry.TypeInt64, Column: 3},
	}, p.Views[1].Features)
	require.Len(t, p.Demands, 1)
	d := p.Demands[0]
	require.Equal(t, "scores", d.View.Def.Name)
	require.Equal(t, []DemandFeature{{Index: 1, Column: 1}}, d.Features)
	require.Equal(t, []int{2, 3}, d.Inputs) // stats.rate requested, stats.trips hidden
	require.Equal(t, "surge", d.Request[0].Name)
}

func TestNewErrors(t *testing.T) {
	defs := parse(t)
	var tc transform.Cache
	for _, c := range []struct {
		req  Request
		want string
	}{
		{Request{}, "no features requested (give feature references such as view:feature, or a feature service)"},
		{Request{Features: []string{"stats:rate", "riders:rate"}}, `feature name "rate" is in views stats and riders; request full feature names (view__feature) to tell them apart`},
		{Request{Features: []string{"x:y"}, FeatureService: "svc"}, "give features or a feature service, not both"},
	} {
		_, err := New(defs, c.req, &tc)
		require.ErrorIs(t, err, ErrInvalid)
		require.EqualError(t, err, c.want)
	}
	_, err := New(nil, Request{Features: []string{"stats:rate"}}, &tc)
	require.ErrorIs(t, err, ErrInvalid)
}

func TestCache(t *testing.T) {
	defs := parse(t)
	var c Cache
	req := Request{Features: []string{"stats:*", "scores:adjusted"}}
	a, err := c.Get(defs, req)
	require.NoError(t, err)
	b, err := c.Get(defs, Request{Features: []string{"stats:*", "scores:adjusted"}})
	require.NoError(t, err)
	require.Same(t, a, b, "the same shape has the same plan")
	require.EqualValues(t, 1, c.Builds())
	full, err := c.Get(defs, Request{Features: req.Features, FullFeatureNames: true})
	require.NoError(t, err)
	require.NotSame(t, a, full, "full names are another shape")
	// Shapes whose parts join to the same text are apart.
	x, err := c.Get(defs, Request{Features: []string{"stats:rate", "stats:trips"}})
	require.NoError(t, err)
	y, err := c.Get(defs, Request{Features: []string{"stats:ratestats:trips"}})
	require.Error(t, err)
	require.Nil(t, y)
	require.NotNil(t, x)

	next := parse(t) // a new registry version
	n, err := c.Get(next, req)
	require.NoError(t, err)
	require.NotSame(t, a, n)
	require.Same(t, next, n.Defs)

	_, err = c.Get(defs, Request{Features: []string{"nope:x"}})
	require.ErrorIs(t, err, ErrInvalid)
}

func TestCacheBounded(t *testing.T) {
	defer func(n int) { maxShapes = n }(maxShapes)
	maxShapes = 5
	defs := parse(t)
	var c Cache
	refs := []string{"stats:rate"}
	for range 12 {
		refs = append(refs, "stats:rate") // duplicates resolve once: another shape, the same features
		_, err := c.Get(defs, Request{Features: refs})
		require.NoError(t, err)
	}
	s, err := c.versions.Get(defs, func() (*shapes, error) { return nil, errors.New("not built") })
	require.NoError(t, err)
	require.Len(t, s.plans, 5)
}

func TestCacheKeepsNoLongShapes(t *testing.T) {
	defs := parse(t)
	var c Cache
	refs := make([]string, MaxShapeBytes/len("stats:rate")+1)
	for i := range refs {
		refs[i] = "stats:rate"
	}
	p, err := c.Get(defs, Request{Features: refs})
	require.NoError(t, err)
	require.Len(t, p.Columns, 1, "planned as usual")
	s, err := c.versions.Get(defs, func() (*shapes, error) { return nil, errors.New("not built") })
	require.NoError(t, err)
	require.Empty(t, s.plans, "but not kept")
}

func TestCacheConcurrent(t *testing.T) {
	defs := []*registry.Definitions{parse(t), parse(t)}
	var c Cache
	reqs := []Request{
		{Features: []string{"stats:*"}},
		{FeatureService: "svc", FullFeatureNames: true},
		{Features: []string{"scores:*", "riders:rate"}},
	}
	var wg sync.WaitGroup
	got := make([][]*Plan, 8)
	for g := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				p, err := c.Get(defs[i%2], reqs[i%3])
				if err != nil {
					t.Error(err)
					return
				}
				if i < 6 {
					got[g] = append(got[g], p)
				}
			}
		}()
	}
	wg.Wait()
	for g := range got {
		require.Equal(t, got[0], got[g], "every goroutine sees the same plans")
	}
}
