package registry

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheckTime(t *testing.T) {
	for _, ok := range []time.Time{MinTime, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), MaxTime.Add(-time.Microsecond)} {
		require.NoError(t, CheckTime(ok), ok)
	}
	require.EqualError(t, CheckTime(time.Date(-249, 3, 1, 0, 0, 0, 0, time.UTC)),
		"time year -249 (03-01T00:00:00Z) is out of range: times must be from 1900-01-01T00:00:00Z through 9999-12-31T23:59:59.999999Z")
	require.ErrorContains(t, CheckTime(MinTime.Add(-time.Microsecond)), "time 1899-12-31T23:59:59.999999Z is out of range")
	require.ErrorContains(t, CheckTime(MaxTime), "time year 10000 (01-01T00:00:00Z) is out of range")
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("QUIVER_TEST_HOST", "k1")
	for in, want := range map[string]string{
		"${QUIVER_TEST_HOST}:9092":         "k1:9092",
		"${QUIVER_TEST_UNSET:-local:9092}": "local:9092",
		"${QUIVER_TEST_HOST:-x}:1,b:2":     "k1:1,b:2",
		"plain:9092":                       "plain:9092",
	} {
		got, err := ExpandEnv(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := ExpandEnv("${QUIVER_TEST_UNSET}:9092")
	require.EqualError(t, err, `"${QUIVER_TEST_UNSET}:9092": environment variable QUIVER_TEST_UNSET is not set (set it, or give a default: ${QUIVER_TEST_UNSET:-value})`)
}
