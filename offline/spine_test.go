package offline

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A spine generates the entity rows from a view: its events in [start,
// end] in rule 2's order, or its entities at every instant of a cadence;
// the features are the brute-force reference's for those rows, as of a
// time too.
func TestSpineMatchesReference(t *testing.T) {
	ctx := context.Background()
	for seed := range 12 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := newScenario(t, uint64(900+seed), []int{5, 20, 60}[seed%3])
			if seed%4 == 3 {
				s = newAsOfScenario(t, uint64(seed), 30)
			}
			eng := openEngine(t, filepath.Join(s.dir, "data"))
			spine := Spine{View: "drivers", Start: *at(seed % 3), End: *at(3 + seed%5)}
			if seed%2 == 1 {
				spine.Every = time.Duration(1+seed%3) * time.Minute
			}
			req := &Request{Defs: s.defs, Entities: EntitiesFromSpine(spine), Features: []string{"drivers:*"}}
			if s.asOf != nil {
				req.AsOf = *s.asOf
			}
			rr, err := eng.TrainingSet(ctx, req)
			require.NoError(t, err)
			schema, rows := readAll(t, rr)
			require.Equal(t, "driver_id", schema.Field(0).Name)
			require.Equal(t, "event_timestamp", schema.Field(1).Name)
			require.Equal(t, "timestamp[us]", schema.Field(1).Type.String())

			s.entities = s.spineRows(spine)
			want := s.expected()
			require.Len(t, rows, len(s.entities), "spine %+v", spine)
			t.Logf("%d rows, %d with features", len(rows), countFeatures(rows))
			for i, e := range s.entities {
				require.Equal(t, *e.DriverID, rows[i]["driver_id"], "row %d", i)
				require.Equal(t, *e.TS, rows[i]["event_timestamp"], "row %d", i)
				for _, f := range []string{"conv", "trips", "emb"} {
					require.Equal(t, want[i][f], rows[i][f], "row %d (driver %d at %v) feature %s", i, *e.DriverID, e.TS, f)
				}
			}
		})
	}
}

// spineRows is the reference's spine over the drivers view.
func (s *scenario) spineRows(sp Spine) []entityRowUTC {
	type ev struct {
		c   candidate
		key int64
	}
	var evs []ev
	for f, rows := range s.drivers {
		for r, d := range rows {
			c := candidate{ts: d.EventTimestamp, created: d.Created, file: f, row: r}
			if d.DriverID == nil || c.ts == nil || c.ts.Before(sp.Start) || c.ts.After(sp.End) || !known(c, s.asOf) {
				continue
			}
			evs = append(evs, ev{c, *d.DriverID})
		}
	}
	var out []entityRowUTC
	if sp.Every == 0 {
		slices.SortStableFunc(evs, func(a, b ev) int {
			switch {
			case later(a.c, b.c):
				return 1
			case later(b.c, a.c):
				return -1
			}
			return 0
		})
		for _, e := range evs {
			out = append(out, entityRowUTC{DriverID: ptr(e.key), TS: e.c.ts})
		}
		return out
	}
	var keys []int64
	for _, e := range evs {
		if !slices.Contains(keys, e.key) {
			keys = append(keys, e.key)
		}
	}
	slices.SortFunc(keys, cmp.Compare)
	for t := sp.Start; !t.After(sp.End); t = t.Add(sp.Every) {
		for _, k := range keys {
			out = append(out, entityRowUTC{DriverID: ptr(k), TS: ptr(t)})
		}
	}
	return out
}

// A spine that names no view, an unknown one, a reversed range, a bad
// cadence or too many instants is an invalid request, named.
func TestSpineErrors(t *testing.T) {
	s := newScenario(t, 3, 10)
	eng := openEngine(t, filepath.Join(s.dir, "data"))
	for spine, want := range map[Spine]string{
		{Start: t0, End: t0}:                                                               "name the feature view",
		{View: "nope", Start: t0, End: t0}:                                                 `no feature view "nope"`,
		{View: "drivers", End: t0}:                                                         "give both a start and an end",
		{View: "drivers", Start: t0, End: t0.Add(-time.Second)}:                            "is before start",
		{View: "drivers", Start: t0, End: t0, Every: -time.Second}:                         "is negative",
		{View: "drivers", Start: t0, End: t0.Add(time.Hour), Every: 1}:                     "under a microsecond",
		{View: "drivers", Start: t0, End: t0.Add(24 * time.Hour), Every: time.Millisecond}: "over 1000000",
	} {
		_, err := eng.TrainingSet(context.Background(), &Request{Defs: s.defs, Entities: EntitiesFromSpine(spine), Features: []string{"drivers:*"}})
		require.ErrorIs(t, err, ErrInvalidRequest, "%+v", spine)
		require.ErrorContains(t, err, want, "%+v", spine)
	}
	_, err := eng.TrainingSet(context.Background(), &Request{Defs: s.defs, Entities: EntitiesFromSpine(Spine{View: "drivers", Start: t0, End: t0}),
		Features: []string{"drivers:*"}, TimestampColumn: "at"})
	require.ErrorContains(t, err, "drop the timestamp column")
}

func countFeatures(rows []map[string]any) int {
	n := 0
	for _, r := range rows {
		if r["conv"] != nil {
			n++
		}
	}
	return n
}
