package offline

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLatestMatchesReference: for random sources with ties, Latest returns
// per entity the row rule 2 picks among rows in [start, end].
func TestLatestMatchesReference(t *testing.T) {
	ctx := context.Background()
	for seed := range 12 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			s := newScenario(t, uint64(500+seed), 40)
			eng := openEngine(t, filepath.Join(s.dir, "data"))
			start, end := *at(2), *at(8)
			if seed%3 == 0 {
				start = time.Time{} // unbounded
			}
			rr, err := eng.Latest(ctx, &LatestRequest{Defs: s.defs, View: "drivers", Start: start, End: end})
			require.NoError(t, err)
			_, rows := readAll(t, rr)

			want := map[int64]driverRow{}
			best := map[int64]candidate{}
			for f, file := range s.drivers {
				for r, d := range file {
					if d.DriverID == nil || d.EventTimestamp == nil || d.EventTimestamp.After(end) || (!start.IsZero() && d.EventTimestamp.Before(start)) {
						continue
					}
					c := candidate{ts: d.EventTimestamp, created: d.Created, file: f, row: r}
					if b, ok := best[*d.DriverID]; !ok || later(c, b) {
						best[*d.DriverID], want[*d.DriverID] = c, d
					}
				}
			}
			require.Len(t, rows, len(want))
			for _, row := range rows {
				id := row["driver_id"].(int64)
				w, ok := want[id]
				require.True(t, ok, "driver %d", id)
				require.Equal(t, w.ConversionRate, row["conv"], "driver %d", id)
				require.Equal(t, w.Trips, row["trips"], "driver %d", id)
				require.Equal(t, *w.EventTimestamp, row[LatestEventTimeColumn], "driver %d", id)
			}
		})
	}
}

func TestLatestRefusesStreamViews(t *testing.T) {
	s := newScenario(t, 1, 3)
	eng := openEngine(t, filepath.Join(s.dir, "data"))
	_, err := eng.Latest(context.Background(), &LatestRequest{Defs: s.defs, View: "nope", End: *at(1)})
	require.ErrorIs(t, err, ErrInvalidRequest)
	require.ErrorContains(t, err, `unknown feature view "nope"`)
}
