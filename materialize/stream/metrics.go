package stream

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the materializer's Prometheus metrics.
type Metrics struct {
	Events      *prometheus.CounterVec   // quiver_stream_events_total{source}
	DeadLetters *prometheus.CounterVec   // quiver_stream_dead_letters_total{source}
	Freshness   prometheus.Histogram     // quiver_stream_freshness_seconds
	Lag         *prometheus.GaugeVec     // quiver_stream_consumer_lag{topic,partition}
	LogFlush    prometheus.Histogram     // quiver_stream_log_flush_seconds
	Commits     *prometheus.CounterVec   // quiver_stream_commits_total{result}
	Batch       prometheus.Histogram     // quiver_stream_batch_events
	Skipped     *prometheus.CounterVec   // quiver_stream_replayed_total{source}
	OnlineWrite *prometheus.HistogramVec // quiver_stream_online_write_seconds{source}
	// TileConflicts counts tile rows another writer changed between this
	// one's read and write (each is read and written again).
	TileConflicts prometheus.Counter // quiver_stream_tile_conflicts_total
	// Stalled is 1 while a write of the partition fails and is retried.
	Stalled *prometheus.GaugeVec // quiver_stream_partition_stalled{topic,partition}
	// Retries counts failed writes and fetches that were retried, by what
	// failed (write online, write offline log, write dead letters, commit,
	// fetch).
	Retries *prometheus.CounterVec // quiver_stream_retries_total{topic,partition,op}

	mu     sync.Mutex
	stalls map[stallKey]Stall // the partitions stalled now
}

type stallKey struct {
	topic     string
	partition int32
}

// Stall is a partition whose writes fail and are being retried.
type Stall struct {
	Topic     string
	Partition int32
	Op        string    // what fails: write online, write offline log, write dead letters
	Since     time.Time // when it first failed
}

// Stalls returns the partitions stalled now, by topic and partition.
func (m *Metrics) Stalls() []Stall {
	m.mu.Lock()
	out := make([]Stall, 0, len(m.stalls))
	for _, st := range m.stalls {
		out = append(out, st)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

func (m *Metrics) setStall(st Stall) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stalls == nil {
		m.stalls = map[stallKey]Stall{}
	}
	m.stalls[stallKey{st.Topic, st.Partition}] = st
}

func (m *Metrics) clearStall(topic string, partition int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.stalls, stallKey{topic, partition})
}

// NewMetrics returns the metrics, registered with reg when it is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quiver_stream_events_total",
			Help: "Events applied online, by source."}, []string{"source"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quiver_stream_dead_letters_total",
			Help: "Messages that could not be decoded or validated and went to the dead-letter topic, by source."}, []string{"source"}),
		Freshness: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "quiver_stream_freshness_seconds",
			Help:    "Time from an event's timestamp to the moment its value is readable online.",
			Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30, 60, 300, 3600}}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "quiver_stream_consumer_lag",
			Help: "Messages between the consumer's position and the partition's end; while the partition is stalled, from the first message not yet in every sink."}, []string{"topic", "partition"}),
		LogFlush: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "quiver_stream_log_flush_seconds",
			Help: "Time to write and sync one batch of a view's offline log.", Buckets: prometheus.DefBuckets}),
		Commits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quiver_stream_commits_total",
			Help: "Offset commits, by result (ok, failed)."}, []string{"result"}),
		Batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "quiver_stream_batch_events",
			Help: "Events per online write batch.", Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		Skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quiver_stream_replayed_total",
			Help: "Replayed messages (after a crash or rebalance) that were already logged offline, by source."}, []string{"source"}),
		OnlineWrite: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "quiver_stream_online_write_seconds",
			Help: "Time to apply one batch to the online store.", Buckets: prometheus.DefBuckets}, []string{"source"}),
		TileConflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "quiver_stream_tile_conflicts_total",
			Help: "Aggregation tile rows that another writer changed between this one's read and write, and were read and written again."}),
		Stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "quiver_stream_partition_stalled",
			Help: "1 while a write of the partition (online, offline log, dead letters) fails and is retried; the partition applies nothing new meanwhile."}, []string{"topic", "partition"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quiver_stream_retries_total",
			Help: "Failed writes and fetches of a partition that were retried, by operation."}, []string{"topic", "partition", "op"}),
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.DeadLetters, m.Freshness, m.Lag, m.LogFlush, m.Commits, m.Batch, m.Skipped, m.OnlineWrite, m.TileConflicts, m.Stalled, m.Retries)
	}
	return m
}
