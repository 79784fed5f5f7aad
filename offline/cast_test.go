package offline

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/registry"
)

// A UTC timestamp becomes a plain one from its microseconds, not by a
// CAST through the session's time zone (about 50 times slower); other
// timestamp types are cast, and a plain timestamp is left alone.
func TestCastToTimestamp(t *testing.T) {
	require.Equal(t, `make_timestamp(epoch_us("ts"))`, castTo("TIMESTAMP WITH TIME ZONE", `"ts"`, registry.TypeTimestamp))
	require.Equal(t, `CAST("ts" AS TIMESTAMP)`, castTo("TIMESTAMP_NS", `"ts"`, registry.TypeTimestamp))
	require.Equal(t, `CAST("ts" AS TIMESTAMP)`, castTo("DATE", `"ts"`, registry.TypeTimestamp))
	require.Equal(t, `"ts"`, castTo("TIMESTAMP", `"ts"`, registry.TypeTimestamp))
}
