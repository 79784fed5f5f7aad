package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

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
	c := &consumer{a: a, opts: opts, topics: topics, dlq: dlq}
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
	err = errors.Join(group.Close(), dlq.Close())
	if err != nil {
		opts.Logger.Warn("leave consumer group", "err", err)
	}
	return nil
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
	a      *Applier
	opts   KafkaOptions
	topics map[string]string // topic → source
	dlq    *kafka.Writer
}

// partition consumes one assigned partition until the generation ends or
// ctx is done, and then flushes and commits what it applied.
func (c *consumer) partition(ctx, gctx context.Context, gen *kafka.Generation, topic string, partition int32, offset int64) {
	log := c.opts.Logger.With("topic", topic, "partition", partition)
	source := c.topics[topic]
	a := c.a
	logged, err := a.Logged(source, topic, partition)
	if err != nil {
		log.Error("read stream log offsets", "err", err)
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
		log.Error("seek", "offset", offset, "err", err)
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
		for {
			m, err := r.FetchMessage(stop)
			if err != nil {
				fetchErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-stop.Done():
				return
			}
		}
	}()
	p := &partitionState{c: c, gen: gen, topic: topic, source: source, partition: partition, logged: logged, log: log, commitAt: -1}
	decoder := a.sources[source].decoder
	ticker := time.NewTicker(c.opts.FlushInterval)
	defer ticker.Stop()
	batch := make([]kafka.Message, 0, c.opts.MaxBatch)
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				if err := <-fetchErr; stop.Err() == nil {
					log.Error("fetch", "err", err)
				}
				p.finish()
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
	logged    map[string]int64
	log       *slog.Logger
	pending   []streamlog.Event // applied online, not yet logged
	commitAt  int64             // offset to commit once pending is logged; -1: none
}

// process applies a batch online and sends its dead letters; it returns
// false when the partition must stop before the batch was applied.
func (p *partitionState) process(ctx context.Context, d *Decoder, batch []kafka.Message) bool {
	a := p.c.a
	events := make([]streamlog.Event, 0, len(batch))
	var dead []kafka.Message
	for i := range batch {
		m := &batch[i]
		ev := streamlog.Event{Offset: m.Offset}
		err := d.Decode(m.Value, &ev)
		if err == nil {
			err = a.checkTime(&ev)
		}
		if err != nil {
			dead = append(dead, p.deadLetter(m, err))
			continue
		}
		events = append(events, ev)
	}
	if len(dead) > 0 {
		if !retry(ctx, p.log, "write dead letters", func() error { return p.c.dlq.WriteMessages(ctx, dead...) }) {
			return false
		}
		a.metrics.DeadLetters.WithLabelValues(p.source).Add(float64(len(dead)))
	}
	if len(events) > 0 {
		start := time.Now()
		if !retry(ctx, p.log, "write online", func() error { return a.ApplyOnline(ctx, p.source, p.partition, events) }) {
			return false
		}
		a.metrics.OnlineWrite.WithLabelValues(p.source).Observe(time.Since(start).Seconds())
		a.metrics.Events.WithLabelValues(p.source).Add(float64(len(events)))
		a.metrics.Batch.Observe(float64(len(events)))
		p.pending = append(p.pending, events...)
	}
	last := &batch[len(batch)-1]
	p.commitAt = last.Offset + 1
	a.metrics.Lag.WithLabelValues(p.topic, strconv.Itoa(int(p.partition))).Set(float64(max(0, last.HighWaterMark-last.Offset-1)))
	return true
}

func (p *partitionState) deadLetter(m *kafka.Message, err error) kafka.Message {
	return kafka.Message{Topic: p.topic + p.c.opts.DeadLetterSuffix, Key: m.Key, Value: m.Value, Headers: []kafka.Header{
		{Key: "quiver-reason", Value: []byte(err.Error())},
		{Key: "quiver-source", Value: []byte(p.source)},
		{Key: "quiver-topic", Value: []byte(p.topic)},
		{Key: "quiver-partition", Value: []byte(strconv.Itoa(int(p.partition)))},
		{Key: "quiver-offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
	}}
}

// flush logs the pending events and commits their offsets.
func (p *partitionState) flush(ctx context.Context) bool {
	if p.commitAt < 0 {
		return true
	}
	a := p.c.a
	if len(p.pending) > 0 {
		if !retry(ctx, p.log, "write offline log", func() error {
			return a.AppendLog(p.source, p.topic, p.partition, p.pending, p.logged)
		}) {
			return false
		}
		clear(p.pending)
		p.pending = p.pending[:0]
	}
	err := p.gen.CommitOffsets(map[string]map[int]int64{p.topic: {int(p.partition): p.commitAt}})
	if err != nil {
		// The events are durable in both sinks; the next owner replays
		// them, and replays are idempotent.
		a.metrics.Commits.WithLabelValues("failed").Inc()
		p.log.Warn("commit offset", "offset", p.commitAt, "err", err)
		return true
	}
	a.metrics.Commits.WithLabelValues("ok").Inc()
	p.commitAt = -1
	return true
}

// finish flushes and commits when the partition stops. It runs before the
// group rebalances (the group waits for it), so no other member owns the
// partition yet.
func (p *partitionState) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p.flush(ctx)
}

// retry runs f until it succeeds or ctx is done, backing off; it reports
// whether f succeeded. Store and broker outages are waited out: a stream
// never skips data it could not write.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error) bool {
	backoff := 50 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		log.Warn(what, "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
