package online

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

// TestLookupPlan: Plan gives the plan Get uses, from the same cache: the
// views read with their join keys, the on-demand views with their request
// fields; an unplannable request is an invalid request.
func TestLookupPlan(t *testing.T) {
	defs, errs := registry.ParseDefinitions("look", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(lookupDefs)})
	require.NoError(t, errs.Err())
	store, err := OpenEmbedded(t.TempDir())
	require.NoError(t, err)
	defer store.Close()
	l := NewLookup(store, LookupOptions{})

	req := &Request{FeatureService: "ranked"}
	p, err := l.Plan(defs, req)
	require.NoError(t, err)
	require.Len(t, p.Views, 1)
	require.Equal(t, "stats", p.Views[0].View.Name)
	require.Equal(t, "driver_id", p.Views[0].Keys[0].Name)
	require.Len(t, p.Demands, 1)
	require.Equal(t, "surge", p.Demands[0].Request[0].Name)
	again, err := l.Plan(defs, req)
	require.NoError(t, err)
	require.Same(t, p, again, "the plan comes from the lookup's cache")

	_, err = l.Plan(defs, &Request{Features: []string{"stats:nope"}})
	require.ErrorIs(t, err, ErrInvalidRequest)
	require.ErrorContains(t, err, `view stats has no feature "nope"`)
}
