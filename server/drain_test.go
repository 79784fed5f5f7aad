package server

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
)

// TestDrainDelay: told to stop, a server with a drain delay answers
// /readyz with 503 "draining" and gRPC health NOT_SERVING at once, goes
// on serving lookups for the delay, and only then stops.
func TestDrainDelay(t *testing.T) {
	defs, errs := registry.ParseDefinitions("srv", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(defsYAML)})
	require.NoError(t, errs.Err())
	snap := &registry.Snapshot{Project: "srv", Version: 1, Hash: "sha256:x", Defs: defs}
	store := embedded(t)
	lookup := online.NewLookup(store, online.LookupOptions{Now: func() time.Time { return now }})
	serving := NewServing(lookup, func() *registry.Snapshot { return snap }, Limits{MaxEntities: 3}, "test")
	const delay = 700 * time.Millisecond
	srv, err := New(Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DrainDelay: delay}, serving, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	base := "http://" + srv.HTTPAddr().String()
	conn, err := grpc.NewClient(srv.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)

	ready := func() (int, string) {
		r, err := http.Get(base + "/readyz")
		require.NoError(t, err)
		defer r.Body.Close()
		var body struct{ Status string }
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		return r.StatusCode, body.Status
	}
	code, status := ready()
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ready", status)

	cancel()
	stopped := time.Now()
	require.Eventually(t, func() bool {
		code, status := ready()
		return code == http.StatusServiceUnavailable && status == "draining"
	}, delay/2, 10*time.Millisecond, "/readyz answers 503 draining soon after the stop")
	hr, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, hr.Status)
	// Still serving while draining.
	r, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	require.NoError(t, r.Body.Close())
	require.Equal(t, http.StatusOK, r.StatusCode)
	require.NoError(t, <-done)
	require.GreaterOrEqual(t, time.Since(stopped), delay, "Serve returns after the delay")
	_, err = http.Get(base + "/healthz")
	require.Error(t, err, "stopped after the delay")
}
