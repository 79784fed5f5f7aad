// Package kafkatest starts a Kafka-protocol broker for tests, stopped when
// the test ends:
//
//   - a real single-node Apache Kafka broker in KRaft mode (combined
//     broker and controller, no ZooKeeper) when QUIVER_KAFKA_HOME names a
//     directory whose libs/ holds the broker's jars (scripts/kafka.sh
//     fetches them from Maven Central and prints it). Each Start formats a
//     new log directory and starts its own JVM on free loopback ports, so
//     tests keep their fixed topic and group names; make integration runs
//     the stream suites this way;
//   - the real cluster named by QUIVER_KAFKA_BROKERS (comma-separated;
//     shared, so topics are made unique with Topic);
//   - otherwise kfake, an in-process Kafka-protocol fake, on a loopback
//     port (make test).
//
// Which one a test got is in Broker.Kind and in the test log.
package kafkatest

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is a running broker.
type Broker struct {
	Addrs []string
	// Kind is "kfake", "kafka" (a real broker this package started) or
	// "external" (QUIVER_KAFKA_BROKERS).
	Kind string
	// Cluster is the in-process broker; nil against a real one.
	Cluster *kfake.Cluster
	// real is the broker process this package started, if any.
	real *realBroker
}

// Start returns a broker for the test, stopped when it ends.
func Start(t testing.TB) *Broker {
	t.Helper()
	if env := os.Getenv("QUIVER_KAFKA_BROKERS"); env != "" {
		t.Logf("kafkatest: the cluster at %s (QUIVER_KAFKA_BROKERS)", env)
		return &Broker{Addrs: strings.Split(env, ","), Kind: "external"}
	}
	if home := os.Getenv("QUIVER_KAFKA_HOME"); home != "" {
		rb := startReal(t, home)
		t.Logf("kafkatest: Apache Kafka %s at %s", rb.version, rb.addr)
		return &Broker{Addrs: []string{rb.addr}, Kind: "kafka", real: rb}
	}
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Broker{Addrs: c.ListenAddrs(), Kind: "kfake", Cluster: c}
}

// Topic returns a topic name unique to the test run: the name itself on a
// broker of the test's own, the name with a suffix on a shared cluster.
func (b *Broker) Topic(name string) string {
	if b.Kind != "external" {
		return name
	}
	return name + "-" + time.Now().Format("150405.000000")
}

// CreateTopic creates a topic with n partitions, and waits until every
// partition has a leader.
func (b *Broker) CreateTopic(t testing.TB, topic string, n int) {
	t.Helper()
	if b.Cluster != nil {
		if err := b.Cluster.CreateTopic(topic, int32(n), nil); err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
		return
	}
	conn, err := kafka.Dial("tcp", b.Addrs[0])
	if err != nil {
		t.Fatalf("dial %s: %v", b.Addrs[0], err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		t.Fatalf("controller: %v", err)
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		t.Fatalf("dial controller: %v", err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: n, ReplicationFactor: 1}); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		parts, err := conn.ReadPartitions(topic)
		led := 0
		for _, p := range parts {
			if p.Leader.Port != 0 {
				led++
			}
		}
		if err == nil && led == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s: %d of %d partitions have a leader after 30s (%v)", topic, led, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Writer returns a synchronous writer that sends each call's messages at
// once (kafka-go batches for a second by default), partitioning by key.
func (b *Broker) Writer(topic string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(b.Addrs...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		BatchSize:    10_000,
		BatchBytes:   16 << 20,
		BatchTimeout: time.Millisecond,
		RequiredAcks: kafka.RequireAll,
	}
}

// Produce sends messages and fails the test on error.
func (b *Broker) Produce(t testing.TB, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := b.Writer(topic)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

// Restart kills a broker this package started with SIGKILL and starts it
// again on its log directory and ports; it skips the test on kfake (which
// keeps nothing across a restart) and on a cluster of the caller's.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	if b.real == nil {
		t.Skipf("kafkatest: a %s broker cannot be restarted by the test; QUIVER_KAFKA_HOME runs this test against a real one (make integration)", b.Kind)
	}
	if err := b.real.Restart(); err != nil {
		t.Fatalf("restart the broker: %v", err)
	}
}

// Log returns the tail of a real broker's log (empty for others), for a
// failing test's message.
func (b *Broker) Log() string {
	if b.real == nil {
		return ""
	}
	return b.real.logTail(8 << 10)
}
