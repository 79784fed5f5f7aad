package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// An explicit list of entity files reads as the glob over them does, in
// the order listed; a listed name holding glob characters is refused,
// since DuckDB would expand it.
func TestParquetFileListMatchesReference(t *testing.T) {
	ctx := context.Background()
	for seed := range 4 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := newScenario(t, uint64(200+seed), 30)
			eng := openEngine(t, filepath.Join(s.dir, "data"))
			files, err := filepath.Glob(filepath.Join(s.dir, "entities-*.parquet"))
			require.NoError(t, err)
			require.NotEmpty(t, files)
			rr, err := eng.TrainingSet(ctx, s.request(EntitiesFromParquetFiles(files)))
			require.NoError(t, err)
			_, rows := readAll(t, rr)
			s.check(t, rows)
		})
	}
	s := newScenario(t, 300, 3)
	eng := openEngine(t, filepath.Join(s.dir, "data"))
	for _, files := range [][]string{{filepath.Join(s.dir, "entities-*.parquet")}, {filepath.Join(s.dir, "entities-[0].parquet")}, {}} {
		_, err := eng.TrainingSet(ctx, s.request(EntitiesFromParquetFiles(files)))
		require.ErrorIs(t, err, ErrInvalidRequest, "%q", files)
	}
}
