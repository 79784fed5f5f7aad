// Command stream measures the streaming materializer (package stream)
// over the quickstart's kafka source trips and its two views, driver_trips
// (windowed aggregations) and driver_last_trip (latest values), with a
// Kafka-protocol broker (kfake) in the same process:
//
//   - sustained throughput: N events produced before the consumer starts,
//     timed from Consume until every event is applied online and logged
//     offline, beside a plain kafka-go reader per partition that reads and
//     discards the same messages (the broker's and the client's limit);
//   - freshness at a fixed rate: events produced at -rate for -duration with
//     event time = the moment they are made, p50 and p99 from event time to
//     readable online (every observation of the stream's freshness metric,
//     not its buckets), beside a plain reader of the same messages that
//     timestamps their arrival.
//
// With -kafka (or QUIVER_KAFKA_HOME), the broker is a real Apache Kafka
// process instead, started fresh for each case (its CPU is not in
// "cores"). The online store is the embedded one (Pebble) unless -redis
// is given.
// Every run gets a fresh store, data root and consumer group; "cores" is
// the process's CPU time over wall time, the in-process broker included.
// -cpuprofile profiles one more throughput run of Quiver, not measured.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/quiverdata/quiver/bench/internal/benchredis"
	"github.com/quiverdata/quiver/bench/internal/report"
	"github.com/quiverdata/quiver/internal/kafkatest"
	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/materialize/stream"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/streamlog"
)

var (
	events     = flag.Int("events", 1_000_000, "events of the throughput case")
	drivers    = flag.Int("drivers", 10_000, "drivers (message keys)")
	partitions = flag.Int("partitions", 3, "partitions of the trips topic")
	runs       = flag.Int("runs", 3, "runs per case")
	rate       = flag.Int("rate", 10_000, "events/s of the freshness case")
	duration   = flag.Duration("duration", 10*time.Second, "length of each freshness run")
	tick       = flag.Duration("tick", 5*time.Millisecond, "the freshness producer sends a batch every tick")
	kafkaHome  = flag.String("kafka", os.Getenv("QUIVER_KAFKA_HOME"), "run the broker as a real Apache Kafka process from the jars in `DIR`/libs (scripts/kafka.sh prints it; default $QUIVER_KAFKA_HOME) instead of kfake in this process")
	useRedis   = flag.Bool("redis", false, "use a private redis-server as the online store instead of the embedded store")
	cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of one extra, unmeasured throughput run of Quiver to `FILE`")
)

const (
	topic = "trips"
	// The targets of DESIGN.md.
	targetRate      = 100_000
	targetFreshness = 100 * time.Millisecond
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "stream:", err)
		os.Exit(1)
	}
}

// quiet logs the consumer's warnings and errors only.
var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func run() error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "quiver-bench-stream-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	repoDir := filepath.Join(dir, "repo")
	if err := quickstart.Scaffold(repoDir, quickstart.GenerateOptions{Drivers: 10, Days: 1}); err != nil {
		return err
	}
	repo, err := registry.LoadRepo(repoDir, registry.LoadOptions{})
	if err != nil {
		return err
	}
	b := &bench{defs: repo.Defs, dir: dir}
	storeName := "embedded store (Pebble)"
	if *useRedis {
		storeName = "Redis"
	}

	// Sustained throughput.
	brokers, closeBroker, err := startBroker(ctx)
	if err != nil {
		return err
	}
	defer closeBroker()
	produced, err := preProduce(ctx, brokers)
	if err != nil {
		return err
	}
	ends, err := endOffsets(ctx, brokers)
	if err != nil {
		return err
	}
	fmt.Printf("streaming materializer, kafka source %s (%d partitions, %s) → driver_trips + driver_last_trip, online: %s\n",
		topic, *partitions, brokerName(), storeName)
	fmt.Printf("throughput: %d events of %d drivers produced beforehand in %s (%s); %d runs per case\n",
		*events, *drivers, report.Seconds(produced), report.Rate(int64(*events), produced), *runs)
	var quiverT, joinT, onlineT, rawT []time.Duration
	for r := range *runs {
		d, cores, err := rawRead(ctx, brokers, ends)
		if err != nil {
			return err
		}
		rawT = append(rawT, d)
		res, err := b.throughput(ctx, brokers, fmt.Sprintf("bench-%d", r), false)
		if err != nil {
			return err
		}
		quiverT = append(quiverT, res.total)
		joinT = append(joinT, res.firstApplied)
		onlineT = append(onlineT, res.online)
		fmt.Printf("  run %d: raw read %s (%.2f cores), Quiver %s (%.2f cores; first event online after %s, last after %s; %s)\n",
			r+1, report.Seconds(d), cores, report.Seconds(res.total), res.cores, report.Seconds(res.firstApplied),
			report.Seconds(res.online), res.stats)
	}
	if *cpuprofile != "" {
		if _, err := b.throughput(ctx, brokers, "bench-profile", true); err != nil {
			return err
		}
	}
	closeBroker()

	// Freshness at a fixed rate, on a fresh broker.
	fmt.Printf("freshness: %d events/s (%d every %s) for %s, event time = when produced; %d runs\n",
		*rate, batchPerTick(), *tick, *duration, *runs)
	var qp50, qp99, rp50, rp99 []time.Duration
	var within []float64
	for r := range *runs {
		res, err := b.freshness(ctx, r)
		if err != nil {
			return err
		}
		qp50, qp99 = append(qp50, res.quiver.p50), append(qp99, res.quiver.p99)
		rp50, rp99 = append(rp50, res.raw.p50), append(rp99, res.raw.p99)
		within = append(within, res.bucketWithin)
		fmt.Printf("  run %d: %d events at %.0f/s; Quiver p50 %s p99 %s max %s; raw p50 %s p99 %s max %s (%s)\n",
			r+1, res.quiver.n, res.achieved, ms(res.quiver.p50), ms(res.quiver.p99), ms(res.quiver.max),
			ms(res.raw.p50), ms(res.raw.p99), ms(res.raw.max), res.stats)
	}

	n := int64(*events)
	q, raw, join := report.Median(quiverT), report.Median(rawT), report.Median(joinT)
	fmt.Println()
	report.Table(os.Stdout, []string{"case", "Quiver", "reference", "ratio"}, []report.Row{
		{Case: fmt.Sprintf("throughput, %d events, events/s", n), Cells: []string{report.Rate(n, q), report.Rate(n, raw), fmt.Sprintf("%.2f×", raw.Seconds()/q.Seconds())}},
		{Case: "  the same, time", Cells: []string{report.Seconds(q), report.Seconds(raw), fmt.Sprintf("%.2f×", q.Seconds()/raw.Seconds())}},
		{Case: fmt.Sprintf("freshness p50 at %d events/s", *rate), Cells: []string{ms(report.Median(qp50)), ms(report.Median(rp50)), ratio(report.Median(qp50), report.Median(rp50))}},
		{Case: fmt.Sprintf("freshness p99 at %d events/s", *rate), Cells: []string{ms(report.Median(qp99)), ms(report.Median(rp99)), ratio(report.Median(qp99), report.Median(rp99))}},
	})
	fmt.Println()
	fmt.Println("reference: throughput, a plain kafka-go reader per partition reading and discarding the same messages;")
	fmt.Println("freshness, a plain kafka-go reader per partition stamping the arrival of the same messages.")
	fmt.Println("Quiver's time runs from Consume until both views' offline logs hold every event. It includes joining")
	fmt.Printf("the consumer group (first event online after %s) and the last log flush (every event online after %s: %s).\n",
		report.Seconds(join), report.Seconds(report.Median(onlineT)), report.Rate(n, report.Median(onlineT)))
	fmt.Printf("freshness histogram (quiver_stream_freshness_seconds): median share of events in buckets ≤ 0.1 s: %.2f%%\n", 100*medianFloat(within))
	fmt.Println()
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	qRate := float64(n) / q.Seconds()
	fmt.Printf("throughput %.0f events/s (target ≥ %d): %s\n", qRate, targetRate, verdict(qRate >= targetRate))
	fmt.Printf("freshness p99 %s at %d events/s (target ≤ %s): %s\n", ms(report.Median(qp99)), *rate, ms(targetFreshness),
		verdict(report.Median(qp99) <= targetFreshness))
	if *cpuprofile != "" {
		fmt.Printf("CPU profile of an extra throughput run: %s (go tool pprof -top %s)\n", *cpuprofile, *cpuprofile)
	}
	return nil
}

// bench holds what every case shares.
type bench struct {
	defs *registry.Definitions
	dir  string
	seq  int
}

// sink is a fresh online store and data root for one run.
type sink struct {
	store    online.Store
	dataRoot string
	close    func() error
}

func (b *bench) newSink(ctx context.Context) (*sink, error) {
	b.seq++
	root := filepath.Join(b.dir, fmt.Sprintf("run%d", b.seq))
	if err := os.MkdirAll(filepath.Join(root, "data"), 0o755); err != nil {
		return nil, err
	}
	s := &sink{dataRoot: filepath.Join(root, "data")}
	if *useRedis {
		srv, store, err := benchredis.StartStore(ctx)
		if err != nil {
			return nil, err
		}
		s.store = store
		s.close = func() error {
			err := store.Close()
			srv.Stop()
			return errors.Join(err, os.RemoveAll(root))
		}
		return s, nil
	}
	store, err := online.OpenEmbedded(filepath.Join(root, "online"))
	if err != nil {
		return nil, err
	}
	s.store = store
	s.close = func() error { return errors.Join(store.Close(), os.RemoveAll(root)) }
	return s, nil
}

// writer is the fast producer both cases use: batches of up to 10k
// messages, sent after at most 1 ms, acknowledged by the leader. A batch
// stays under the broker's default message.max.bytes (1 MB).
// startBroker starts a new broker with the trips topic: kfake in this
// process, or a real Apache Kafka process with -kafka. close stops it
// (more than once is fine).
func startBroker(ctx context.Context) (brokers []string, close func(), err error) {
	if *kafkaHome == "" {
		cluster, err := kfake.NewCluster(kfake.Ports(0), kfake.SeedTopics(int32(*partitions), topic))
		if err != nil {
			return nil, nil, fmt.Errorf("start kfake: %w", err)
		}
		return cluster.ListenAddrs(), cluster.Close, nil
	}
	dir, err := os.MkdirTemp("", "bench-kafka-")
	if err != nil {
		return nil, nil, err
	}
	k, err := kafkatest.StartKafka(*kafkaHome, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	var once sync.Once
	stop := func() { once.Do(func() { k.Close(); os.RemoveAll(dir) }) }
	if err := createTopic(ctx, k.Addr()); err != nil {
		stop()
		return nil, nil, err
	}
	return []string{k.Addr()}, stop, nil
}

// createTopic creates the trips topic with -partitions partitions on a
// real broker and waits until each has a leader.
func createTopic(ctx context.Context, addr string) error {
	conn, err := (&kafka.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: *partitions, ReplicationFactor: 1}); err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		parts, err := conn.ReadPartitions(topic)
		if err == nil && len(parts) == *partitions {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s has no leaders after 30s: %v", topic, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// brokerName says which broker the run uses.
func brokerName() string {
	if *kafkaHome == "" {
		return "kfake in process"
	}
	return "Apache Kafka in its own process"
}

func writer(brokers []string) *kafka.Writer {
	return &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Hash{},
		BatchSize: 10_000, BatchBytes: 1_000_000, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireOne}
}

// writeErr shortens kafka-go's error of a failed write, which lists every
// message, to the count and the first.
func writeErr(err error) error {
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				return fmt.Errorf("produce: %d of %d messages failed, the first: %w", we.Count(), len(we), e)
			}
		}
	}
	return fmt.Errorf("produce: %w", err)
}

// preProduce sends the throughput case's events, keyed by driver: event
// times 1 ms apart ending now, spread by up to 5 s either way.
func preProduce(ctx context.Context, brokers []string) (time.Duration, error) {
	w := writer(brokers)
	g := quickstart.NewTripGenerator(*drivers, 5*time.Second, 1)
	base := time.Now().Add(-time.Duration(*events) * time.Millisecond)
	const chunk = 50_000
	msgs := make([]kafka.Message, 0, chunk)
	start := time.Now()
	for i := 0; i < *events; {
		msgs = msgs[:0]
		for ; i < *events && len(msgs) < chunk; i++ {
			tr := g.Next(base.Add(time.Duration(i) * time.Millisecond))
			msgs = append(msgs, kafka.Message{Key: tr.Key(), Value: tr.JSON()})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			_ = w.Close() // the write error is the one to report
			return 0, writeErr(err)
		}
	}
	d := time.Since(start)
	if err := w.Close(); err != nil {
		return 0, fmt.Errorf("close producer: %w", err)
	}
	return d, nil
}

// endOffsets returns each partition's high-water mark.
func endOffsets(ctx context.Context, brokers []string) ([]int64, error) {
	out := make([]int64, *partitions)
	total := int64(0)
	for p := range out {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, p)
		if err != nil {
			return nil, fmt.Errorf("dial partition %d: %w", p, err)
		}
		out[p], err = conn.ReadLastOffset()
		if cerr := conn.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("end offset of partition %d: %w", p, err)
		}
		total += out[p]
	}
	if total != int64(*events) {
		return nil, fmt.Errorf("the topic holds %d messages, want %d", total, *events)
	}
	return out, nil
}

// readerConfig is the partition reader Quiver's consumer uses (stream
// package, consumer.partition), so that the references differ from Quiver
// only in what is done with each message.
func readerConfig(brokers []string, partition int) kafka.ReaderConfig {
	return kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 20 * time.Millisecond, QueueCapacity: 4096,
		ReadBackoffMin: 5 * time.Millisecond, ReadBackoffMax: 100 * time.Millisecond}
}

// rawRead reads every partition to its end with a plain reader each and
// discards the messages.
func rawRead(ctx context.Context, brokers []string, ends []int64) (time.Duration, float64, error) {
	start, cpu0 := time.Now(), cpuTime()
	errs := make(chan error, len(ends))
	for p, end := range ends {
		go func() {
			r := kafka.NewReader(readerConfig(brokers, p))
			var err error
			for off := int64(-1); err == nil && off < end-1; {
				var m kafka.Message
				m, err = r.FetchMessage(ctx)
				off = m.Offset
			}
			errs <- errors.Join(err, r.Close())
		}()
	}
	var err error
	for range ends {
		err = errors.Join(err, <-errs)
	}
	d := time.Since(start)
	return d, (cpuTime() - cpu0).Seconds() / d.Seconds(), err
}

type throughputResult struct {
	// Until every event was logged offline (the measure), until the first
	// and the last event was applied online.
	total, firstApplied, online time.Duration
	cores                       float64 // CPU time of the process over wall time
	stats                       stats
}

// stats are what the stream's metrics say about a run: online batches
// with their mean size and time, offline-log appends (one per view and
// flush) with their mean time.
type stats struct {
	batches, flushes        uint64
	batchEvents             float64
	onlineWrite, flushWrite time.Duration
}

func readStats(reg *prometheus.Registry) stats {
	var st stats
	var sum float64
	st.batches, sum = histogram(reg, "quiver_stream_batch_events")
	if st.batches > 0 {
		st.batchEvents = sum / float64(st.batches)
	}
	if n, sum := histogram(reg, "quiver_stream_online_write_seconds"); n > 0 {
		st.onlineWrite = time.Duration(sum / float64(n) * float64(time.Second))
	}
	if n, sum := histogram(reg, "quiver_stream_log_flush_seconds"); n > 0 {
		st.flushes, st.flushWrite = n, time.Duration(sum/float64(n)*float64(time.Second))
	}
	return st
}

func (st stats) String() string {
	return fmt.Sprintf("%d online batches of %.0f events, %s each; %d log appends, %s each",
		st.batches, st.batchEvents, ms(st.onlineWrite), st.flushes, ms(st.flushWrite))
}

// cpuTime returns the CPU time this process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// throughput consumes the whole topic with a new group into a fresh
// store, and times it until every event is applied online and every view
// has logged every event offline.
func (b *bench) throughput(ctx context.Context, brokers []string, group string, profile bool) (throughputResult, error) {
	var res throughputResult
	s, err := b.newSink(ctx)
	if err != nil {
		return res, err
	}
	reg := prometheus.NewRegistry()
	m := stream.NewMetrics(reg)
	a, err := stream.NewApplier(b.defs, s.store, s.dataRoot, m, nil)
	if err != nil {
		return res, errors.Join(err, s.close())
	}
	if profile {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return res, errors.Join(err, s.close())
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, errors.Join(err, s.close())
		}
	}
	applied := m.Events.WithLabelValues(topic)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start, cpu0 := time.Now(), cpuTime()
	go func() {
		done <- a.Consume(cctx, stream.KafkaOptions{Brokers: brokers, Group: group, Logger: quiet})
	}()
	err = func() error {
		deadline := start.Add(10 * time.Minute)
		for {
			n := int(testutil.ToFloat64(applied))
			if n > 0 && res.firstApplied == 0 {
				res.firstApplied = time.Since(start)
			}
			if n >= *events {
				res.online = time.Since(start)
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("applied %d of %d events online in 10 minutes", n, *events)
			}
			time.Sleep(2 * time.Millisecond)
		}
		for {
			done := true
			for _, view := range []string{"driver_trips", "driver_last_trip"} {
				rows, err := loggedRows(s.dataRoot, view)
				if err != nil {
					return err
				}
				done = done && rows >= int64(*events)
			}
			if done {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the offline logs do not hold all %d events after 10 minutes", *events)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	res.total = time.Since(start)
	res.cores = (cpuTime() - cpu0).Seconds() / res.total.Seconds()
	if profile {
		pprof.StopCPUProfile()
	}
	cancel()
	err = errors.Join(err, <-done, s.close())
	if n := int(testutil.ToFloat64(applied)); err == nil && n != *events {
		err = fmt.Errorf("applied %d events, want %d", n, *events)
	}
	res.stats = readStats(reg)
	return res, err
}

// histogram returns the count and sum of a histogram in reg.
func histogram(reg *prometheus.Registry, name string) (uint64, float64) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	return 0, 0
}

// loggedRows counts the rows of a view's committed log batches.
func loggedRows(dataRoot, view string) (int64, error) {
	ms, err := streamlog.Manifests(dataRoot, view)
	if err != nil {
		return 0, err
	}
	n := int64(0)
	for _, m := range ms {
		for _, f := range m.Files {
			n += f.Rows
		}
	}
	return n, nil
}

// recorder keeps every observation of a histogram as well as passing it
// on, so that percentiles are exact rather than bucket bounds.
type recorder struct {
	prometheus.Histogram
	mu  sync.Mutex
	obs []float64
}

func (r *recorder) Observe(v float64) {
	r.Histogram.Observe(v)
	r.mu.Lock()
	r.obs = append(r.obs, v)
	r.mu.Unlock()
}

// take returns the observations so far and forgets them.
func (r *recorder) take() []float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.obs
	r.obs = nil
	return out
}

type latencies struct {
	n             int
	p50, p99, max time.Duration
}

func summarize(secs []float64) latencies {
	sort.Float64s(secs)
	at := func(q float64) time.Duration {
		if len(secs) == 0 {
			return 0
		}
		i := int(math.Ceil(q*float64(len(secs)))) - 1 // nearest rank
		return time.Duration(secs[max(i, 0)] * float64(time.Second))
	}
	return latencies{n: len(secs), p50: at(0.5), p99: at(0.99), max: at(1)}
}

type freshnessResult struct {
	quiver, raw  latencies
	stats        stats
	achieved     float64 // events/s produced
	bucketWithin float64 // share of the metric's observations in buckets ≤ 0.1 s
}

func batchPerTick() int {
	return max(1, int(math.Round(float64(*rate)*tick.Seconds())))
}

// freshness runs Quiver's consumer and the plain readers side by side on
// a fresh broker while a producer sends trips at a fixed rate, each
// stamped with the moment it is made.
func (b *bench) freshness(ctx context.Context, run int) (freshnessResult, error) {
	var res freshnessResult
	brokers, closeBroker, err := startBroker(ctx)
	if err != nil {
		return res, err
	}
	defer closeBroker()
	s, err := b.newSink(ctx)
	if err != nil {
		return res, err
	}
	reg := prometheus.NewRegistry()
	m := stream.NewMetrics(reg)
	rec := &recorder{Histogram: m.Freshness}
	m.Freshness = rec
	a, err := stream.NewApplier(b.defs, s.store, s.dataRoot, m, nil)
	if err != nil {
		return res, errors.Join(err, s.close())
	}
	applied := m.Events.WithLabelValues(topic)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- a.Consume(cctx, stream.KafkaOptions{Brokers: brokers, Group: "bench-freshness", Logger: quiet})
	}()

	// The plain readers: arrival minus event time of every message made
	// after measuring began.
	var measureFrom atomic.Int64 // unix ns; 0: warming up
	var rawMu sync.Mutex
	var rawObs []float64
	var rawSeen atomic.Int64
	var readers sync.WaitGroup
	readErr := make(chan error, 2**partitions)
	for p := range *partitions {
		readers.Add(1)
		go func() {
			defer readers.Done()
			r := kafka.NewReader(readerConfig(brokers, p))
			for {
				msg, err := r.FetchMessage(cctx)
				if err != nil {
					if cctx.Err() == nil {
						readErr <- err
					}
					readErr <- r.Close()
					return
				}
				arrived := time.Now()
				at, err := eventTime(msg.Value)
				if err != nil {
					readErr <- errors.Join(err, r.Close())
					return
				}
				if from := measureFrom.Load(); from != 0 && at.UnixNano() >= from {
					rawMu.Lock()
					rawObs = append(rawObs, arrived.Sub(at).Seconds())
					rawMu.Unlock()
				}
				rawSeen.Add(1)
			}
		}()
	}
	stop := func(err error) (freshnessResult, error) {
		cancel()
		readers.Wait()
		close(readErr)
		for e := range readErr {
			err = errors.Join(err, e)
		}
		return res, errors.Join(err, <-done, s.close())
	}

	// An asynchronous producer, so that a slow acknowledgement does not
	// hold back the next batch: the writer sends what it holds every
	// millisecond (BatchTimeout), and its delay counts in both sides'
	// freshness, which is measured from event time.
	w := writer(brokers)
	w.Async = true
	var produceErr atomic.Pointer[error]
	w.Completion = func(_ []kafka.Message, err error) {
		if err != nil {
			err = writeErr(err)
			produceErr.CompareAndSwap(nil, &err)
		}
	}
	g := quickstart.NewTripGenerator(*drivers, 0, uint64(100+run))
	send := func(n int) error {
		if p := produceErr.Load(); p != nil {
			return *p
		}
		msgs := make([]kafka.Message, n)
		now := time.Now()
		for i := range msgs {
			tr := g.Next(now)
			msgs[i] = kafka.Message{Key: tr.Key(), Value: tr.JSON()}
		}
		return w.WriteMessages(cctx, msgs...)
	}
	// Warm up until the group has joined and both sides read.
	const warm = 1000
	if err := send(warm); err != nil {
		return stop(errors.Join(err, w.Close()))
	}
	deadline := time.Now().Add(60 * time.Second)
	for int(testutil.ToFloat64(applied)) < warm || rawSeen.Load() < warm {
		if time.Now().After(deadline) {
			return stop(errors.Join(errors.New("warm-up events not consumed in 60 s"), w.Close()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	rec.take()
	before := histogramCounts(reg)

	// Send a batch every tick on a fixed schedule (catching up when a
	// write took longer than a tick).
	per := batchPerTick()
	start := time.Now()
	measureFrom.Store(start.UnixNano())
	sent := 0
	for k := 0; ; k++ {
		due := start.Add(time.Duration(k) * *tick)
		if due.Sub(start) >= *duration {
			break
		}
		time.Sleep(time.Until(due))
		if err := send(per); err != nil {
			return stop(errors.Join(err, w.Close()))
		}
		sent += per
	}
	res.achieved = float64(sent) / time.Since(start).Seconds()
	if err := w.Close(); err != nil {
		return stop(err)
	}
	if p := produceErr.Load(); p != nil {
		return stop(*p)
	}
	deadline = time.Now().Add(60 * time.Second)
	for int(testutil.ToFloat64(applied)) < warm+sent || rawSeen.Load() < int64(warm+sent) {
		if time.Now().After(deadline) {
			return stop(fmt.Errorf("after 60 s Quiver applied %.0f and the plain readers read %d of %d events",
				testutil.ToFloat64(applied), rawSeen.Load(), warm+sent))
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.quiver = summarize(rec.take())
	res.stats = readStats(reg)
	rawMu.Lock()
	res.raw = summarize(rawObs)
	rawMu.Unlock()
	after := histogramCounts(reg)
	if total := after.total - before.total; total > 0 {
		res.bucketWithin = float64(after.within-before.within) / float64(total)
	}
	if res.quiver.n != sent || res.raw.n != sent {
		return stop(fmt.Errorf("measured %d events in Quiver and %d in the plain readers, want %d", res.quiver.n, res.raw.n, sent))
	}
	return stop(nil)
}

// eventTime reads the ts field of a trip message.
func eventTime(msg []byte) (time.Time, error) {
	const field = `"ts": "`
	for i := 0; i+len(field) < len(msg); i++ {
		if string(msg[i:i+len(field)]) != field {
			continue
		}
		rest := msg[i+len(field):]
		for j, c := range rest {
			if c == '"' {
				return time.Parse(time.RFC3339Nano, string(rest[:j]))
			}
		}
	}
	return time.Time{}, fmt.Errorf("no ts in %q", msg)
}

type counts struct{ within, total uint64 }

// histogramCounts reads the freshness histogram: observations in buckets
// up to the target, and all of them.
func histogramCounts(reg *prometheus.Registry) counts {
	var c counts
	mfs, err := reg.Gather()
	if err != nil {
		return c
	}
	for _, mf := range mfs {
		if mf.GetName() != "quiver_stream_freshness_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		c.total = h.GetSampleCount()
		for _, bk := range h.GetBucket() {
			if bk.GetUpperBound() <= targetFreshness.Seconds() {
				c.within = bk.GetCumulativeCount()
			}
		}
	}
	return c
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func ratio(q, ref time.Duration) string {
	if ref <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f×", q.Seconds()/ref.Seconds())
}

func medianFloat(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
