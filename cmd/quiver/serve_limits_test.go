package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/server"
)

// TestServeFlightLimitsFromConfig: serve.flight_limits in quiver.yaml
// reach the Flight service: a saved dataset whose schema has more fields
// than max_fields is refused with RESOURCE_EXHAUSTED, and one within it
// is served.
func TestServeFlightLimitsFromConfig(t *testing.T) {
	dir := initRepo(t)
	f, err := os.OpenFile(filepath.Join(dir, "quiver.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = io.WriteString(f, "  flight_limits:\n    max_fields: 2\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	code, _, stderr := quiver(t, "apply", "--repo", dir)
	require.Equal(t, 0, code, stderr)
	cfg, err := loadConfig(dir)
	require.NoError(t, err)
	require.Equal(t, 2, cfg.Serve.FlightLimits.MaxFields)

	writeArrow := func(name string, cols int) {
		fields := make([]arrow.Field, cols)
		arrays := make([]arrow.Array, cols)
		for i := range cols {
			fields[i] = arrow.Field{Name: string(rune('a' + i)), Type: arrow.PrimitiveTypes.Int64}
			b := array.NewInt64Builder(memory.DefaultAllocator)
			b.AppendValues([]int64{1, 2, 3}, nil)
			arrays[i] = b.NewArray()
			b.Release()
		}
		schema := arrow.NewSchema(fields, nil)
		rec := array.NewRecordBatch(schema, arrays, 3)
		defer rec.Release()
		for _, a := range arrays {
			a.Release()
		}
		require.NoError(t, os.MkdirAll(filepath.Join(cfg.DataRoot(), "sets"), 0o755))
		out, err := os.Create(filepath.Join(cfg.DataRoot(), "sets", name))
		require.NoError(t, err)
		w, err := ipc.NewFileWriter(out, ipc.WithSchema(schema))
		require.NoError(t, err)
		require.NoError(t, w.Write(rec))
		require.NoError(t, w.Close())
		require.NoError(t, out.Close())
	}
	writeArrow("narrow.arrow", 2)
	writeArrow("wide.arrow", 3)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	watcher, _, err := followRegistry(ctx, cfg, time.Hour, log, "serving")
	require.NoError(t, err)
	store, err := online.Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	flightAddr := freeAddr(t)
	srv, closeSrv, err := newServer(cfg, watcher.Current, store, nil, server.NewMetrics(), log,
		serveAddrs{grpc: "off", http: "off", flight: flightAddr}, nil)
	require.NoError(t, err)
	t.Cleanup(closeSrv)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	client, err := flight.NewClientWithMiddleware(flightAddr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close()) })
	get := func(path string) (int64, error) {
		ticket, err := json.Marshal(map[string]string{"kind": "dataset", "path": path})
		require.NoError(t, err)
		stream, err := client.DoGet(ctx, &flight.Ticket{Ticket: ticket})
		if err != nil {
			return 0, err
		}
		r, err := flight.NewRecordReader(stream)
		if err != nil {
			return 0, err
		}
		defer r.Release()
		var rows int64
		for r.Next() {
			rows += r.RecordBatch().NumRows()
		}
		return rows, r.Err()
	}
	rows, err := get("sets/narrow.arrow")
	require.NoError(t, err)
	require.EqualValues(t, 3, rows)
	_, err = get("sets/wide.arrow")
	require.Error(t, err)
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
}
