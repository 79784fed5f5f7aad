package offline

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// As of a time: random scenarios with late-created rows (created long
// after their event, or before it; some without a created time), cut off
// at random instants, exact ties with the cutoff among them, against the
// brute-force reference that leaves out every row not known at the
// cutoff; on Parquet and Arrow entity tables, with the ASOF and the union
// form of the join.
func TestAsOfMatchesReference(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 8
	}
	for seed := range seeds {
		size := []int{5, 20, 60}[seed%3]
		t.Run(fmt.Sprintf("seed%d_size%d", seed, size), func(t *testing.T) {
			s := newAsOfScenario(t, uint64(seed), size)
			var entities Entities
			if seed%2 == 0 {
				entities = EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))
			} else {
				entities = EntitiesFromArrow(s.arrowEntities(t, 5))
			}
			req := s.request(entities)
			req.AsOf = *s.asOf
			eng, err := Open(Options{DataRoot: filepath.Join(s.dir, "data"), Threads: 2, UnionJoin: seed%4 == 1})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, eng.Close()) })
			s.checkRun(t, eng, req)
		})
	}
}

// As of a time before every row, a training set has no features; as of
// one after every row, it is the set without as_of.
func TestAsOfBounds(t *testing.T) {
	ctx := context.Background()
	s := newScenario(t, 31, 40)
	eng := openEngine(t, filepath.Join(s.dir, "data"))
	ents := filepath.Join(s.dir, "entities-*.parquet")
	rr, err := eng.TrainingSet(ctx, s.request(EntitiesFromParquet(ents)))
	require.NoError(t, err)
	_, without := readAll(t, rr)
	req := s.request(EntitiesFromParquet(ents))
	req.AsOf = t0.Add(24 * time.Hour)
	rr, err = eng.TrainingSet(ctx, req)
	require.NoError(t, err)
	_, late := readAll(t, rr)
	require.Equal(t, without, late)
	req.AsOf = t0.Add(-24 * time.Hour)
	rr, err = eng.TrainingSet(ctx, req)
	require.NoError(t, err)
	_, early := readAll(t, rr)
	for i, row := range early {
		for _, f := range []string{"conv", "trips", "emb", "rating", "tier", "trips_together"} {
			require.Nil(t, row[f], "row %d feature %s", i, f)
		}
	}
}

// newAsOfScenario is a scenario with late-created rows (created times
// spread over and past the events', some before their event) and an as_of
// cutoff among the scenario's instants.
func newAsOfScenario(t *testing.T, seed uint64, size int) *scenario {
	s := newScenario(t, 700+seed, size)
	rng := rand.New(rand.NewPCG(seed, 99))
	for f := range s.drivers {
		for r := range s.drivers[f] {
			if rng.IntN(4) > 0 {
				s.drivers[f][r].Created = at(rng.IntN(20))
			}
		}
	}
	s.write(t)
	s.asOf = at(rng.IntN(16))
	return s
}

// As of each row's own time (as_of_column: the entity timestamp): every
// row sees only what was known at its time of prediction, against the
// reference, with late-created rows; as_of and as_of_column together, a
// missing or non-time column and a view with aggregations are refused.
func TestAsOfColumnMatchesReference(t *testing.T) {
	ctx := context.Background()
	for seed := range 12 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := newAsOfScenario(t, uint64(40+seed), []int{5, 20, 60}[seed%3])
			s.asOf, s.asOfRowTime = nil, true
			eng := openEngine(t, filepath.Join(s.dir, "data"))
			entities := EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))
			if seed%2 == 1 {
				entities = EntitiesFromArrow(s.arrowEntities(t, 5))
			}
			req := s.request(entities)
			req.AsOfColumn = DefaultTimestampColumn
			s.checkRun(t, eng, req)
		})
	}
	s := newScenario(t, 5, 10)
	eng := openEngine(t, filepath.Join(s.dir, "data"))
	ents := filepath.Join(s.dir, "entities-*.parquet")
	for name, edit := range map[string]func(*Request){
		"both":     func(r *Request) { r.AsOf, r.AsOfColumn = t0, DefaultTimestampColumn },
		"missing":  func(r *Request) { r.AsOfColumn = "nope" },
		"not time": func(r *Request) { r.AsOfColumn = "label" },
	} {
		req := s.request(EntitiesFromParquet(ents))
		edit(req)
		_, err := eng.TrainingSet(ctx, req)
		require.ErrorIs(t, err, ErrInvalidRequest, name)
		require.ErrorContains(t, err, "as_of", name)
	}
}
