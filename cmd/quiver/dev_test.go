package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiverdata/quiver/internal/testutil/syncbuf"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/quickstart"
)

// TestDevCommand runs quiver dev end to end: trips produced to its
// in-process broker are readable online, pushes go through its HTTP
// server, a malformed message is counted as a dead letter, a newly applied
// kafka source is streamed and served without a restart, and after it
// stops, quiver verify finds the online store equal to the training sets.
func TestDevCommand(t *testing.T) {
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	httpAddr := freeAddr(t)
	_, kport, err := net.SplitHostPort(freeAddr(t))
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	errb := &syncbuf.Buffer{}
	go func() {
		done <- run(ctx, []string{"dev", "--repo", dir, "--kafka-port", kport, "--grpc", "off", "--flight", "off", "--http", httpAddr,
			"--flush-interval", "50ms", "--reload", "20ms"}, io.Discard, errb)
	}()
	post := func(path, body string) (int, string) {
		r, err := http.Post("http://"+httpAddr+path, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer r.Body.Close()
		out, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		return r.StatusCode, string(out)
	}
	require.Eventually(t, func() bool {
		r, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "quiver dev serves: %s", errb)

	w := &kafka.Writer{Addr: kafka.TCP("127.0.0.1:" + kport), Topic: "trips", Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	gen := quickstart.NewTripGenerator(5, 0, 1)
	msgs := []kafka.Message{{Key: []byte("1001"), Value: []byte(`{"driver_id": 1001, "fare": "twelve"}`)}}
	now := time.Now().UTC().Add(-time.Minute)
	for i := range 200 {
		tr := gen.Next(now.Add(time.Duration(i) * time.Millisecond))
		msgs = append(msgs, kafka.Message{Key: tr.Key(), Value: tr.JSON()})
	}
	require.NoError(t, w.WriteMessages(ctx, msgs...))
	require.NoError(t, w.Close())

	// Every trip counts in driver_trips:trips_1d of its driver.
	lookup := `{"entities": {"driver_id": [1001, 1002, 1003, 1004, 1005]}, "features": ["driver_trips:trips_1d"]}`
	require.Eventually(t, func() bool {
		code, body := post("/v1/online-features", lookup)
		var out struct {
			Features []struct {
				Values []any `json:"values"`
			} `json:"features"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil || len(out.Features) != 1 {
			return false
		}
		total := 0.0
		for _, v := range out.Features[0].Values {
			n, _ := v.(float64)
			total += n
		}
		return total == 200
	}, 30*time.Second, 20*time.Millisecond, "every trip online: %s", errb)

	ts := time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano)
	code, body := post("/v1/push", `{"source": "driver_app", "rows": [{"driver_id": 1001, "available": true, "battery": 0.5, "ts": "`+ts+`"}]}`)
	require.Equal(t, http.StatusOK, code, body)

	r, err := http.Get("http://" + httpAddr + "/metrics")
	require.NoError(t, err)
	metrics, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	require.NoError(t, r.Body.Close())
	require.Contains(t, string(metrics), `quiver_stream_dead_letters_total{source="trips"} 1`)
	require.Contains(t, string(metrics), `quiver_stream_events_total{source="driver_app"} 1`)

	// A new registry version with a new kafka source: quiver dev creates
	// its topic, restarts the stream on it and serves its view.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "features", "tips.yaml"), []byte(`sources:
  - name: tips
    kind: kafka
    topic: tips
    format: json
    timestamp_field: ts
    schema:
      - {name: driver_id, type: int64}
      - {name: tip, type: float64}
      - {name: ts, type: timestamp}
feature_views:
  - name: driver_tips
    entities: [driver]
    source: tips
    ttl: 1h
    features:
      - {name: tip, type: float64}
`), 0o644))
	code, _, stderr = quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	require.Eventually(t, func() bool { return strings.Contains(errb.String(), "msg=streaming registry_version=2") },
		30*time.Second, 10*time.Millisecond, "quiver dev streams version 2:\n%s", errb)
	// A new topic's metadata may take a moment to reach a producer, as with
	// any Kafka; the producer tries again.
	var werr error
	require.Eventually(t, func() bool {
		tw := &kafka.Writer{Addr: kafka.TCP("127.0.0.1:" + kport), Topic: "tips", Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
		werr = tw.WriteMessages(ctx, kafka.Message{Key: []byte("1001"), Value: []byte(`{"driver_id": 1001, "tip": 2.5, "ts": "` + ts + `"}`)})
		return errors.Join(werr, tw.Close()) == nil
	}, 10*time.Second, 50*time.Millisecond, "produce to tips: %v", werr)
	require.Eventually(t, func() bool {
		code, body := post("/v1/online-features", `{"entities": {"driver_id": [1001]}, "features": ["driver_tips:tip"]}`)
		return code == http.StatusOK && strings.Contains(body, `"values":[2.5]`)
	}, 30*time.Second, 20*time.Millisecond, "the new view is served: %s", errb)

	cancel() // flushes the offline log and commits
	select {
	case code := <-done:
		require.Equal(t, 0, code, errb.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("quiver dev did not stop: %s", errb)
	}
	require.Contains(t, errb.String(), "msg=dev")

	code, out, stderr := quiver(t, "verify", "--repo", dir, "--views", "driver_trips,driver_last_trip,driver_status")
	require.Equal(t, 0, code, "verify:\n%s%s", out, stderr)
	require.Contains(t, out, "driver_trips")
}
