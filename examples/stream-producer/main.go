// Command stream-producer sends quickstart trips to the trips topic, then
// polls Quiver's HTTP API until every trip counts in driver_trips:trips_1d,
// and prints how long after its event time the last trip became readable
// online. With -entities it also writes an entity table (each driver at
// the last trip's time) for a training set over the same moment.
//
//	go run ./examples/stream-producer -brokers 127.0.0.1:9092 -http 127.0.0.1:6567
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/segmentio/kafka-go"

	"github.com/quiverdata/quiver/internal/quickstart"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	topic := flag.String("topic", "trips", "topic of the trips source")
	httpAddr := flag.String("http", "127.0.0.1:6567", "Quiver's HTTP address")
	events := flag.Int("events", 2000, "trips to send")
	drivers := flag.Int("drivers", 20, "drivers 1001… the trips belong to")
	poison := flag.Bool("poison", false, "also send one malformed trip first, which goes to the dead-letter topic")
	entities := flag.String("entities", "", "write the entity table of the drivers at the last trip's time to this Parquet file")
	flag.Parse()
	if err := run(*brokers, *topic, *httpAddr, *events, *drivers, *entities, *poison); err != nil {
		fmt.Fprintln(os.Stderr, "stream-producer:", err)
		os.Exit(1)
	}
}

func run(brokers, topic, httpAddr string, n, drivers int, entities string, poison bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before, err := tripCounts(ctx, httpAddr, drivers)
	if err != nil {
		return err
	}
	w := &kafka.Writer{Addr: kafka.TCP(strings.Split(brokers, ",")...), Topic: topic, Balancer: &kafka.Hash{},
		BatchSize: 1000, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	gen := quickstart.NewTripGenerator(drivers, 0, uint64(time.Now().UnixNano()))
	var msgs []kafka.Message
	if poison {
		// A fare that is not a number: the stream sends it to the
		// dead-letter topic, with the reason, and carries on.
		msgs = append(msgs, kafka.Message{Key: []byte("1001"), Value: []byte(`{"driver_id": 1001, "rider_id": "r1", "fare": "twelve", "ts": "2026-12-01T00:00:00Z"}`)})
	}
	var last time.Time
	start := time.Now()
	for range n {
		tr := gen.Next(time.Now())
		msgs = append(msgs, kafka.Message{Key: tr.Key(), Value: tr.JSON()})
		last = tr.TS
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	sent := time.Since(start)
	fmt.Printf("produced %d trips of %d drivers to %s in %s\n", n, drivers, topic, sent.Round(time.Millisecond))
	if poison {
		fmt.Printf("and 1 malformed trip before them, for %s.dlq\n", topic)
	}
	var total int64
	for {
		after, err := tripCounts(ctx, httpAddr, drivers)
		if err != nil {
			return err
		}
		total = 0
		for i := range after {
			total += after[i] - before[i]
		}
		if total >= int64(n) {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("only %d of %d trips are readable online", total, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	fmt.Printf("all %d trips readable online (driver_trips:trips_1d) %s after the last one's event time\n", total, time.Since(last).Round(time.Millisecond))
	if entities == "" {
		return nil
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "event_timestamp", Type: quickstart.Timestamp},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for i := range drivers {
		b.Field(0).(*array.Int64Builder).Append(1001 + int64(i))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(last.UnixMicro()))
	}
	if err := quickstart.WriteParquet(entities, b.NewRecordBatch()); err != nil {
		return fmt.Errorf("write %s: %w", entities, err)
	}
	fmt.Printf("wrote %s: %d drivers at %s\n", entities, drivers, last.Format(time.RFC3339Nano))
	return nil
}

// tripCounts reads driver_trips:trips_1d of every driver over HTTP.
func tripCounts(ctx context.Context, addr string, drivers int) ([]int64, error) {
	ids := make([]int64, drivers)
	for i := range ids {
		ids[i] = 1001 + int64(i)
	}
	body, err := json.Marshal(map[string]any{"entities": map[string]any{"driver_id": ids}, "features": []string{"driver_trips:trips_1d"}})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/online-features", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Features []struct {
			Values []*int64 `json:"values"`
		} `json:"features"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("online features: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	counts := make([]int64, drivers)
	if len(out.Features) == 1 {
		for i, v := range out.Features[0].Values {
			if v != nil && i < drivers {
				counts[i] = *v
			}
		}
	}
	return counts, nil
}
