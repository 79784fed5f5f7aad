package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/streamlog"
)

// KafkaOptions tune Consume. Zero values take the defaults given.
type KafkaOptions struct {
	// Brokers are the bootstrap brokers. Required.
	Brokers []string
	// Group is the consumer group (default "quiver-<project>"). A new
	// group starts from the earliest retained offset.
	Group string
	// DeadLetterSuffix names the dead-letter topic of a source topic:
	// topic + suffix (default ".dlq").
	DeadLetterSuffix string
	// FlushInterval and FlushEvents bound how long and how many events a
	// partition buffers before its offline log is written and its offset
	// committed (defaults 1s and 100,000). Online writes do not wait.
	FlushInterval time.Duration
	FlushEvents   int
	// MaxBatch bounds the events of one online write (default 4,096).
	MaxBatch int
	// SessionTimeout is how long the group waits for a silent member
	// before giving its partitions to others (default 10s).
	SessionTimeout time.Duration
	// Logger receives lifecycle events and errors (default slog.Default).
	Logger *slog.Logger
}

// DefaultGroup is the consumer group of a project's stream when none is
// given.
func DefaultGroup(project string) string { return "quiver-" + project }

func (o *KafkaOptions) ensureDefaults(project string) {
	if o.Group == "" {
		o.Group = DefaultGroup(project)
	}
	if o.DeadLetterSuffix == "" {
		o.DeadLetterSuffix = ".dlq"
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.FlushEvents <= 0 {
		o.FlushEvents = 100_000
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4096
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Topics returns the Kafka topics of the stream sources, with the source
// each one feeds.
func (a *Applier) Topics() (map[string]string, error) {
	out := map[string]string{}
	for _, name := range a.Sources() {
		src := a.sources[name].src
		if src.Kind != registry.SourceKafka {
			continue
		}
		if other, ok := out[src.Topic]; ok {
			return nil, fmt.Errorf("sources %s and %s both read topic %s; give each topic one source", other, src.Name, src.Topic)
		}
		out[src.Topic] = src.Name
	}
	return out, nil
}

// Consume runs the consumer group until ctx is done, then flushes what it
// holds, commits and leaves the group. Offsets are committed only after
// the online store and the offline log hold every event up to them, and
// the dead-letter topic every message that was refused.
//
// It returns nil after a stop by ctx. A partition that cannot go on (its
// log's offsets cannot be read, the reader cannot seek, a fetch fails
// with an error retrying cannot mend, or its pending events cannot be
// logged before it stops) stops the whole consumer the same way, and
// Consume returns that partition's error. A broker that is away (a
// restart, a failover) is waited for: fetches are retried, and the
// member rejoins the group when the broker is back.
// Writes that fail are retried and never skipped; while they fail the
// partition is stalled (see Metrics.Stalled and Metrics.Stalls).
func (a *Applier) Consume(ctx context.Context, opts KafkaOptions) error {
	opts.ensureDefaults(a.defs.Project)
	if len(opts.Brokers) == 0 {
		return errors.New("no Kafka brokers: set kafka.brokers in quiver.yaml or pass --brokers")
	}
	topics, err := a.Topics()
	if err != nil {
		return err
	}
	if len(topics) == 0 {
		return errors.New("no online view reads a kafka source: nothing to consume")
	}
	var names []string
	for t := range topics {
		names = append(names, t)
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: opts.Group, Brokers: opts.Brokers, Topics: names, StartOffset: kafka.FirstOffset,
		SessionTimeout: opts.SessionTimeout, RebalanceTimeout: opts.SessionTimeout,
		HeartbeatInterval: opts.SessionTimeout / 10, JoinGroupBackoff: time.Second,
		WatchPartitionChanges: true, PartitionWatchInterval: 5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("join consumer group %s: %w", opts.Group, err)
	}
	var dlqTopics []string
	for _, t := range names {
		dlqTopics = append(dlqTopics, t+opts.DeadLetterSuffix)
	}
	if err := ensureTopics(ctx, opts.Brokers, dlqTopics); err != nil {
		_ = group.Close() // the topic error is the one to report
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	dlq := &kafka.Writer{Addr: kafka.TCP(opts.Brokers...), Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond,
		BatchSize: 1000, RequiredAcks: kafka.RequireAll, AllowAutoTopicCreation: true}
	// A partition that cannot go on stops the whole consumer, which
	// returns its error: the process exits, or the caller restarts it, and
	// its partitions go to a member that can consume them. A partition is
	// never left assigned and unconsumed.
	ctx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	c := &consumer{a: a, opts: opts, topics: topics, dlq: dlq, stopAll: stopAll,
		dead: newDeadLetterLog(opts.Logger, time.Now)}
	var wg sync.WaitGroup
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				opts.Logger.Warn("consumer group", "group", opts.Group, "err", err)
				continue
			}
			break
		}
		opts.Logger.Info("consumer group generation", "group", opts.Group, "generation", gen.ID, "assignments", describe(gen.Assignments))
		for topic, parts := range gen.Assignments {
			for _, p := range parts {
				wg.Add(1)
				gen.Start(func(gctx context.Context) {
					defer wg.Done()
					c.partition(ctx, gctx, gen, topic, int32(p.ID), p.Offset)
				})
			}
		}
	}
	wg.Wait()
	c.dead.flush()
	err = errors.Join(group.Close(), dlq.Close())
	if err != nil {
		opts.Logger.Warn("leave consumer group", "err", err)
	}
	return c.failure()
}

// ensureTopics creates the topics that do not exist yet, with the
// broker's default partitions and replication.
func ensureTopics(ctx context.Context, brokers []string, topics []string) error {
	conn, err := (&kafka.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("dial broker %s: %w", brokers[0], err)
	}
	defer conn.Close()
	var missing []kafka.TopicConfig
	for _, t := range topics {
		if _, err := conn.ReadPartitions(t); err != nil {
			missing = append(missing, kafka.TopicConfig{Topic: t, NumPartitions: -1, ReplicationFactor: -1})
		}
	}
	if len(missing) == 0 {
		return nil
	}
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("find the controller broker: %w", err)
	}
	cc, err := (&kafka.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("dial the controller broker: %w", err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(missing...); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create dead-letter topics: %w", err)
	}
	return nil
}

// retryableFetch says whether a fetch error is one of a broker that is
// away or busy (network errors, and Kafka's retriable error codes: not
// the leader, leader not available, request timed out, …), which the
// partition rides out, rather than one that retrying cannot mend
// (authorization failures, and the like).
func retryableFetch(err error) bool {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, io.EOF)
}

func describe(as map[string][]kafka.PartitionAssignment) string {
	s := ""
	for t, ps := range as {
		for _, p := range ps {
			if s != "" {
				s += " "
			}
			s += t + "/" + strconv.Itoa(p.ID)
		}
	}
	return s
}

type consumer struct {
	a       *Applier
	opts    KafkaOptions
	topics  map[string]string // topic → source
	dlq     *kafka.Writer
	dead    *deadLetterLog
	stopAll context.CancelFunc

	mu  sync.Mutex
	err error // the first partition failure
}

// fail stops the consumer with err, the first failure winning.
func (c *consumer) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.opts.Logger.Error("stream consumer stops", "err", err)
	c.stopAll()
}

func (c *consumer) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// partition consumes one assigned partition until the generation ends or
// ctx is done, and then flushes and commits what it applied.
func (c *consumer) partition(ctx, gctx context.Context, gen *kafka.Generation, topic string, partition int32, offset int64) {
	log := c.opts.Logger.With("topic", topic, "partition", partition)
	source := c.topics[topic]
	a := c.a
	logged, err := a.Logged(source, topic, partition)
	if err != nil {
		c.fail(fmt.Errorf("partition %s/%d: read the offline log's offsets: %w", topic, partition, err))
		return
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.opts.Brokers, Topic: topic, Partition: int(partition),
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 20 * time.Millisecond, QueueCapacity: 4096, ReadBackoffMin: 5 * time.Millisecond, ReadBackoffMax: 100 * time.Millisecond})
	defer func() {
		if err := r.Close(); err != nil {
			log.Warn("close reader", "err", err)
		}
	}()
	if err := r.SetOffset(offset); err != nil {
		c.fail(fmt.Errorf("partition %s/%d: seek to offset %d: %w", topic, partition, offset, err))
		return
	}
	// stop ends the partition: the generation ended or we shut down.
	stop, cancel := context.WithCancel(gctx)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			cancel()
		case <-stop.Done():
		}
	}()
	msgs := make(chan kafka.Message, c.opts.MaxBatch)
	fetchErr := make(chan error, 1)
	go func() {
		defer close(msgs)
		// A broker that is away (restarting, failing over, unreachable)
		// fails fetches while kafka-go's reader reconnects: retried with
		// backoff. The group's heartbeats fail meanwhile too, so the
		// generation usually ends first, and the member rejoins once the
		// broker is back. Other errors stop the consumer.
		backoff := 50 * time.Millisecond
		for attempt := 1; ; attempt++ {
			m, err := r.FetchMessage(stop)
			if err != nil {
				if stop.Err() != nil || !retryableFetch(err) {
					fetchErr <- err
					return
				}
				a.metrics.Retries.WithLabelValues(topic, strconv.Itoa(int(partition)), "fetch").Inc()
				log.Warn("fetch failed; retrying", "err", err, "attempt", attempt, "retry_in", backoff)
				select {
				case <-stop.Done():
					fetchErr <- err
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
			backoff, attempt = 50*time.Millisecond, 0
			select {
			case msgs <- m:
			case <-stop.Done():
				return
			}
		}
	}()
	p := &partitionState{c: c, gen: gen, topic: topic, source: source, partition: partition, logged: logged, log: log, commitAt: -1,
		next: offset, label: strconv.Itoa(int(partition))}
	defer p.unstall()
	decoder := a.sources[source].decoder
	ticker := time.NewTicker(c.opts.FlushInterval)
	defer ticker.Stop()
	batch := make([]kafka.Message, 0, c.opts.MaxBatch)
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				// The fetcher closes msgs after it sent its error, or
				// without one when stopped: then stop is done, and
				// waiting for an error would never end.
				var err error
				select {
				case err = <-fetchErr:
				default:
				}
				p.finish()
				if stop.Err() == nil {
					c.fail(fmt.Errorf("partition %s/%d: fetch: %w", topic, partition, err))
				}
				return
			}
			batch = append(batch[:0], m)
		drain:
			for len(batch) < cap(batch) {
				select {
				case m, ok := <-msgs:
					if !ok {
						break drain
					}
					batch = append(batch, m)
				default:
					break drain
				}
			}
			if !p.process(stop, decoder, batch) {
				p.finish()
				return
			}
			if len(p.pending) >= c.opts.FlushEvents {
				p.flush(stop)
			}
		case <-ticker.C:
			p.flush(stop)
		case <-stop.Done():
			p.finish()
			return
		}
	}
}

// partitionState is what one partition holds between flushes.
type partitionState struct {
	c         *consumer
	gen       *kafka.Generation
	topic     string
	source    string
	partition int32
	label     string // partition, as a metric label
	logged    map[string]int64
	log       *slog.Logger
	pending   []streamlog.Event // applied online, not yet logged
	commitAt  int64             // offset to commit once pending is logged; -1: none
	next      int64             // offset of the next message to apply
	hwm       int64             // the partition's end, as last seen
	// stalledSince is when the write that is failing now first failed
	// (zero while none is); lastErr is its latest error.
	stalledSince time.Time
	lastErr      error
}

// process applies a batch online and sends its dead letters; it returns
// false when the partition must stop before the batch was applied.
//
// A message goes to the dead-letter topic when it can never be applied:
// it does not decode, a value or time is out of range, or the online
// store's encoding refuses one of its values (an *EventError). Any other
// error is an outage of a sink (the store, the disk, the broker) and is
// retried with backoff until it succeeds or the partition stops: a
// stream never skips data it could not write.
func (p *partitionState) process(ctx context.Context, d *Decoder, batch []kafka.Message) bool {
	a := p.c.a
	events := make([]streamlog.Event, 0, len(batch))
	var dead []kafka.Message
	// Where each dead letter was and why, in full, for the log: the
	// writer sets the messages' Offset to their place in the dead-letter
	// topic.
	type deadInfo struct {
		offset int64
		reason string
	}
	var infos []deadInfo
	byOffset := make(map[int64]int, len(batch))
	for i := range batch {
		m := &batch[i]
		byOffset[m.Offset] = i
		ev := streamlog.Event{Offset: m.Offset}
		err := d.Decode(m.Value, &ev)
		if err == nil {
			err = a.checkTime(&ev)
		}
		if err != nil {
			dead, infos = append(dead, p.deadLetter(m, err)), append(infos, deadInfo{m.Offset, err.Error()})
			continue
		}
		events = append(events, ev)
	}
	last := &batch[len(batch)-1]
	p.hwm = max(p.hwm, last.HighWaterMark)
	start := time.Now()
	applied := len(events)
	for len(events) > 0 {
		var bad *EventError
		var badErr error
		ok := p.retry(ctx, "write online", batch[0].Offset, func() error {
			err := a.ApplyOnline(ctx, p.source, p.partition, events)
			if errors.As(err, &bad) {
				badErr = err
				return nil // the event's fault, not an outage: dead-letter it
			}
			bad = nil
			return err
		})
		if !ok {
			return false
		}
		if bad == nil {
			break
		}
		m := &batch[byOffset[events[bad.Index].Offset]]
		dead, infos = append(dead, p.deadLetter(m, badErr)), append(infos, deadInfo{m.Offset, badErr.Error()})
		events = append(events[:bad.Index], events[bad.Index+1:]...)
		applied = len(events)
	}
	if len(dead) > 0 {
		if !p.retry(ctx, "write dead letters", batch[0].Offset, func() error { return p.c.dlq.WriteMessages(ctx, dead...) }) {
			return false
		}
		a.metrics.DeadLetters.WithLabelValues(p.source).Add(float64(len(dead)))
		for _, d := range infos {
			p.c.dead.record(p.topic, p.partition, d.offset, d.reason)
		}
	}
	if applied > 0 {
		a.metrics.OnlineWrite.WithLabelValues(p.source).Observe(time.Since(start).Seconds())
		a.metrics.Events.WithLabelValues(p.source).Add(float64(applied))
		a.metrics.Batch.Observe(float64(applied))
		p.pending = append(p.pending, events...)
	}
	p.commitAt = last.Offset + 1
	p.next = last.Offset + 1
	p.setLag(p.hwm - p.next)
	return true
}

// deadLetterReasonBytes bounds the reason a dead letter carries.
const deadLetterReasonBytes = 1024

func (p *partitionState) deadLetter(m *kafka.Message, err error) kafka.Message {
	return kafka.Message{Topic: p.topic + p.c.opts.DeadLetterSuffix, Key: m.Key, Value: m.Value, Headers: []kafka.Header{
		{Key: "quiver-reason", Value: []byte(cut(err.Error(), deadLetterReasonBytes))},
		{Key: "quiver-source", Value: []byte(p.source)},
		{Key: "quiver-topic", Value: []byte(p.topic)},
		{Key: "quiver-partition", Value: []byte(strconv.Itoa(int(p.partition)))},
		{Key: "quiver-offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
	}}
}

// flush logs the pending events and commits their offsets; it returns
// false when the partition stopped before the log took them.
func (p *partitionState) flush(ctx context.Context) bool {
	if p.commitAt < 0 {
		return true
	}
	a := p.c.a
	if len(p.pending) > 0 {
		if !p.retry(ctx, "write offline log", p.pending[0].Offset, func() error {
			return a.AppendLog(p.source, p.topic, p.partition, p.pending, p.logged)
		}) {
			return false
		}
		clear(p.pending)
		p.pending = p.pending[:0]
	}
	err := p.gen.CommitOffsets(map[string]map[int]int64{p.topic: {int(p.partition): p.commitAt}})
	if err != nil {
		// The events are durable in both sinks; the commit is tried again
		// at the next flush, and until then a new owner replays them,
		// which is idempotent.
		a.metrics.Commits.WithLabelValues("failed").Inc()
		a.metrics.Retries.WithLabelValues(p.topic, p.label, "commit").Inc()
		p.log.Warn("commit offset", "offset", p.commitAt, "err", err)
		return true
	}
	a.metrics.Commits.WithLabelValues("ok").Inc()
	p.commitAt = -1
	return true
}

// finish flushes and commits when the partition stops. It runs before the
// group rebalances (the group waits for it), so no other member owns the
// partition yet. When the offline log cannot take the pending events in
// time, the consumer stops with the error: they are replayed from the
// last commit by whoever consumes the partition next.
func (p *partitionState) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if !p.flush(ctx) {
		p.c.fail(fmt.Errorf("partition %s/%d stopped with events from offset %d applied online but not in the offline log (they are replayed from the last commit): %w",
			p.topic, p.partition, p.pending[0].Offset, p.lastErr))
	}
}

// retry runs f until it succeeds or ctx is done, backing off (up to 5s);
// it reports whether f succeeded. Store and broker outages are waited
// out: a stream never skips data it could not write. While f fails the
// partition is stalled, and says so: quiver_stream_partition_stalled is
// 1, quiver_stream_retries_total counts the attempts, a warning is
// logged per attempt, and the consumer lag counts from offset from, the
// first message not yet durable in every sink.
func (p *partitionState) retry(ctx context.Context, op string, from int64, f func() error) bool {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			if attempt > 1 {
				p.recovered(op)
			}
			return true
		}
		p.lastErr = err
		if ctx.Err() != nil {
			return false
		}
		p.stalled(ctx, op, from, attempt, err, backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (p *partitionState) stalled(ctx context.Context, op string, from int64, attempt int, err error, backoff time.Duration) {
	m := p.c.a.metrics
	if p.stalledSince.IsZero() {
		p.stalledSince = time.Now()
	}
	m.Stalled.WithLabelValues(p.topic, p.label).Set(1)
	m.setStall(Stall{Topic: p.topic, Partition: p.partition, Op: op, Since: p.stalledSince})
	m.Retries.WithLabelValues(p.topic, p.label, op).Inc()
	if len(p.pending) > 0 {
		from = min(from, p.pending[0].Offset)
	}
	p.hwm = max(p.hwm, p.endOffset(ctx))
	p.setLag(p.hwm - from)
	p.log.Warn("partition stalled", "op", op, "err", err, "attempt", attempt, "from_offset", from,
		"stalled_for", time.Since(p.stalledSince).Round(time.Millisecond), "retry_in", backoff)
}

func (p *partitionState) recovered(op string) {
	p.log.Info("partition recovered", "op", op, "stalled_for", time.Since(p.stalledSince).Round(time.Millisecond))
	p.unstall()
	if p.next >= 0 { // a real offset: the assignment's may be a sentinel
		p.setLag(p.hwm - p.next)
	}
}

func (p *partitionState) unstall() {
	p.stalledSince = time.Time{}
	p.c.a.metrics.Stalled.WithLabelValues(p.topic, p.label).Set(0)
	p.c.a.metrics.clearStall(p.topic, p.partition)
}

func (p *partitionState) setLag(n int64) {
	p.c.a.metrics.Lag.WithLabelValues(p.topic, p.label).Set(float64(max(0, n)))
}

// endOffset asks the partition's leader for the partition's end (the
// offset the next message will have); -1 when it cannot be reached.
func (p *partitionState) endOffset(ctx context.Context) int64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, b := range p.c.opts.Brokers {
		conn, err := kafka.DialLeader(ctx, "tcp", b, p.topic, int(p.partition))
		if err != nil {
			continue
		}
		end, err := conn.ReadLastOffset()
		_ = conn.Close() // read-only; the offset is what matters
		if err == nil {
			return end
		}
	}
	return -1
}

// cut shortens s to at most n bytes (at a rune boundary), saying how
// long it was.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + fmt.Sprintf("… (%d bytes)", len(s))
}

// deadLetterLogLimit is how many dead letters are logged per second (by
// one consumer); the others of that second are counted in one line.
const deadLetterLogLimit = 10

// deadLetterLog logs dead letters, rate-limited.
type deadLetterLog struct {
	log *slog.Logger
	now func() time.Time

	mu         sync.Mutex
	window     time.Time
	logged     int
	suppressed int
}

func newDeadLetterLog(log *slog.Logger, now func() time.Time) *deadLetterLog {
	return &deadLetterLog{log: log, now: now}
}

// record logs one dead letter: where it was and why it was refused.
func (d *deadLetterLog) record(topic string, partition int32, offset int64, reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now := d.now(); now.Sub(d.window) >= time.Second {
		d.flushLocked()
		d.window, d.logged = now, 0
	}
	if d.logged >= deadLetterLogLimit {
		d.suppressed++
		return
	}
	d.logged++
	d.log.Warn("dead letter", "topic", topic, "partition", partition, "offset", offset, "reason", cut(reason, 256))
}

// flush logs how many dead letters were not logged.
func (d *deadLetterLog) flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.flushLocked()
}

func (d *deadLetterLog) flushLocked() {
	if d.suppressed > 0 {
		d.log.Warn("dead letters not logged (more than the limit per second)", "count", d.suppressed, "limit", deadLetterLogLimit)
		d.suppressed = 0
	}
}
