package registry

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "48h": 48 * time.Hour, "7d": 7 * 24 * time.Hour, "1w": 7 * 24 * time.Hour,
		"1h30m": 90 * time.Minute, "500ms": 500 * time.Millisecond, "1.5h": 90 * time.Minute, " 10m ": 10 * time.Minute,
	} {
		got, err := ParseDuration(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got.Std(), in)
	}
	for _, in := range []string{"", "3 dayz", "-1h", "h", "10", "1y", "1h-", "1..5h", "99999999999999999999d"} {
		_, err := ParseDuration(in)
		require.Error(t, err, in)
	}
	_, err := ParseDuration("3 dayz")
	require.EqualError(t, err, `"3 dayz" is not a duration (e.g. 72h, 7d, 30m)`)
}

func TestDurationString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 48 * time.Hour: "48h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s",
		time.Minute: "1m", 500 * time.Millisecond: "500ms", time.Hour + time.Second: "1h0m1s",
	} {
		require.Equal(t, want, Duration(d).String())
		back, err := ParseDuration(want)
		require.NoError(t, err)
		require.Equal(t, d, back.Std(), "String parses back")
	}
}

func TestParseValueType(t *testing.T) {
	for _, s := range []string{"int32", "int64", "float32", "float64", "bool", "string", "bytes", "timestamp",
		"list<int32>", "list<float32>", "list<timestamp>", "list<bytes>"} {
		vt, err := ParseValueType(s)
		require.NoError(t, err, s)
		require.Equal(t, s, vt.String())
	}
	vt, err := ParseValueType(" list< float32 > ")
	require.NoError(t, err)
	require.Equal(t, ValueType{Elem: Float32, List: true}, vt)
	for _, s := range []string{"", "float", "list<>", "list<list<int64>>", "list<float32", "map<string,int64>", "Int64"} {
		_, err := ParseValueType(s)
		require.Error(t, err, s)
	}
}

func TestInterpolate(t *testing.T) {
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"HOST": "redis", "EMPTY": ""}[k]
		return v, ok
	}
	for in, want := range map[string]string{
		"plain": "plain", "${HOST}:6379": "redis:6379", "${MISSING:-local}": "local",
		"${EMPTY:-fallback}": "fallback", "$$HOST": "$HOST", "a$b": "a$b", "${HOST}${HOST}": "redisredis",
		"${MISSING:-}": "",
	} {
		got, missing, err := interpolate(in, env)
		require.NoError(t, err, in)
		require.Empty(t, missing, in)
		require.Equal(t, want, got, in)
	}
	_, missing, err := interpolate("${A}-${HOST}-${B}", env)
	require.NoError(t, err)
	require.Equal(t, []string{"A", "B"}, missing)
	for _, bad := range []string{"${", "${HOST", "${1X}", "${}", "${A B}"} {
		_, _, err := interpolate(bad, env)
		require.Error(t, err, bad)
	}
}

func TestConfigRequireAndDefaults(t *testing.T) {
	cfg, errs := ParseConfig([]byte(`project: rides
online: {type: redis, addr: "${REDIS_ADDR}", password: "${REDIS_PASSWORD}"}
kafka: {brokers: ["${KAFKA_BROKERS}", "k3:9092"]}
`), func(k string) (string, bool) {
		if k == "KAFKA_BROKERS" {
			return "k1:9092, k2:9092", true
		}
		return "", false
	})
	require.NoError(t, errs.Err())
	require.Equal(t, []string{"k1:9092", "k2:9092", "k3:9092"}, cfg.Kafka.Brokers)
	require.Equal(t, ".quiver/registry", cfg.Registry)
	require.Equal(t, "data", cfg.Offline.DataRoot)
	require.Equal(t, "127.0.0.1:6566", cfg.Serve.GRPC)
	require.Empty(t, cfg.Online.Path, "no embedded path for redis")

	require.NoError(t, cfg.Require("kafka", "registry"))
	err := cfg.Require("online")
	require.EqualError(t, err, `2 problems:
quiver.yaml:2:29: online.addr: environment variable REDIS_ADDR is not set (set it, or give a default: ${REDIS_ADDR:-value})
quiver.yaml:2:56: online.password: environment variable REDIS_PASSWORD is not set (set it, or give a default: ${REDIS_PASSWORD:-value})`)
}

func TestResolveFeatureRefs(t *testing.T) {
	defs := testDefs(t, "1h")
	got, err := defs.Resolve([]string{"v:x", "v:*"})
	require.NoError(t, err)
	require.Len(t, got, 1, "duplicates collapse")
	require.Equal(t, "v__x", got[0].FullName())
	_, err = defs.Resolve([]string{"v:y"})
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, err, `view v has no feature "y"`)
	_, err = defs.Resolve([]string{"w:x"})
	require.ErrorContains(t, err, `"w:x" names no feature view`)
	_, err = defs.Resolve([]string{"vx"})
	require.ErrorContains(t, err, "is not a feature reference")
}
