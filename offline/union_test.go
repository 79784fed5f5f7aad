package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The union form of the join gives the reference's training set on the
// randomized scenarios the ASOF form is checked on (exact ties, ttl
// edges, null keys and times, created-time and source-order tie-breaks),
// from Parquet and from Arrow entity tables.
func TestUnionJoinMatchesReference(t *testing.T) {
	ctx := context.Background()
	sizes := []int{3, 10, 40}
	seeds := 30
	if testing.Short() {
		seeds = 8
	}
	for seed := range seeds {
		size := sizes[seed%len(sizes)]
		if seed%10 == 9 {
			size = 400
		}
		t.Run(fmt.Sprintf("seed%d_size%d", seed, size), func(t *testing.T) {
			s := newScenario(t, uint64(seed), size)
			eng := openEngine(t, filepath.Join(s.dir, "data"))
			eng.join = joinUnion
			entities := EntitiesFromParquet(filepath.Join(s.dir, "entities-*.parquet"))
			if seed%3 == 2 {
				entities = EntitiesFromArrow(s.arrowEntities(t, 7))
			}
			rr, err := eng.TrainingSet(ctx, s.request(entities))
			require.NoError(t, err)
			_, rows := readAll(t, rr)
			s.check(t, rows)
		})
	}
}
