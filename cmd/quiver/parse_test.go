package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

func flagDefs(t testing.TB) *registry.Definitions {
	defs, errs := registry.ParseDefinitions("p", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(`
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
  - {name: rider, join_keys: [{name: rider_id, type: string}]}
`)})
	require.NoError(t, errs.Err())
	return defs
}

func TestParseEntities(t *testing.T) {
	defs := flagDefs(t)
	cols, order, err := parseEntities(defs, []string{"driver_id=1,2", "rider_id=a,b"})
	require.NoError(t, err)
	require.Equal(t, []string{"driver_id", "rider_id"}, order)
	require.Equal(t, []any{int64(1), int64(2)}, cols["driver_id"])
	require.Equal(t, []any{"a", "b"}, cols["rider_id"])
	for in, want := range map[string]string{
		"driver_id":   `--entity "driver_id" is not KEY=V1,V2`,
		"nope=1":      `"nope" is not a join key of any entity`,
		"driver_id=x": `join key driver_id is int64; "x" is not`,
	} {
		_, _, err := parseEntities(defs, []string{in})
		require.ErrorContains(t, err, want, in)
	}
}

// FuzzCommandLineValues: the parsers of --entity, --join-key-map and
// times never panic, and what they accept is well formed.
func FuzzCommandLineValues(f *testing.F) {
	for _, s := range []string{"driver_id=1,2", "rider_id=a", "k=v,view.k=w", "=", ",,", "2026-11-20T15:04:05Z", "2026-11-20", "now", "x=1=2", "surge=1.5,2", "vip=true", "at=2026-11-20T15:04:05Z"} {
		f.Add(s)
	}
	defs := flagDefs(f)
	f.Fuzz(func(t *testing.T, s string) {
		if cols, order, err := parseEntities(defs, []string{s}); err == nil {
			require.Len(t, order, 1)
			require.NotEmpty(t, cols[order[0]])
		}
		if m, err := parseKeyMap(s); err == nil {
			for k, v := range m {
				require.NotEmpty(t, strings.TrimSpace(k))
				require.NotEmpty(t, strings.TrimSpace(v))
			}
		}
		if ts, err := parseTime(s); err == nil {
			require.Equal(t, "UTC", ts.Location().String())
		}
		if ctx, err := parseRequestContext([]string{s}, 3); err == nil {
			require.Len(t, ctx, 1)
			for _, col := range ctx {
				require.NotEmpty(t, col)
				if len(col) == 1 {
					t.Fatalf("one value was not repeated for 3 rows: %v", col)
				}
			}
		}
	})
}
