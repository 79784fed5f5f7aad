package stream

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/quiverdata/quiver/internal/kafkatest"
	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/internal/testutil/logtest"
	"github.com/quiverdata/quiver/internal/testutil/redistest"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
)

type fixture struct {
	repo  *registry.Repo
	store online.Store
	root  string
}

func newFixture(t *testing.T) *fixture {
	dir := t.TempDir()
	require.NoError(t, quickstart.Scaffold(dir, quickstart.GenerateOptions{Drivers: 5, Days: 1}))
	repo, err := registry.LoadRepo(dir, registry.LoadOptions{})
	require.NoError(t, err)
	store, err := online.OpenEmbedded(filepath.Join(dir, ".quiver", "online"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	return &fixture{repo: repo, store: store, root: repo.Config.DataRoot()}
}

type trip = quickstart.Trip

// trips generates n trips of drivers 1001…1000+drivers, out of order
// within a few minutes of start.
func trips(n, drivers int, start time.Time, seed uint64) []trip {
	g := quickstart.NewTripGenerator(drivers, 150*time.Second, seed)
	out := make([]trip, n)
	for i := range out {
		out[i] = g.Next(start.Add(time.Duration(i) * time.Second))
	}
	return out
}

func messages(ts []trip) []kafka.Message {
	out := make([]kafka.Message, len(ts))
	for i, tr := range ts {
		out[i] = kafka.Message{Key: tr.Key(), Value: tr.JSON()}
	}
	return out
}

// consume runs a consumer of the group until it applied want events
// online (replays included), then stops it and waits for it to return.
func consume(t *testing.T, f *fixture, brokers []string, group string, want int) {
	t.Helper()
	m := NewMetrics(nil)
	a, err := NewApplier(f.repo.Defs, f.store, f.root, m, nil)
	require.NoError(t, err)
	a.MaxFuture = 100 * 365 * 24 * time.Hour // fixed event times, whatever the clock says
	applied := func() int { return int(testutil.ToFloat64(m.Events.WithLabelValues("trips"))) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Consume(ctx, KafkaOptions{Brokers: brokers, Group: group, FlushInterval: 50 * time.Millisecond, SessionTimeout: time.Second})
	}()
	deadline := time.Now().Add(60 * time.Second)
	for applied() < want {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("applied %d of %d events", applied(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Flushes and commits before it returns.
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Consume did not return after cancel")
	}
}

// logRows counts the rows of a view's offline log.
var logRows = logtest.Rows

func TestConsumeAppliesOnlineAndLogsExactlyOnce(t *testing.T) {
	f := newFixture(t)
	b := kafkatest.Start(t)
	topic := "trips"
	b.CreateTopic(t, topic, 3)
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	ts := trips(3000, 5, start, 1)
	msgs := messages(ts)
	// Poison messages go to the dead-letter topic and stop nothing.
	bad := []kafka.Message{
		{Key: []byte("x"), Value: []byte(`{"driver_id": "seven"}`)},
		{Key: []byte("y"), Value: []byte(`not json`)},
		{Key: []byte("z"), Value: []byte(`{"driver_id": 1001, "rider_id": "r", "fare": 1, "ts": "2026-11-23T09:00:00Z", "tip": 2}`)},
	}
	msgs = append(msgs[:1000], append(bad, msgs[1000:]...)...)
	b.Produce(t, topic, msgs...)
	consume(t, f, b.Addrs, "g1", len(ts))

	require.Equal(t, len(ts), logRows(t, f.root, "driver_trips"))
	require.Equal(t, len(ts), logRows(t, f.root, "driver_last_trip"))
	checkOnline(t, f, ts)
	checkDeadLetters(t, b, topic+".dlq", bad)

	// A second run of the same group has nothing to do; a new group
	// replays the whole topic, and the replay changes nothing.
	more := trips(10, 5, start.Add(time.Hour), 2)
	b.Produce(t, topic, messages(more)...)
	ts = append(ts, more...)
	consume(t, f, b.Addrs, "g1", len(more))
	consume(t, f, b.Addrs, "g2", len(ts))
	require.Equal(t, len(ts), logRows(t, f.root, "driver_trips"), "a replay logs nothing twice")
	require.Equal(t, len(ts), logRows(t, f.root, "driver_last_trip"))
	checkOnline(t, f, ts)
}

// checkOnline compares the online values at the greatest event time with
// a direct computation over the events.
func checkOnline(t *testing.T, f *fixture, ts []trip) {
	t.Helper()
	var T time.Time
	for _, tr := range ts {
		if tr.TS.After(T) {
			T = tr.TS
		}
	}
	lookup := online.NewLookup(f.store, online.LookupOptions{Now: func() time.Time { return T }})
	ids := []any{int64(1001), int64(1002), int64(1003), int64(1004), int64(1005)}
	resp, err := lookup.Get(context.Background(), f.repo.Defs, &online.Request{Entities: map[string][]any{"driver_id": ids},
		Features: []string{"driver_last_trip:*", "driver_trips:*"}})
	require.NoError(t, err)
	floorT := T.Truncate(time.Minute)
	for row, id := range ids {
		var last trip
		var sum float64
		var count int64
		for _, tr := range ts {
			if tr.DriverID != id.(int64) {
				continue
			}
			if !tr.TS.Before(last.TS) {
				last = tr
			}
			if !tr.TS.Before(floorT.Add(-time.Hour)) && !tr.TS.After(T) {
				sum += tr.Fare
			}
			if !tr.TS.Before(floorT.Add(-24*time.Hour)) && !tr.TS.After(T) {
				count++
			}
		}
		got := map[string]any{}
		for _, fv := range resp.Features {
			got[fv.Name] = fv.Value(row)
			require.Equal(t, online.Present, fv.Statuses[row], "%s of driver %d", fv.Name, id)
		}
		require.Equal(t, last.Fare, got["fare"], "driver %d", id)
		require.Equal(t, last.RiderID, got["rider_id"], "driver %d", id)
		require.Equal(t, count, got["trips_1d"], "driver %d", id)
		require.InEpsilon(t, sum, got["fare_sum_1h"], 1e-9, "driver %d", id)
	}
}

func checkDeadLetters(t *testing.T, b *kafkatest.Broker, topic string, want []kafka.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []kafka.Message
	// The dead-letter topic is created with the broker's default number
	// of partitions; read every partition.
	conn, err := kafka.DialLeader(ctx, "tcp", b.Addrs[0], topic, 0)
	require.NoError(t, err)
	parts, err := conn.ReadPartitions(topic)
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	for _, p := range parts {
		pr := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs, Topic: topic, Partition: p.ID, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 50 * time.Millisecond})
		for {
			c2, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
			m, err := pr.FetchMessage(c2)
			cancel2()
			if err != nil {
				break
			}
			got = append(got, m)
		}
		require.NoError(t, pr.Close())
	}
	require.Len(t, got, len(want))
	reasons := map[string]string{}
	for _, m := range got {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		require.Equal(t, "trips", h["quiver-source"])
		require.NotEmpty(t, h["quiver-offset"])
		reasons[string(m.Value)] = h["quiver-reason"]
	}
	require.Equal(t, map[string]string{
		`{"driver_id": "seven"}`: "field driver_id: want int64: want a number",
		`not json`:               "not a JSON object",
		`{"driver_id": 1001, "rider_id": "r", "fare": 1, "ts": "2026-11-23T09:00:00Z", "tip": 2}`: "field tip: not a field of source trips",
	}, reasons)
}

// TestGroupMembersHandOverPartitions: two consumers of one group share the
// topic's partitions. One joins while the other consumes and the first
// leaves while the second consumes: two rebalances mid-stream, and still
// every event is logged exactly once and the online values are exact.
func TestGroupMembersHandOverPartitions(t *testing.T) {
	f := newFixture(t)
	b := kafkatest.Start(t)
	topic := "trips"
	b.CreateTopic(t, topic, 3)
	// Enough drivers that every partition holds some.
	ts := trips(6000, 40, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), 3)
	b.Produce(t, topic, messages(ts[:2000])...)

	type member struct {
		m      *Metrics
		cancel context.CancelFunc
		done   chan error
	}
	join := func() *member {
		m := NewMetrics(nil)
		a, err := NewApplier(f.repo.Defs, f.store, f.root, m, nil)
		require.NoError(t, err)
		a.MaxFuture = 100 * 365 * 24 * time.Hour
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel) // a failed test stops its members too
		mb := &member{m: m, cancel: cancel, done: make(chan error, 1)}
		go func() {
			mb.done <- a.Consume(ctx, KafkaOptions{Brokers: b.Addrs, Group: "shared", FlushInterval: 50 * time.Millisecond, SessionTimeout: time.Second})
		}()
		return mb
	}
	leave := func(mb *member) {
		mb.cancel()
		select {
		case err := <-mb.done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("Consume did not return after cancel")
		}
	}
	applied := func(mb *member) int { return int(testutil.ToFloat64(mb.m.Events.WithLabelValues("trips"))) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			require.False(t, time.Now().After(deadline), "waiting for %s", what)
			time.Sleep(10 * time.Millisecond)
		}
	}

	first := join()
	waitFor("the first member to apply events", func() bool { return applied(first) > 0 })
	second := join()
	// A trickle of events until the group has rebalanced and the second
	// member applies some of them.
	next := 2000
	for ; applied(second) <= 0 && next < 5000; next += 50 {
		b.Produce(t, topic, messages(ts[next:next+50])...)
		time.Sleep(50 * time.Millisecond)
	}
	require.Positive(t, applied(second), "the second member took partitions")
	leave(first)
	b.Produce(t, topic, messages(ts[next:])...)
	waitFor("every event in both logs", func() bool {
		return logRows(t, f.root, "driver_trips") >= len(ts) && logRows(t, f.root, "driver_last_trip") >= len(ts)
	})
	leave(second)

	require.Equal(t, len(ts), logRows(t, f.root, "driver_trips"), "nothing logged twice across the hand-overs")
	require.Equal(t, len(ts), logRows(t, f.root, "driver_last_trip"))
	checkOnline(t, f, ts)
}

// TestEntityAcrossPartitions: a topic that is not keyed by entity spreads
// one driver's events over every partition; one process consuming them
// all still folds every event into the driver's tiles exactly once.
func TestEntityAcrossPartitions(t *testing.T) {
	f := newFixture(t)
	b := kafkatest.Start(t)
	topic := "trips"
	b.CreateTopic(t, topic, 3)
	ts := trips(9000, 5, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), 4)
	w := b.Writer(topic)
	w.Balancer = &kafka.RoundRobin{}
	for lo := 0; lo < len(ts); lo += 300 {
		require.NoError(t, w.WriteMessages(context.Background(), messages(ts[lo:lo+300])...))
	}
	require.NoError(t, w.Close())
	// Reads that take a while, as they do over a network, leave room for
	// partitions to interleave between reading tiles and writing them.
	real := f.store
	f.store = slowReads{Store: real, delay: 2 * time.Millisecond}
	consume(t, f, b.Addrs, "spread", len(ts))
	f.store = real
	require.Equal(t, len(ts), logRows(t, f.root, "driver_trips"))
	checkOnline(t, f, ts)
}

// slowReads is the real store with a delay before each read.
type slowReads struct {
	online.Store
	delay time.Duration
}

func (s slowReads) Read(ctx context.Context, keys []online.Key) ([][]byte, error) {
	time.Sleep(s.delay)
	return s.Store.Read(ctx, keys)
}

// TestMembersShareEntities: a topic not keyed by entity, consumed by two
// group members with their own Redis connections (as two processes
// would be): one driver's events arrive at both at once, and the
// compare-and-set of the tiles makes each re-read what the other wrote
// instead of losing it.
func TestMembersShareEntities(t *testing.T) {
	f := newFixture(t)
	addr := redistest.Start(t).Addr()
	store, err := online.OpenRedis(context.Background(), online.RedisOptions{Addr: addr})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	b := kafkatest.Start(t)
	topic := "trips"
	b.CreateTopic(t, topic, 4)
	ts := trips(8000, 5, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC), 5)
	w := b.Writer(topic)
	w.Balancer = &kafka.RoundRobin{}
	defer w.Close()

	type member struct {
		m      *Metrics
		cancel context.CancelFunc
		done   chan error
	}
	var members []*member
	for range 2 {
		conn, err := online.OpenRedis(context.Background(), online.RedisOptions{Addr: addr})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, conn.Close()) })
		m := NewMetrics(nil)
		a, err := NewApplier(f.repo.Defs, slowReads{Store: conn, delay: 2 * time.Millisecond}, f.root, m, nil)
		require.NoError(t, err)
		a.MaxFuture = 100 * 365 * 24 * time.Hour
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		mb := &member{m: m, cancel: cancel, done: make(chan error, 1)}
		go func() {
			mb.done <- a.Consume(ctx, KafkaOptions{Brokers: b.Addrs, Group: "shared", FlushInterval: 50 * time.Millisecond, SessionTimeout: time.Second})
		}()
		members = append(members, mb)
	}
	applied := func(mb *member) int { return int(testutil.ToFloat64(mb.m.Events.WithLabelValues("trips"))) }
	// A trickle until both members apply events, then the rest.
	next := 0
	for ; (applied(members[0]) == 0 || applied(members[1]) == 0) && next < 7000; next += 20 {
		require.NoError(t, w.WriteMessages(context.Background(), messages(ts[next:next+20])...))
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(t, w.WriteMessages(context.Background(), messages(ts[next:])...))
	deadline := time.Now().Add(60 * time.Second)
	for logRows(t, f.root, "driver_trips") < len(ts) || logRows(t, f.root, "driver_last_trip") < len(ts) {
		require.False(t, time.Now().After(deadline), "logged %d of %d", logRows(t, f.root, "driver_trips"), len(ts))
		time.Sleep(10 * time.Millisecond)
	}
	conflicts := 0.0
	for _, mb := range members {
		mb.cancel()
		require.NoError(t, <-mb.done)
		require.Positive(t, applied(mb), "both members consumed")
		conflicts += testutil.ToFloat64(mb.m.TileConflicts)
	}
	t.Logf("tile conflicts resolved: %.0f", conflicts)
	f.store = store
	checkOnline(t, f, ts)
}
