package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quiverdata/quiver/internal/testutil/syncbuf"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/kafkatest"
	"github.com/quiverdata/quiver/internal/quickstart"
)

// TestStreamReloadsRegistry: quiver stream picks up a newly applied
// registry version without a restart. It stops its consumer (flushing and
// committing), starts again on the new definitions, and a view added by
// the new version takes the events that follow.
func TestStreamReloadsRegistry(t *testing.T) {
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	b := kafkatest.Start(t)
	b.CreateTopic(t, "trips", 3)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errb := &syncbuf.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"stream", "--repo", dir, "--brokers", b.Addrs[0], "--reload", "20ms",
			"--flush-interval", "50ms", "--session-timeout", "1s"}, io.Discard, errb)
	}()
	gen := quickstart.NewTripGenerator(5, 0, 9)
	produce := func(n int) {
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			tr := gen.Next(time.Now().UTC().Add(-time.Minute))
			msgs[i] = kafka.Message{Key: tr.Key(), Value: tr.JSON()}
		}
		b.Produce(t, "trips", msgs...)
	}
	waitRows := func(view string, n int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for loggedRows(t, dir, view) < n {
			require.False(t, time.Now().After(deadline), "%s logged %d of %d events; quiver stream said:\n%s", view, loggedRows(t, dir, view), n, errb)
			time.Sleep(20 * time.Millisecond)
		}
	}
	produce(100)
	waitRows("driver_trips", 100)

	// Version 2 adds a stream view over the same topic.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "features", "fares.yaml"), []byte(`feature_views:
  - name: driver_fares
    entities: [driver]
    source: trips
    hop: 1m
    aggregations:
      - {name: fare_max_1h, function: max, column: fare, window: 1h}
`), 0o644))
	code, _, stderr = quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	require.Eventually(t, func() bool { return strings.Contains(errb.String(), "msg=streaming registry_version=2") },
		30*time.Second, 10*time.Millisecond, "quiver stream restarts on version 2:\n%s", errb)
	produce(50)
	waitRows("driver_trips", 150)
	waitRows("driver_fares", 50) // the new view starts at the group's committed offsets

	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, errb.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("quiver stream did not stop:\n%s", errb)
	}
	require.Contains(t, errb.String(), `msg="registry reloaded" from_version=1 to_version=2`)
	require.Equal(t, 150, loggedRows(t, dir, "driver_trips"), "nothing logged twice across the restart")
	require.Equal(t, 150, loggedRows(t, dir, "driver_last_trip"))
	require.Equal(t, 50, loggedRows(t, dir, "driver_fares"))
}
