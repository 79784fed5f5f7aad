package stream

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/quiverdata/quiver/internal/testutil/syncbuf"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/kafkatest"
	"github.com/quiverdata/quiver/streamlog"
)

// runConsumer starts a consumer of the group over f's store; stop cancels
// it and returns what Consume returned.
func runConsumer(t *testing.T, f *fixture, brokers []string, group string, log *slog.Logger) (m *Metrics, stop func() error, done <-chan error) {
	t.Helper()
	m = NewMetrics(nil)
	a, err := NewApplier(f.repo.Defs, f.store, f.root, m, nil)
	require.NoError(t, err)
	a.MaxFuture = 100 * 365 * 24 * time.Hour // fixed event times, whatever the clock says
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch := make(chan error, 1)
	go func() {
		ch <- a.Consume(ctx, KafkaOptions{Brokers: brokers, Group: group, FlushInterval: 50 * time.Millisecond,
			SessionTimeout: time.Second, Logger: log})
	}()
	return m, func() error {
		cancel()
		select {
		case err := <-ch:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("Consume did not return after cancel")
			return nil
		}
	}, ch
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		require.False(t, time.Now().After(deadline), "waiting for %s", what)
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKafkaTimeOutOfRangeIsDeadLettered: a message whose event time no
// sink can hold (year -249) goes to the dead-letter topic with its
// reason and a log line, and the events after it in its partition are
// applied online and logged.
func TestKafkaTimeOutOfRangeIsDeadLettered(t *testing.T) {
	f := newFixture(t)
	b := kafkatest.Start(t)
	topic := "trips"
	b.CreateTopic(t, topic, 3)
	ts := trips(600, 5, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), 7)
	bad := []kafka.Message{
		{Key: []byte("1001"), Value: []byte(`{"driver_id": 1001, "rider_id": "r", "fare": 1, "ts": -70000000000000}`)},
		{Key: []byte("1002"), Value: []byte(`{"driver_id": 1002, "rider_id": "r", "fare": 1, "ts": "0001-01-01T00:00:00Z"}`)},
		// A long value is cut in the reason and in the log line.
		{Key: []byte("1003"), Value: []byte(`{"` + strings.Repeat("a", 3000) + `": 1}`)},
	}
	msgs := messages(ts)
	msgs = append(msgs[:300], append(bad, msgs[300:]...)...)
	b.Produce(t, topic, msgs...)

	var logs syncbuf.Buffer
	m, stop, _ := runConsumer(t, f, b.Addrs, "g", slog.New(slog.NewTextHandler(&logs, nil)))
	waitUntil(t, "every event logged", func() bool {
		return logRows(t, f.root, "driver_trips") >= len(ts) && logRows(t, f.root, "driver_last_trip") >= len(ts)
	})
	require.NoError(t, stop())
	require.Equal(t, len(ts), logRows(t, f.root, "driver_trips"))
	checkOnline(t, f, ts)
	require.Equal(t, 3.0, testutil.ToFloat64(m.DeadLetters.WithLabelValues("trips")))
	reasons := readDeadLetters(t, b, topic+".dlq")
	require.Len(t, reasons, 3)
	long := reasons[string(bad[2].Value)]
	require.True(t, strings.HasPrefix(long, "field aaaa"), long)
	require.True(t, strings.HasSuffix(long, "… (3035 bytes)"), long)
	require.Less(t, len(long), 1100)
	require.Regexp(t, `msg="dead letter" topic=trips partition=\d offset=\d+ reason="field a{240,256}… \(3035 bytes\)"`, logs.String())
	require.Contains(t, reasons[string(bad[0].Value)], "field ts: -70000000000000 epoch milliseconds: time year -249 (")
	require.Contains(t, reasons[string(bad[0].Value)], "is out of range: times must be from 1900-01-01T00:00:00Z through 9999-12-31T23:59:59.999999Z")
	require.Equal(t, "field ts: time 0001-01-01T00:00:00Z is out of range: times must be from 1900-01-01T00:00:00Z through 9999-12-31T23:59:59.999999Z",
		reasons[string(bad[1].Value)])
	lines := regexp.MustCompile(`msg="dead letter" topic=trips partition=\d offset=\d+ reason="field ts: (-70000000000000 epoch milliseconds: )?time `).FindAllString(logs.String(), -1)
	require.Len(t, lines, 2, logs.String())
	require.Less(t, len(logs.String()), 4000, "no value logged in full")
	// Each line names the message's partition and offset in the source
	// topic, as its headers do.
	for _, where := range deadLetterPlaces(t, b, topic+".dlq") {
		require.Contains(t, logs.String(), `msg="dead letter" topic=trips `+where+` reason=`)
	}
	for p := range 3 {
		require.Zero(t, testutil.ToFloat64(m.Stalled.WithLabelValues(topic, string(rune('0'+p)))), "partition %d", p)
	}
}

// deadLetterPlaces returns "partition=P offset=O" of each dead letter in
// topic, from its headers.
func deadLetterPlaces(t *testing.T, b *kafkatest.Broker, topic string) []string {
	t.Helper()
	var out []string
	for _, m := range fetchAll(t, b, topic) {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		out = append(out, "partition="+h["quiver-partition"]+" offset="+h["quiver-offset"])
	}
	return out
}

// readDeadLetters reads every partition of a dead-letter topic: the
// reason of each message, by its value.
func readDeadLetters(t *testing.T, b *kafkatest.Broker, topic string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range fetchAll(t, b, topic) {
		for _, h := range m.Headers {
			if h.Key == "quiver-reason" {
				out[string(m.Value)] = string(h.Value)
			}
		}
	}
	return out
}

// fetchAll reads every message of every partition of topic.
func fetchAll(t *testing.T, b *kafkatest.Broker, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kafka.DialLeader(ctx, "tcp", b.Addrs[0], topic, 0)
	require.NoError(t, err)
	parts, err := conn.ReadPartitions(topic)
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	var out []kafka.Message
	for _, p := range parts {
		c, err := kafka.DialLeader(ctx, "tcp", b.Addrs[0], topic, p.ID)
		require.NoError(t, err)
		end, err := c.ReadLastOffset()
		require.NoError(t, err)
		require.NoError(t, c.Close())
		if end == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs, Topic: topic, Partition: p.ID, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 50 * time.Millisecond})
		for {
			m, err := r.FetchMessage(ctx)
			require.NoError(t, err)
			out = append(out, m)
			if m.Offset+1 >= end {
				break
			}
		}
		require.NoError(t, r.Close())
	}
	return out
}

// TestStalledPartitionIsVisible: while the offline log cannot be
// written, the partition retries without skipping anything, and says
// so: the stalled gauge is 1, retries are counted, the lag is not 0 and
// a warning is logged. Once the log can be written again, every event is
// logged once and the gauge goes back to 0.
func TestStalledPartitionIsVisible(t *testing.T) {
	f := newFixture(t)
	b := kafkatest.Start(t)
	topic := "trips"
	b.CreateTopic(t, topic, 1)
	// A file where the log's date directory goes.
	dateDir := filepath.Join(streamlog.ViewDir(f.root, "driver_trips"), "date=2026-11-23")
	require.NoError(t, os.MkdirAll(filepath.Dir(dateDir), 0o755))
	require.NoError(t, os.WriteFile(dateDir, nil, 0o644))
	ts := trips(200, 5, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), 8)
	b.Produce(t, topic, messages(ts)...)

	var logs syncbuf.Buffer
	m, stop, _ := runConsumer(t, f, b.Addrs, "g", slog.New(slog.NewTextHandler(&logs, nil)))
	retries := func() float64 { return testutil.ToFloat64(m.Retries.WithLabelValues(topic, "0", "write offline log")) }
	waitUntil(t, "retries of the offline log", func() bool { return retries() >= 2 })
	require.Equal(t, 1.0, testutil.ToFloat64(m.Stalled.WithLabelValues(topic, "0")))
	stalls := m.Stalls()
	require.Len(t, stalls, 1)
	require.Equal(t, Stall{Topic: topic, Partition: 0, Op: "write offline log", Since: stalls[0].Since}, stalls[0])
	require.Equal(t, float64(len(ts)), testutil.ToFloat64(m.Lag.WithLabelValues(topic, "0")),
		"every message is waiting for the log")
	require.Contains(t, logs.String(), `msg="partition stalled" topic=trips partition=0 op="write offline log"`)
	require.Contains(t, logs.String(), "from_offset=0")
	require.Zero(t, logRows(t, f.root, "driver_trips"))

	require.NoError(t, os.Remove(dateDir))
	waitUntil(t, "every event logged", func() bool { return logRows(t, f.root, "driver_trips") >= len(ts) })
	waitUntil(t, "the stall to clear", func() bool { return testutil.ToFloat64(m.Stalled.WithLabelValues(topic, "0")) == 0 })
	waitUntil(t, "no lag", func() bool { return testutil.ToFloat64(m.Lag.WithLabelValues(topic, "0")) == 0 })
	require.Empty(t, m.Stalls())
	require.NoError(t, stop())
	require.Equal(t, len(ts), logRows(t, f.root, "driver_trips"))
	require.Equal(t, len(ts), logRows(t, f.root, "driver_last_trip"))
	require.Contains(t, logs.String(), `msg="partition recovered" topic=trips partition=0 op="write offline log"`)
	checkOnline(t, f, ts)
}

// TestConsumeFailsWhenAPartitionCannotStart: a partition whose offline
// log cannot be read stops Consume with the error, instead of staying
// assigned and unconsumed.
func TestConsumeFailsWhenAPartitionCannotStart(t *testing.T) {
	f := newFixture(t)
	b := kafkatest.Start(t)
	topic := "trips"
	b.CreateTopic(t, topic, 2)
	b.Produce(t, topic, messages(trips(20, 5, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), 9))...)
	_, _, done := runConsumerBroken(t, f, b.Addrs)
	select {
	case err := <-done:
		require.ErrorContains(t, err, "read the offline log's offsets")
		require.True(t, strings.Contains(err.Error(), "partition trips/0") || strings.Contains(err.Error(), "partition trips/1"), err)
	case <-time.After(60 * time.Second):
		t.Fatal("Consume went on with a partition it cannot consume")
	}
}

// runConsumerBroken starts a consumer whose view driver_trips has a file
// where its manifests directory goes.
func runConsumerBroken(t *testing.T, f *fixture, brokers []string) (*Metrics, func() error, <-chan error) {
	t.Helper()
	m := NewMetrics(nil)
	a, err := NewApplier(f.repo.Defs, f.store, f.root, m, nil)
	require.NoError(t, err)
	manifests := filepath.Join(streamlog.ViewDir(f.root, "driver_trips"), "_manifests")
	require.NoError(t, os.Remove(manifests))
	require.NoError(t, os.WriteFile(manifests, nil, 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch := make(chan error, 1)
	go func() {
		ch <- a.Consume(ctx, KafkaOptions{Brokers: brokers, Group: "g", FlushInterval: 50 * time.Millisecond, SessionTimeout: time.Second,
			Logger: slog.New(slog.NewTextHandler(&syncbuf.Buffer{}, nil))})
	}()
	return m, func() error { cancel(); return <-ch }, ch
}

func TestCut(t *testing.T) {
	require.Equal(t, "short", cut("short", 10))
	require.Equal(t, "ab… (6 bytes)", cut("abcdef", 2))
	require.Equal(t, "a… (4 bytes)", cut("aé!", 2), "never in the middle of a rune")
}
