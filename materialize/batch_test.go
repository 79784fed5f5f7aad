package materialize

import (
	"context"
	"testing"
	"time"

	"github.com/quiverdata/quiver/value"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
)

type fixture struct {
	repo  *registry.Repo
	off   *offline.Engine
	store online.Store
	m     *Materializer
	end   time.Time // end of the generated data
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	require.NoError(t, quickstart.Scaffold(dir, quickstart.GenerateOptions{Drivers: 20, Days: 2}))
	repo, err := registry.LoadRepo(dir, registry.LoadOptions{})
	require.NoError(t, err)
	off, err := offline.Open(offline.OptionsFromConfig(repo.Config))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, off.Close()) })
	store, err := online.OpenEmbedded(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	return &fixture{repo: repo, off: off, store: store, m: &Materializer{Offline: off, Online: store},
		end: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)}
}

func driverIDs(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = int64(1001 + i)
	}
	return out
}

// TestOnlineEqualsPointInTimeJoin is the consistency contract: after
// materializing up to T, every entity's online value equals the training
// set's value at T.
func TestOnlineEqualsPointInTimeJoin(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	defs := f.repo.Defs
	for _, T := range []time.Time{f.end.Add(-30 * time.Hour), f.end.Add(-90 * time.Minute), f.end.Add(50 * time.Hour)} {
		// A fresh store per T: the online store holds the latest rows only.
		store, err := online.OpenEmbedded(t.TempDir())
		require.NoError(t, err)
		m := &Materializer{Offline: f.off, Online: store}
		res, err := m.Run(ctx, defs, time.Time{}, T, Options{ChunkRows: 7})
		require.NoError(t, err)
		require.Len(t, res, 1, "only driver_hourly is an online batch view")
		require.Equal(t, "driver_hourly", res[0].View)
		require.EqualValues(t, 20, res[0].Rows)
		require.EqualValues(t, 20, res[0].Written)

		lookup := online.NewLookup(store, online.LookupOptions{Now: func() time.Time { return T }})
		// On-demand features too: the same expressions over the same
		// inputs and request fields, online and offline.
		features := []string{"driver_hourly:*", "driver_scores:*"}
		surges := make([]any, 21)
		for i := range surges {
			surges[i] = surge(i)
		}
		got, err := lookup.Get(ctx, defs, &online.Request{Entities: map[string][]any{"driver_id": append(driverIDs(20), int64(9999))}, Features: features,
			RequestContext: map[string][]any{"surge": surges}})
		require.NoError(t, err)

		ents := entityTable(t, T, 21)
		rr, err := f.off.TrainingSet(ctx, &offline.Request{Defs: defs, Entities: offline.EntitiesFromArrow(ents), Features: features})
		require.NoError(t, err)
		var train [][]any // per feature
		for rr.Next() {
			rec := rr.RecordBatch()
			for c := 3; c < int(rec.NumCols()); c++ {
				if len(train) < c-2 {
					train = append(train, nil)
				}
				for i := 0; i < int(rec.NumRows()); i++ {
					v, err := value.FromArrow(rec.Column(c), i)
					require.NoError(t, err)
					train[c-3] = append(train[c-3], v)
				}
			}
		}
		require.NoError(t, rr.Err())
		rr.Release()
		require.NoError(t, store.Close())

		require.Len(t, train, len(got.Features))
		require.Equal(t, "adjusted_conv", got.Features[len(got.Features)-1].Name)
		for fi, fv := range got.Features {
			for row := range 21 {
				want := train[fi][row]
				if l, ok := want.([]any); ok { // lists come back typed from the online store
					fl := make([]float32, len(l))
					for i, x := range l {
						fl[i] = x.(float32)
					}
					want = fl
				}
				require.Equal(t, want, got.Features[fi].Value(row), "T=%s driver row %d feature %s", T, row, fv.Name)
				if want == nil {
					require.NotEqual(t, online.Present, fv.Statuses[row])
				}
			}
		}
		require.Equal(t, online.NotFound, got.Features[0].Statuses[20], "unknown driver")
		adjusted := got.Features[len(got.Features)-1]
		if T.Before(f.end) {
			require.Equal(t, online.Present, adjusted.Statuses[3])
			require.NotZero(t, adjusted.Values.Float64s[3])
		}
		require.Equal(t, online.NotFound, adjusted.Statuses[20], "an on-demand feature over a missing input")
		if T.After(f.end.Add(48 * time.Hour)) {
			require.Equal(t, online.OutsideMaxAge, got.Features[0].Statuses[0], "beyond the ttl online as offline")
		}
	}
}

func TestIncrementalAndIdempotent(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	defs := f.repo.Defs
	wm, err := Watermark(ctx, f.store, defs.Project, "driver_hourly")
	require.NoError(t, err)
	require.True(t, wm.IsZero())

	mid := f.end.Add(-24 * time.Hour)
	res, err := f.m.Incremental(ctx, defs, mid, Options{})
	require.NoError(t, err)
	require.True(t, res[0].Start.IsZero(), "the first run starts unbounded")
	require.EqualValues(t, 20, res[0].Written)
	wm, err = Watermark(ctx, f.store, defs.Project, "driver_hourly")
	require.NoError(t, err)
	require.Equal(t, mid, wm)

	res, err = f.m.Incremental(ctx, defs, mid, Options{})
	require.NoError(t, err)
	require.Zero(t, res[0].Rows, "nothing new up to the same end")

	res, err = f.m.Incremental(ctx, defs, f.end, Options{})
	require.NoError(t, err)
	require.Equal(t, mid.Add(time.Microsecond), res[0].Start)
	require.EqualValues(t, 20, res[0].Written)

	// An older full run writes nothing over the newer rows.
	res, err = f.m.Run(ctx, defs, time.Time{}, mid, Options{})
	require.NoError(t, err)
	require.EqualValues(t, 20, res[0].Skipped)
	require.Zero(t, res[0].Written)

	_, err = f.m.Run(ctx, defs, time.Time{}, mid, Options{Views: []string{"driver_trips"}})
	require.ErrorContains(t, err, "view driver_trips reads a stream source")
}

// entityTable is n drivers at time T as an Arrow stream.
// surge is row i's request field of the on-demand view driver_scores.
func surge(i int) float64 { return 1 + 0.25*float64(i%5) }

func entityTable(t *testing.T, T time.Time, n int) array.RecordReader {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "event_timestamp", Type: &arrow.TimestampType{Unit: arrow.Microsecond}},
		{Name: "surge", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := range n {
		id := int64(1001 + i)
		if i == 20 {
			id = 9999
		}
		b.Field(0).(*array.Int64Builder).Append(id)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(T.UnixMicro()))
		b.Field(2).(*array.Float64Builder).Append(surge(i))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	rr, err := array.NewRecordReader(schema, []arrow.RecordBatch{rec})
	require.NoError(t, err)
	t.Cleanup(rr.Release)
	return rr
}
