package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/server"
)

// TestDevReadyFollowsStalls: the server quiver dev runs beside its stream
// is not ready while a stream partition is stalled: /readyz answers 503
// naming the partition, what fails and for how long, and gRPC health says
// NOT_SERVING for the server and the serving service; both recover once
// the partition goes on.
func TestDevReadyFollowsStalls(t *testing.T) {
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	cfg, err := loadConfig(dir)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	watcher, _, err := followRegistry(ctx, cfg, time.Hour, log, "serving")
	require.NoError(t, err)
	store, err := online.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })

	var mu sync.Mutex
	var stalls []stream.Stall
	setStalls := func(st []stream.Stall) { mu.Lock(); stalls = st; mu.Unlock() }
	getStalls := func() []stream.Stall { mu.Lock(); defer mu.Unlock(); return stalls }

	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	srv, closeSrv, err := newServer(cfg, watcher.Current, store, nil, server.NewMetrics(), log,
		serveAddrs{grpc: grpcAddr, http: httpAddr, flight: "off"}, getStalls)
	require.NoError(t, err)
	t.Cleanup(closeSrv)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, conn.Close()) })
	health := healthpb.NewHealthClient(conn)
	healthIs := func(want healthpb.HealthCheckResponse_ServingStatus) func() bool {
		return func() bool {
			for _, svc := range []string{"", "quiver.serving.v1.Serving"} {
				resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
				if err != nil || resp.Status != want {
					return false
				}
			}
			return true
		}
	}
	readyz := func() (int, string) {
		r, err := http.Get("http://" + httpAddr + "/readyz")
		require.NoError(t, err)
		defer r.Body.Close()
		var body struct {
			Error string `json:"error"`
		}
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		return r.StatusCode, body.Error
	}

	require.Eventually(t, healthIs(healthpb.HealthCheckResponse_SERVING), 10*time.Second, 20*time.Millisecond)
	code, _ = readyz()
	require.Equal(t, http.StatusOK, code)

	setStalls([]stream.Stall{{Topic: "trips", Partition: 1, Op: "write offline log", Since: time.Now().Add(-time.Minute)}})
	code, msg := readyz()
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Regexp(t, `^partition trips/1 stalled: write offline log failing for 1m\ds$`, msg)
	require.Eventually(t, healthIs(healthpb.HealthCheckResponse_NOT_SERVING), 10*time.Second, 20*time.Millisecond,
		"gRPC health NOT_SERVING while a partition is stalled")

	setStalls(nil)
	code, _ = readyz()
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, healthIs(healthpb.HealthCheckResponse_SERVING), 10*time.Second, 20*time.Millisecond,
		"SERVING again once the partition goes on")
}
