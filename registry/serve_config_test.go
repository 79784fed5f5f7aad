package registry

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestServeBounds: the serving surfaces' timeouts and connection bounds
// are read from quiver.yaml; negative counts are errors.
func TestServeBounds(t *testing.T) {
	cfg, errs := ParseConfig([]byte(`project: rides
serve:
  read_timeout: 5s
  write_timeout: 20s
  idle_timeout: 1m
  request_timeout: 3s
  max_connections: 100
  max_concurrent_streams: 50
`), func(string) (string, bool) { return "", false })
	require.NoError(t, errs.Err())
	require.Equal(t, 5*time.Second, cfg.Serve.ReadTimeout.Std())
	require.Equal(t, 20*time.Second, cfg.Serve.WriteTimeout.Std())
	require.Equal(t, time.Minute, cfg.Serve.IdleTimeout.Std())
	require.Equal(t, 3*time.Second, cfg.Serve.RequestTimeout.Std())
	require.Equal(t, 100, cfg.Serve.MaxConnections)
	require.Equal(t, 50, cfg.Serve.MaxConcurrentStreams)

	_, errs = ParseConfig([]byte("project: rides\nserve: {max_connections: -1, max_concurrent_streams: -2}\n"), func(string) (string, bool) { return "", false })
	require.ErrorContains(t, errs.Err(), "serve.max_connections: must not be negative")
	require.ErrorContains(t, errs.Err(), "serve.max_concurrent_streams: must not be negative")
}
