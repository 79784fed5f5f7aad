package online

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/redistest"
	"github.com/quiverdata/quiver/registry"
)

// BenchmarkLookup100x50 looks 50 features (5 views of 10 float32) up for
// 100 entities in the embedded store.
func BenchmarkLookup100x50(b *testing.B) {
	store, err := OpenEmbedded(b.TempDir())
	require.NoError(b, err)
	defer store.Close()
	benchLookup(b, store)
}

// BenchmarkLookup100x50Redis is the same against a real redis-server.
func BenchmarkLookup100x50Redis(b *testing.B) {
	srv := redistest.Start(b)
	store, err := OpenRedis(context.Background(), RedisOptions{Addr: srv.Addr()})
	require.NoError(b, err)
	defer store.Close()
	benchLookup(b, store)
}

func benchLookup(b *testing.B, store Store) {
	var y strings.Builder
	y.WriteString("entities: [{name: driver, join_keys: [{name: driver_id, type: int64}]}]\nsources: [{name: s, kind: parquet, path: x.parquet, timestamp_field: ts}]\nfeature_views:\n")
	for v := range 5 {
		fmt.Fprintf(&y, "  - {name: view%d, entities: [driver], source: s, features: [", v)
		for f := range 10 {
			if f > 0 {
				y.WriteString(", ")
			}
			fmt.Fprintf(&y, "{name: f%d, type: float32}", f)
		}
		y.WriteString("]}\n")
	}
	defs, errs := registry.ParseDefinitions("bench", []string{"b.yaml"}, map[string][]byte{"b.yaml": []byte(y.String())})
	require.NoError(b, errs.Err())
	vals := make([]any, 10)
	for i := range vals {
		vals[i] = float32(i)
	}
	ids := make([]any, 100)
	var refs []string
	for v := range 5 {
		view := fmt.Sprintf("view%d", v)
		refs = append(refs, view+":*")
		c := NewCodec(defs.FeatureView(view))
		var rows []Row
		for e := range 100 {
			ids[e] = int64(e)
			val, err := c.Encode(nil, base, vals)
			require.NoError(b, err)
			rows = append(rows, Row{Key: Key{Project: "bench", View: view, Entity: intKey(int64(e))}, Value: val})
		}
		_, err := store.Write(context.Background(), rows, WriteOptions{})
		require.NoError(b, err)
	}
	l := NewLookup(store, LookupOptions{})
	req := &Request{Entities: map[string][]any{"driver_id": ids}, Features: refs, FullFeatureNames: true}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := l.Get(ctx, defs, req); err != nil {
			b.Fatal(err)
		}
	}
}
