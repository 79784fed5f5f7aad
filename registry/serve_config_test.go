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
  drain_delay: 5s
  shutdown_timeout: 20s
`), func(string) (string, bool) { return "", false })
	require.NoError(t, errs.Err())
	require.Equal(t, 5*time.Second, cfg.Serve.ReadTimeout.Std())
	require.Equal(t, 20*time.Second, cfg.Serve.WriteTimeout.Std())
	require.Equal(t, time.Minute, cfg.Serve.IdleTimeout.Std())
	require.Equal(t, 3*time.Second, cfg.Serve.RequestTimeout.Std())
	require.Equal(t, 100, cfg.Serve.MaxConnections)
	require.Equal(t, 50, cfg.Serve.MaxConcurrentStreams)
	require.Equal(t, 5*time.Second, cfg.Serve.DrainDelay.Std())
	require.Equal(t, 20*time.Second, cfg.Serve.ShutdownTimeout.Std())

	_, errs = ParseConfig([]byte("project: rides\nserve: {max_connections: -1, max_concurrent_streams: -2, drain_delay: -1s}\n"), func(string) (string, bool) { return "", false })
	require.ErrorContains(t, errs.Err(), "serve.max_connections: must not be negative")
	require.ErrorContains(t, errs.Err(), `serve.drain_delay: "-1s" is not a duration`)
	require.ErrorContains(t, errs.Err(), "serve.max_concurrent_streams: must not be negative")
}

// TestServeFlightLimits: the Arrow IPC input limits of Flight are read
// from serve.flight_limits; negative values and message bodies over the
// Flight message cap are errors, each named.
func TestServeFlightLimits(t *testing.T) {
	cfg, errs := ParseConfig([]byte(`project: rides
serve:
  flight_limits:
    max_metadata_bytes: 65536
    max_message_bytes: 1048576
    max_stream_bytes: 1073741824
    max_fields: 100
    max_depth: 4
    max_batch_rows: 100000
`), func(string) (string, bool) { return "", false })
	require.NoError(t, errs.Err())
	require.Equal(t, FlightLimits{MaxMetadataBytes: 65536, MaxMessageBytes: 1 << 20, MaxStreamBytes: 1 << 30,
		MaxFields: 100, MaxDepth: 4, MaxBatchRows: 100_000}, cfg.Serve.FlightLimits)

	_, errs = ParseConfig([]byte(`project: rides
serve:
  flight_limits: {max_fields: -1, max_depth: -1, max_message_bytes: 67108865}
`), func(string) (string, bool) { return "", false })
	require.ErrorContains(t, errs.Err(), "serve.flight_limits.max_fields: must not be negative")
	require.ErrorContains(t, errs.Err(), "serve.flight_limits.max_depth: must not be negative")
	require.ErrorContains(t, errs.Err(), "serve.flight_limits.max_message_bytes: 67108865 is over 67108864, the most one Flight message may carry")
}

// TestRegistryLocation: quiver.yaml's registry is a directory, a file://
// URL or s3://bucket/prefix; another scheme or a malformed S3 URI is
// reported at its line.
func TestRegistryLocation(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	for _, loc := range []string{".quiver/registry", "/srv/registry", "file:///srv/registry", "s3://features/registry", "s3://features"} {
		cfg, errs := ParseConfig([]byte("project: rides\nregistry: "+loc+"\n"), none)
		require.NoError(t, errs.Err(), loc)
		require.Equal(t, loc, cfg.RegistryPath())
	}
	_, errs := ParseConfig([]byte("project: rides\nregistry: gs://features/registry\n"), none)
	require.ErrorContains(t, errs.Err(), `quiver.yaml:2:1: registry: "gs://features/registry": gs:// registries are not supported; use a directory or s3://bucket/prefix`)
	_, errs = ParseConfig([]byte("project: rides\nregistry: s3://Features_Bucket/registry\n"), none)
	require.ErrorContains(t, errs.Err(), "registry: quiver: invalid storage address")
}

// TestOfflineEngineConfig: offline.engine picks duckdb (the default) or
// spark; spark needs an sc:// remote, and a remote with the duckdb engine
// is an error rather than silently ignored.
func TestOfflineEngineConfig(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	cfg, errs := ParseConfig([]byte(`project: rides
offline:
  engine: spark
  spark:
    remote: sc://spark.internal:15002;token=abc
    conf: {spark.sql.shuffle.partitions: "400"}
`), noEnv)
	require.NoError(t, errs.Err())
	require.Equal(t, EngineSpark, cfg.Offline.Engine)
	require.Equal(t, "sc://spark.internal:15002;token=abc", cfg.Offline.Spark.Remote)
	require.Equal(t, map[string]string{"spark.sql.shuffle.partitions": "400"}, cfg.Offline.Spark.Conf)
	require.Equal(t, ".quiver/compact", cfg.Offline.Compact.Dir, "the compacted copies' default directory")

	cfg, errs = ParseConfig([]byte("project: rides\n"), noEnv)
	require.NoError(t, errs.Err())
	require.Empty(t, cfg.Offline.Spark.Remote)

	for yaml, want := range map[string]string{
		"offline: {engine: spark}":                                         "offline.spark: engine spark needs remote: sc://host:15002",
		"offline: {engine: presto}":                                        `offline.engine: "presto" is not an engine; want duckdb or spark`,
		"offline: {spark: {remote: 'sc://h:15002'}}":                       "offline.spark.remote: is set, but the engine is duckdb",
		"offline: {engine: spark, spark: {remote: 'h:15002'}}":             `offline.spark.remote: "h:15002" is not a Spark Connect address`,
		"offline: {engine: spark, spark: {remote: 'sc://h', out: driver}}": `offline.spark.out: "driver" is not a writer; want cluster or client`,
	} {
		_, errs := ParseConfig([]byte("project: rides\n"+yaml+"\n"), noEnv)
		require.ErrorContains(t, errs.Err(), want, yaml)
	}
	// The remote may come from the environment (it often carries a token).
	cfg, errs = ParseConfig([]byte("project: rides\noffline: {engine: spark, spark: {remote: '${SPARK_REMOTE}'}}\n"),
		func(k string) (string, bool) { return "sc://h:15002", k == "SPARK_REMOTE" })
	require.NoError(t, errs.Err())
	require.Equal(t, "sc://h:15002", cfg.Offline.Spark.Remote)
}
