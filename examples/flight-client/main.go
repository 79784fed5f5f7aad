// Command flight-client fetches a point-in-time training set and a batch
// of online features from a Quiver server over Arrow Flight, with the Go
// SDK. Any Arrow Flight client can do the same (see docs/flight.md).
//
//	quiver serve --flight 127.0.0.1:8815 &
//	go run -tags duckdb_arrow ./examples/flight-client -addr 127.0.0.1:8815
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiverdata/quiver/sdk"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8815", "Quiver Arrow Flight `ADDR`")
	entities := flag.String("entities", "driver_labels.parquet", "entity table, a Parquet path within the server's data root")
	dataset := flag.String("dataset", "", "also fetch this saved training set (an Arrow IPC file within the server's data root)")
	flag.Parse()
	if err := run(*addr, *entities, *dataset); err != nil {
		fmt.Fprintln(os.Stderr, "flight-client:", err)
		os.Exit(1)
	}
}

func run(addr, entities, dataset string) error {
	ctx := context.Background()
	c, err := sdk.DialFlight(addr, sdk.Options{Token: os.Getenv("QUIVER_TOKEN")})
	if err != nil {
		return err
	}
	defer c.Close()

	// A training set: the server reads the entity table from its data root
	// and streams the point-in-time join back as DuckDB produces it.
	start := time.Now()
	rr, err := c.TrainingSetFromPath(ctx, entities, sdk.TrainingSetRequest{
		Features: []string{"driver_hourly:conv_rate", "driver_hourly:acc_rate", "driver_scores:adjusted_conv"}})
	if err != nil {
		return err
	}
	var rows, batches int64
	for rr.Next() {
		rows += rr.RecordBatch().NumRows()
		batches++
	}
	if err := rr.Err(); err != nil {
		return err
	}
	fmt.Printf("training set over Flight: %d rows in %d batches, %s, in %s\n", rows, batches, fieldNames(rr.Schema()), time.Since(start).Round(time.Millisecond))
	rr.Release()

	// A saved training set: streamed as stored, no join.
	if dataset != "" {
		start := time.Now()
		rr, err := c.Dataset(ctx, dataset)
		if err != nil {
			return err
		}
		rows, batches = 0, 0
		for rr.Next() {
			rows += rr.RecordBatch().NumRows()
			batches++
		}
		if err := rr.Err(); err != nil {
			return err
		}
		fmt.Printf("saved training set %s over Flight: %d rows in %d batches, in %s\n", dataset, rows, batches, time.Since(start).Round(time.Millisecond))
		rr.Release()
	}

	// Batch inference: entity batches in, online values out.
	sch := arrow.NewSchema([]arrow.Field{{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "surge", Type: arrow.PrimitiveTypes.Float64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues([]int64{1001, 1002, 9999}, nil)
	b.Field(1).(*array.Float64Builder).AppendValues([]float64{1.5, 2, 2}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	ents, err := array.NewRecordReader(sch, []arrow.RecordBatch{rec})
	if err != nil {
		return err
	}
	defer ents.Release()
	out, err := c.OnlineFeatures(ctx, ents, sdk.TrainingSetRequest{Features: []string{"driver_hourly:conv_rate", "driver_scores:adjusted_conv"}})
	if err != nil {
		return err
	}
	defer out.Release()
	for out.Next() {
		fmt.Println("online features over Flight:")
		fmt.Println(out.RecordBatch())
	}
	return out.Err()
}

func fieldNames(s *arrow.Schema) []string {
	var out []string
	for _, f := range s.Fields() {
		out = append(out, f.Name)
	}
	return out
}
