// Command online-client looks quickstart features up over gRPC with the Go
// SDK: go run ./examples/online-client -addr 127.0.0.1:6566
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/quiverdata/quiver/sdk"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6566", "quiver serve's gRPC address")
	token := flag.String("token", os.Getenv("QUIVER_TOKEN"), "bearer token, when the server requires one")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := sdk.Dial(*addr, sdk.Options{Token: *token})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	drivers := []int64{1001, 1002, 9999}
	start := time.Now()
	f, err := c.OnlineFeatures(ctx, sdk.Request{
		Entities: map[string]any{"driver_id": drivers},
		Features: []string{"driver_hourly:conv_rate", "driver_hourly:acc_rate", "driver_hourly:embedding"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	took := time.Since(start)
	for i, d := range drivers {
		rate, ok := f.Float64("conv_rate", i)
		if !ok {
			fmt.Printf("driver %d: %s\n", d, f.Status("conv_rate", i))
			continue
		}
		acc, _ := f.Float64("acc_rate", i)
		emb, _ := f.Float32s("embedding", i)
		fmt.Printf("driver %d: conv_rate %.3f, acc_rate %.3f, embedding of %d, as of %s\n",
			d, rate, acc, len(emb), f.EventTime("conv_rate", i).Format(time.RFC3339))
	}
	fmt.Printf("(one gRPC call, %s)\n", took.Round(time.Microsecond))
}
