package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/quiverdata/quiver/internal/testutil/syncbuf"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/kafkatest"
	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/streamlog"
)

// child is a quiver process started from the test binary.
type child struct {
	cmd *exec.Cmd
	out *syncbuf.Buffer
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "QUIVER_TEST_CHILD=1")
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	return &child{cmd: cmd, out: out}
}

// TestStreamCrashes kills quiver stream with SIGKILL at random moments
// while events flow, restarting it each time. At the end every event is in
// each view's offline log exactly once (the manifests cover every offset
// of every partition once), and quiver verify finds the online store equal
// to the point-in-time join at the watermark.
func TestStreamCrashes(t *testing.T) {
	events := 1_000_000
	if testing.Short() {
		events = 100_000
	}
	dir := initRepo(t)
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	b := kafkatest.Start(t)
	topic := "trips"
	b.CreateTopic(t, topic, 3)

	// The producer sends every event once, in batches, while the stream
	// is killed and restarted.
	produced := make(chan error, 1)
	go func() {
		w := b.Writer(topic)
		defer w.Close()
		gen := quickstart.NewTripGenerator(200, 2*time.Minute, 7)
		start := time.Now().UTC().Add(-4 * time.Hour).Truncate(time.Hour) // 1M events span 2.8h
		batch := make([]kafka.Message, 0, 5000)
		for i := range events {
			tr := gen.Next(start.Add(time.Duration(i) * 10 * time.Millisecond))
			batch = append(batch, kafka.Message{Key: tr.Key(), Value: tr.JSON()})
			if len(batch) == cap(batch) || i == events-1 {
				if err := w.WriteMessages(context.Background(), batch...); err != nil {
					produced <- err
					return
				}
				batch = batch[:0]
			}
		}
		produced <- nil
	}()

	args := []string{"stream", "--repo", dir, "--brokers", b.Addrs[0], "--session-timeout", "1s", "--flush-interval", "200ms"}
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	kills, midFlow, logged := 0, 0, 0
	for ; kills < 8; kills++ {
		c := startChild(t, args...)
		if kills%3 != 0 {
			// Most kills come once it consumes, after it logged more;
			// the others while it starts or joins.
			waitJoined(t, c)
			waitLogged(t, dir, logged, events, c)
		}
		time.Sleep(time.Duration(r.IntN(400)) * time.Millisecond)
		require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
		_ = c.cmd.Wait() // killed
		logged = loggedRows(t, dir, "driver_trips")
		if logged > 0 && logged < events {
			midFlow++
		}
		t.Logf("kill %d: logged %d events", kills+1, logged)
	}
	// The kills must have cut the stream while it worked, not only before
	// it began or after it finished.
	require.GreaterOrEqual(t, midFlow, 3, "kills while events flowed")
	require.NoError(t, <-produced)

	c := startChild(t, args...)
	deadline := time.Now().Add(5 * time.Minute)
	waitJoined(t, c) // it handles signals by then
	for loggedRows(t, dir, "driver_trips") < events || loggedRows(t, dir, "driver_last_trip") < events {
		if time.Now().After(deadline) || c.cmd.ProcessState != nil {
			// SIGQUIT makes the child print its goroutines before it exits.
			_ = c.cmd.Process.Signal(syscall.SIGQUIT)
			_ = c.cmd.Wait()
			t.Fatalf("logged %d of %d events; quiver stream said:\n%s", loggedRows(t, dir, "driver_trips"), events, c.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, c.cmd.Wait(), c.out.String())

	for _, view := range []string{"driver_trips", "driver_last_trip"} {
		require.Equal(t, events, loggedRows(t, dir, view), view)
		checkCoverage(t, dir, view, topic)
	}
	code, out, stderr := quiver(t, "verify", "--repo", dir)
	require.Equal(t, 0, code, "verify:\n%s%s", out, stderr)
	t.Logf("%d kills; verify:\n%s", kills, out)
}

// waitJoined waits until the child logs that it joined the group.
func waitJoined(t *testing.T, c *child) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(c.out.String(), "consumer group generation") {
		require.False(t, time.Now().After(deadline), c.out.String())
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLogged waits until the view driver_trips logged more than n events
// (or all of them).
func waitLogged(t *testing.T, dir string, n, events int, c *child) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for m := loggedRows(t, dir, "driver_trips"); m <= n && m < events; m = loggedRows(t, dir, "driver_trips") {
		require.False(t, time.Now().After(deadline), "no progress past %d events; quiver stream said:\n%s", n, c.out)
		time.Sleep(20 * time.Millisecond)
	}
}

// loggedRows counts the rows the view's committed manifests hold.
func loggedRows(t *testing.T, dir, view string) int {
	t.Helper()
	ms, err := streamlog.Manifests(dataRoot(t, dir), view)
	require.NoError(t, err)
	n := 0
	for _, m := range ms {
		for _, f := range m.Files {
			n += int(f.Rows)
		}
	}
	return n
}

// checkCoverage checks that the view's manifests cover each partition's
// offsets from 0 with neither gaps nor overlaps, and that every batch's
// rows match its offset range.
func checkCoverage(t *testing.T, dir, view, topic string) {
	t.Helper()
	ms, err := streamlog.Manifests(dataRoot(t, dir), view)
	require.NoError(t, err)
	byPart := map[int32][]*streamlog.Manifest{}
	for _, m := range ms {
		require.Equal(t, topic, m.Stream)
		byPart[m.Partition] = append(byPart[m.Partition], m)
	}
	for p, list := range byPart {
		sort.Slice(list, func(i, j int) bool { return list[i].FirstOffset < list[j].FirstOffset })
		next := int64(0)
		for _, m := range list {
			require.Equal(t, next, m.FirstOffset, "view %s partition %d: batch %s", view, p, m.Batch)
			rows := int64(0)
			for _, f := range m.Files {
				rows += f.Rows
			}
			require.Equal(t, m.LastOffset-m.FirstOffset+1, rows, fmt.Sprintf("batch %s", m.Batch))
			next = m.LastOffset + 1
		}
	}
}

func dataRoot(t *testing.T, dir string) string {
	t.Helper()
	cfg, err := registry.LoadConfig(dir, registry.LoadOptions{})
	require.NoError(t, err)
	return cfg.DataRoot()
}
