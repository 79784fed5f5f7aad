// Package kafkatest starts a Kafka-protocol broker for tests: kfake in
// process on a loopback port, or the real cluster named by
// QUIVER_KAFKA_BROKERS.
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
	// Cluster is the in-process broker; nil against a real cluster.
	Cluster *kfake.Cluster
}

// Start returns a broker for the test, stopped when it ends. Topics are
// created with the given partitions (against a real cluster, a unique
// suffix is the caller's business: use Topic).
func Start(t testing.TB) *Broker {
	t.Helper()
	if env := os.Getenv("QUIVER_KAFKA_BROKERS"); env != "" {
		return &Broker{Addrs: strings.Split(env, ",")}
	}
	c, err := kfake.NewCluster(kfake.Ports(0), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Broker{Addrs: c.ListenAddrs(), Cluster: c}
}

// Topic returns a topic name unique to the test run.
func (b *Broker) Topic(name string) string {
	if b.Cluster != nil {
		return name
	}
	return name + "-" + time.Now().Format("150405.000000")
}

// CreateTopic creates a topic with n partitions.
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
