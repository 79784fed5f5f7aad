package online

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

// The conformance suite: every Store implementation runs it.

const conformanceDefs = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
  - {name: rider, join_keys: [{name: rider_id, type: string}]}
sources:
  - {name: s, kind: parquet, path: x.parquet, timestamp_field: ts}
feature_views:
  - name: all_types
    entities: [driver]
    source: s
    features:
      - {name: i32, type: int32}
      - {name: i64, type: int64}
      - {name: f32, type: float32}
      - {name: f64, type: float64}
      - {name: b, type: bool}
      - {name: s, type: string}
      - {name: raw, type: bytes}
      - {name: ts, type: timestamp}
      - {name: emb, type: "list<float32>"}
      - {name: ids, type: "list<int64>"}
      - {name: tags, type: "list<string>"}
      - {name: times, type: "list<timestamp>"}
  - {name: v1, entities: [driver], source: s, features: [{name: x, type: int64}]}
  - {name: v2, entities: [driver], source: s, features: [{name: x, type: int64}]}
  - {name: pair, entities: [driver, rider], source: s, features: [{name: x, type: int64}]}
`

func testDefinitions(t testing.TB) *registry.Definitions {
	t.Helper()
	defs, errs := registry.ParseDefinitions("conf", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(conformanceDefs)})
	require.NoError(t, errs.Err())
	return defs
}

var base = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func intKey(id int64) []byte {
	b, err := EncodeEntity([]registry.ValueType{registry.TypeInt64}, []any{id})
	if err != nil {
		panic(err)
	}
	return b
}

func xRow(t testing.TB, c *Codec, view string, id int64, at time.Time, x int64) Row {
	v, err := c.Encode(nil, at, []any{x})
	require.NoError(t, err)
	return Row{Key: Key{Project: "conf", View: view, Entity: intKey(id)}, Value: v}
}

func decodeX(t testing.TB, c *Codec, v []byte) (int64, time.Time) {
	out := make([]any, 1)
	at, ok, err := c.Decode(v, out)
	require.NoError(t, err)
	require.True(t, ok)
	return out[0].(int64), at
}

func runConformance(t *testing.T, open func(t *testing.T) Store) {
	defs := testDefinitions(t)
	ctx := context.Background()
	v1 := NewCodec(defs.FeatureView("v1"))

	t.Run("round trip of every type", func(t *testing.T) {
		s := open(t)
		c := NewCodec(defs.FeatureView("all_types"))
		vals := []any{int32(-7), int64(1) << 60, float32(1.5), 2.25, true, "héllo, {world}", []byte{0, 1, 255},
			base.Add(time.Microsecond), []float32{0.1, -2, 3e9}, []int64{1, -1}, []string{"a", ""}, []time.Time{base, base.Add(time.Hour)}}
		nulls := make([]any, len(vals))
		empty := []any{nil, nil, nil, nil, nil, nil, nil, nil, []float32{}, []int64{}, []string{}, []time.Time{}}
		var rows []Row
		for i, vs := range [][]any{vals, nulls, empty} {
			v, err := c.Encode(nil, base, vs)
			require.NoError(t, err)
			rows = append(rows, Row{Key: Key{Project: "conf", View: "all_types", Entity: intKey(int64(i))}, Value: v})
		}
		res, err := s.Write(ctx, rows, WriteOptions{})
		require.NoError(t, err)
		require.Equal(t, WriteResult{Written: 3}, res)
		got, err := s.Read(ctx, []Key{rows[0].Key, rows[1].Key, rows[2].Key, {Project: "conf", View: "all_types", Entity: intKey(99)}})
		require.NoError(t, err)
		require.Nil(t, got[3], "a missing key reads as nil")
		for i, want := range [][]any{vals, nulls, empty} {
			out := make([]any, len(vals))
			at, ok, err := c.Decode(got[i], out)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, base, at)
			require.Equal(t, want, out)
		}
	})

	t.Run("event-time guard", func(t *testing.T) {
		s := open(t)
		write := func(at time.Time, x int64, force bool) WriteResult {
			res, err := s.Write(ctx, []Row{xRow(t, v1, "v1", 1, at, x)}, WriteOptions{Force: force})
			require.NoError(t, err)
			return res
		}
		read := func() (int64, time.Time) {
			got, err := s.Read(ctx, []Key{{Project: "conf", View: "v1", Entity: intKey(1)}})
			require.NoError(t, err)
			return decodeX(t, v1, got[0])
		}
		require.Equal(t, WriteResult{Written: 1}, write(base, 10, false))
		require.Equal(t, WriteResult{Skipped: 1}, write(base.Add(-time.Microsecond), 5, false), "an older row is skipped")
		x, at := read()
		require.Equal(t, int64(10), x)
		require.Equal(t, base, at)
		require.Equal(t, WriteResult{Written: 1}, write(base, 11, false), "the same event time overwrites")
		require.Equal(t, WriteResult{Written: 1}, write(base.Add(time.Hour), 12, false))
		require.Equal(t, WriteResult{Written: 1}, write(base.Add(-48*time.Hour), 1, true), "force rewrites regardless")
		x, at = read()
		require.Equal(t, int64(1), x)
		require.Equal(t, base.Add(-48*time.Hour), at)
		// Times before 1970 order correctly too.
		require.Equal(t, WriteResult{Skipped: 1}, write(time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC), 0, false))
	})

	t.Run("compare and set", func(t *testing.T) {
		s := open(t)
		key := func(id int64) Key { return Key{Project: "conf", View: "v1", Entity: intKey(id)} }
		a := xRow(t, v1, "v1", 1, base, 1)
		b := xRow(t, v1, "v1", 2, base, 2)
		res, err := s.Write(ctx, []Row{a, b}, WriteOptions{Expect: [][]byte{nil, nil}})
		require.NoError(t, err)
		require.Equal(t, WriteResult{Written: 2}, res, "nil expects no row")
		older := xRow(t, v1, "v1", 1, base.Add(-time.Hour), 3) // event times do not matter
		c := xRow(t, v1, "v1", 3, base, 4)
		res, err = s.Write(ctx, []Row{older, xRow(t, v1, "v1", 2, base, 5), c}, WriteOptions{Expect: [][]byte{a.Value, []byte("stale"), []byte("stale")}})
		require.NoError(t, err)
		require.Equal(t, WriteResult{Written: 1, Skipped: 2, Conflicts: []int{1, 2}}, res)
		got, err := s.Read(ctx, []Key{key(1), key(2), key(3)})
		require.NoError(t, err)
		require.Equal(t, older.Value, got[0])
		require.Equal(t, b.Value, got[1], "a conflict leaves the row alone")
		require.Nil(t, got[2])
		_, err = s.Write(ctx, []Row{a}, WriteOptions{Expect: [][]byte{}})
		require.ErrorContains(t, err, "0 expected values for 1 rows")

		// Concurrent read-modify-write counters lose no increment.
		const writers, increments = 6, 25
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range increments {
					for {
						cur, err := s.Read(ctx, []Key{key(9)})
						require.NoError(t, err)
						n := int64(0)
						if cur[0] != nil {
							n, _ = decodeX(t, v1, cur[0])
						}
						res, err := s.Write(ctx, []Row{xRow(t, v1, "v1", 9, base, n+1)}, WriteOptions{Expect: cur})
						require.NoError(t, err)
						if len(res.Conflicts) == 0 {
							break
						}
					}
				}
			}()
		}
		wg.Wait()
		got, err = s.Read(ctx, []Key{key(9)})
		require.NoError(t, err)
		n, _ := decodeX(t, v1, got[0])
		require.Equal(t, int64(writers*increments), n)
	})

	t.Run("concurrent out-of-order writers", func(t *testing.T) {
		s := open(t)
		const writers, perWriter, keys = 8, 60, 5
		var wg sync.WaitGroup
		latest := make([]int64, keys) // greatest minute written per key
		var mu sync.Mutex
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 9))
				for range perWriter / 4 {
					var rows []Row
					for range 4 {
						k, m := rng.Int64N(keys), rng.Int64N(10000)
						rows = append(rows, xRow(t, v1, "v1", k, base.Add(time.Duration(m)*time.Minute), m))
						mu.Lock()
						latest[k] = max(latest[k], m)
						mu.Unlock()
					}
					_, err := s.Write(ctx, rows, WriteOptions{})
					require.NoError(t, err)
				}
			}()
		}
		wg.Wait()
		for k := range int64(keys) {
			got, err := s.Read(ctx, []Key{{Project: "conf", View: "v1", Entity: intKey(k)}})
			require.NoError(t, err)
			x, at := decodeX(t, v1, got[0])
			require.Equal(t, latest[k], x, "key %d holds the latest event, whatever the arrival order", k)
			require.Equal(t, base.Add(time.Duration(latest[k])*time.Minute), at)
		}
	})

	t.Run("many views and entities in one read", func(t *testing.T) {
		s := open(t)
		pairC := NewCodec(defs.FeatureView("pair"))
		var rows []Row
		var keys []Key
		want := map[int]int64{}
		for e := range int64(150) {
			for vi, view := range []string{"v1", "v2"} {
				k := Key{Project: "conf", View: view, Entity: intKey(e)}
				keys = append(keys, k)
				if e%3 == 0 {
					continue // leave some missing
				}
				want[len(keys)-1] = e*10 + int64(vi)
				rows = append(rows, xRow(t, v1, view, e, base, e*10+int64(vi)))
			}
			pk, err := EncodeEntity([]registry.ValueType{registry.TypeInt64, registry.TypeString}, []any{e, fmt.Sprintf("r,%d", e)})
			require.NoError(t, err)
			pv, err := pairC.Encode(nil, base, []any{e})
			require.NoError(t, err)
			rows = append(rows, Row{Key: Key{Project: "conf", View: "pair", Entity: pk}, Value: pv})
			keys = append(keys, Key{Project: "conf", View: "pair", Entity: pk})
			want[len(keys)-1] = e
		}
		res, err := s.Write(ctx, rows, WriteOptions{})
		require.NoError(t, err)
		require.Equal(t, len(rows), res.Written)
		got, err := s.Read(ctx, keys)
		require.NoError(t, err)
		require.Len(t, got, len(keys))
		for i := range keys {
			w, ok := want[i]
			if !ok {
				require.Nil(t, got[i], "key %d", i)
				continue
			}
			x, _ := decodeX(t, v1, got[i])
			require.Equal(t, w, x, "key %d (%s %s)", i, keys[i].View, keys[i].Entity)
		}
	})

	t.Run("delete a view", func(t *testing.T) {
		s := open(t)
		var rows []Row
		for e := range int64(1200) {
			rows = append(rows, xRow(t, v1, "v1", e, base, e), xRow(t, v1, "v2", e, base, e))
		}
		_, err := s.Write(ctx, rows, WriteOptions{})
		require.NoError(t, err)
		n, err := s.DeleteView(ctx, "conf", "v1")
		require.NoError(t, err)
		require.EqualValues(t, 1200, n)
		got, err := s.Read(ctx, []Key{{Project: "conf", View: "v1", Entity: intKey(7)}, {Project: "conf", View: "v2", Entity: intKey(7)}})
		require.NoError(t, err)
		require.Nil(t, got[0])
		require.NotNil(t, got[1], "other views keep their rows")
		n, err = s.DeleteView(ctx, "conf", "v1")
		require.NoError(t, err)
		require.Zero(t, n)
	})

	t.Run("meta", func(t *testing.T) {
		s := open(t)
		v, err := s.GetMeta(ctx, "conf", "watermark:v1")
		require.NoError(t, err)
		require.Nil(t, v)
		require.NoError(t, s.SetMeta(ctx, "conf", "watermark:v1", []byte("2026-05-01T12:00:00Z")))
		v, err = s.GetMeta(ctx, "conf", "watermark:v1")
		require.NoError(t, err)
		require.Equal(t, "2026-05-01T12:00:00Z", string(v))
	})

	t.Run("a value that is not a row is refused", func(t *testing.T) {
		s := open(t)
		_, err := s.Write(ctx, []Row{{Key: Key{Project: "conf", View: "v1", Entity: intKey(1)}, Value: []byte("nope")}}, WriteOptions{})
		require.ErrorIs(t, err, ErrCorruptRow)
	})
}

func TestEmbeddedConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) Store {
		s, err := OpenEmbedded(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}
