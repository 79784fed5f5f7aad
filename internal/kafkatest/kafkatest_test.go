package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
)

// TestConsumerGroup pins what the stream materializer relies on:
// kafka-go's consumer group, partition readers and commits work against
// the broker.
func TestConsumerGroup(t *testing.T) {
	b := Start(t)
	topic := b.Topic("spike")
	b.CreateTopic(t, topic, 2)
	var msgs []kafka.Message
	for i := range 10 {
		msgs = append(msgs, kafka.Message{Key: []byte{byte(i)}, Value: []byte{byte(i)}})
	}
	b.Produce(t, topic, msgs...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{ID: "g1", Brokers: b.Addrs, Topics: []string{topic},
		SessionTimeout: time.Second, RebalanceTimeout: time.Second, HeartbeatInterval: 200 * time.Millisecond})
	require.NoError(t, err)
	defer g.Close()
	gen, err := g.Next(ctx)
	require.NoError(t, err)
	as := gen.Assignments[topic]
	require.Len(t, as, 2)
	total := 0
	for _, a := range as {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: b.Addrs, Topic: topic, Partition: a.ID, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 50 * time.Millisecond})
		require.NoError(t, r.SetOffset(a.Offset))
		lag := int64(0)
		for {
			c2, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
			m, err := r.FetchMessage(c2)
			cancel2()
			if err != nil {
				break
			}
			total++
			lag = m.Offset + 1
		}
		require.NoError(t, gen.CommitOffsets(map[string]map[int]int64{topic: {a.ID: lag}}))
		require.NoError(t, r.Close())
	}
	require.Equal(t, 10, total)
}
