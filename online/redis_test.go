package online

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quiverdata/quiver/internal/testutil/syncbuf"

	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/testutil/redistest"
)

func TestRedisConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) Store {
		srv := redistest.Start(t)
		s, err := OpenRedis(context.Background(), RedisOptions{Addr: srv.Addr()})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestRedisClusterConformance(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	runConformance(t, func(t *testing.T) Store {
		s, err := OpenRedis(context.Background(), RedisOptions{Addrs: cluster.Addrs()})
		require.NoError(t, err)
		t.Cleanup(func() {
			// Leave the cluster empty for the next subtest.
			for _, srv := range cluster.Servers {
				_, _ = srv.Do("FLUSHALL")
			}
			require.NoError(t, s.Close())
		})
		return s
	})
}

// TestRedisKeysShareASlotPerEntity checks the key layout: an entity's
// views land on one Cluster slot.
func TestRedisKeysShareASlotPerEntity(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	srv := cluster.Servers[0]
	k1 := RedisKey(Key{Project: "rides", View: "driver_hourly", Entity: []byte("1001")})
	k2 := RedisKey(Key{Project: "rides", View: "driver_trips", Entity: []byte("1001")})
	require.Equal(t, "rides:{1001}:driver_hourly", k1)
	s1, err := srv.Do("CLUSTER", "KEYSLOT", k1)
	require.NoError(t, err)
	s2, err := srv.Do("CLUSTER", "KEYSLOT", k2)
	require.NoError(t, err)
	require.Equal(t, s1, s2)
}

// TestRedisUnavailableAndRecovery: with Redis down a read fails with
// ErrUnavailable within its deadline; when Redis is back on the same
// address the same store works again, without being reopened, and loads
// its write script again.
func TestRedisUnavailableAndRecovery(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s, err := OpenRedis(ctx, RedisOptions{Addr: srv.Addr(), DialTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	defer s.Close()
	defs := testDefinitions(t)
	c := NewCodec(defs.FeatureView("v1"))
	_, err = s.Write(ctx, []Row{xRow(t, c, "v1", 1, base, 1)}, WriteOptions{})
	require.NoError(t, err)

	srv.Stop()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = s.Read(rctx, []Key{{Project: "conf", View: "v1", Entity: intKey(1)}})
	cancel()
	require.ErrorIs(t, err, ErrUnavailable)
	_, err = s.Write(ctx, []Row{xRow(t, c, "v1", 1, base, 2)}, WriteOptions{})
	require.ErrorIs(t, err, ErrUnavailable)

	restartOnPort(t, srv.Port())
	require.Eventually(t, func() bool {
		_, err := s.Read(ctx, []Key{{Project: "conf", View: "v1", Entity: intKey(1)}})
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "the store recovers without a restart")
	// The new server has no script: the write reloads it.
	res, err := s.Write(ctx, []Row{xRow(t, c, "v1", 1, base, 3)}, WriteOptions{})
	require.NoError(t, err)
	require.Equal(t, WriteResult{Written: 1}, res)
}

// restartOnPort starts a plain redis-server on a port a stopped test
// server used.
func restartOnPort(t *testing.T, port int) {
	t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // the test is over; the exit status is of no interest
		_ = cmd.Wait()
	})
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 100*time.Millisecond)
		if err != nil {
			return false
		}
		return c.Close() == nil
	}, 10*time.Second, 20*time.Millisecond)
}

// TestRedisLogsAreStructured: what go-redis logs itself (its pool's
// failed dials) goes to the slog logger, as records, not to stderr.
func TestRedisLogsAreStructured(t *testing.T) {
	var out syncbuf.Buffer
	SetRedisLogger(slog.New(slog.NewJSONHandler(&out, nil)))
	t.Cleanup(func() { SetRedisLogger(slog.Default()) })
	srv := redistest.Start(t)
	ctx := context.Background()
	s, err := OpenRedis(ctx, RedisOptions{Addr: srv.Addr()})
	require.NoError(t, err)
	defer s.Close()
	srv.Stop()
	_, err = s.Read(ctx, []Key{{Project: "conf", View: "v1", Entity: intKey(1)}})
	require.ErrorIs(t, err, ErrUnavailable)

	text := strings.TrimSpace(out.String())
	require.NotEmpty(t, text, "the failed dial was logged")
	for _, line := range strings.Split(text, "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "a structured record: %s", line)
		require.Equal(t, "redis client", rec["msg"])
		require.Equal(t, "WARN", rec["level"])
	}
	require.Contains(t, text, "failed to dial")
}
