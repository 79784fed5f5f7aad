// Command flight measures training sets over Arrow Flight: Quiver's
// training set streamed to a client on loopback (DoGet with a ticket that
// names the entity Parquet file, and DoExchange with the client streaming
// the entity table), and the same training set saved as an Arrow IPC file
// and served as stored (a dataset ticket), from a local file and as an
// object of an S3-protocol store (staged into the object cache, cold and
// cached), beside the same training set
// read in process (what Flight adds to it) and a raw Flight server that
// streams prebuilt record batches of the same schema and rows to the same
// client code (the limit of the transport), in one run.
//
// The data (a feature view source and an entity table, both Parquet) is
// generated with DuckDB; the Flight server runs in this process. Cases run
// in turn within each round so that drift on a shared machine touches all
// of them; the table shows medians over -runs rounds.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/duckdb/duckdb-go/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quiverdata/quiver/bench/internal/report"
	"github.com/quiverdata/quiver/internal/s3mem"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/server"
	"github.com/quiverdata/quiver/storage"
	"github.com/quiverdata/quiver/value"
	"github.com/quiverdata/quiver/wire"
)

var (
	entities = flag.Int("entities", 1_000_000, "entity (label) rows")
	rows     = flag.Int("rows", 1_000_000, "rows of the feature view")
	keys     = flag.Int("keys", 100_000, "distinct entities")
	features = flag.Int("features", 10, "float32 features of the view")
	runs     = flag.Int("runs", 3, "measured rounds (each runs every case once)")
	warmup   = flag.Int("warmup", 1, "rounds run first and not measured")
	threads  = flag.Int("threads", 0, "DuckDB threads (0: one per core)")
	dir      = flag.String("dir", "", "data directory (default: a new temporary one, removed at the end)")
	skip     = flag.String("skip", "", "comma-separated cases to skip: flight-doget, flight-exchange, flight-dataset, flight-dataset-s3-cold, flight-dataset-s3, raw-flight")
)

const (
	ttlDays    = 30
	spanDays   = 90
	maxMsg     = 64 << 20
	entityRel  = "entities.parquet"
	datasetRel = "sets/train.arrow"
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "flight:", err)
		os.Exit(1)
	}
}

// result is what one case read: rows, bytes of Arrow buffers, the time
// to the first batch and the time to the end.
type result struct {
	rows, bytes    int64
	first, elapsed time.Duration
}

type benchCase struct {
	name, label string
	run         func(context.Context) (result, error)
}

func run() error {
	ctx := context.Background()
	if *dir == "" {
		d, err := os.MkdirTemp("", "quiver-bench-flight-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	dataRoot := filepath.Join(*dir, "data")
	start := time.Now()
	if err := generate(dataRoot); err != nil {
		return fmt.Errorf("generate data: %w", err)
	}
	genTime := time.Since(start)

	defs, err := definitions()
	if err != nil {
		return err
	}
	eng, err := offline.Open(offline.Options{DataRoot: dataRoot, Threads: *threads, TempDirectory: filepath.Join(*dir, "tmp")})
	if err != nil {
		return err
	}
	defer eng.Close()
	refs := make([]string, *features)
	for i := range refs {
		refs[i] = fmt.Sprintf("driver_hourly:f%d", i)
	}
	request := func(ents offline.Entities) *offline.Request {
		return &offline.Request{Defs: defs, Entities: ents, Features: refs}
	}

	// The Quiver Flight server, in process on loopback.
	snap := &registry.Snapshot{Project: "bench", Version: 1, CreatedAt: time.Now().UTC(), Defs: defs}
	snapshot := func() *registry.Snapshot { return snap }
	svc, err := server.NewFlightService(eng, nil, snapshot, dataRoot, server.Limits{})
	if err != nil {
		return err
	}
	srv, err := server.New(server.Config{FlightAddr: "127.0.0.1:0", Flight: svc, Logger: slog.New(slog.DiscardHandler)},
		server.NewServing(nil, snapshot, server.Limits{}, "bench"), func(context.Context) error { return nil })
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	defer func() {
		stop()
		<-served
	}()
	quiver, err := dial(srv.FlightAddr().String())
	if err != nil {
		return err
	}
	defer quiver.Close()

	// The reference batches: the training set read once in process and
	// kept in memory, served by a bare Flight server configured like
	// Quiver's.
	ref, err := collect(ctx, eng, request(offline.EntitiesFromParquet(filepath.Join(dataRoot, entityRel))))
	if err != nil {
		return fmt.Errorf("prebuild the reference batches: %w", err)
	}
	defer ref.release()
	if ref.rows != int64(*entities) {
		return fmt.Errorf("the training set has %d rows, want %d", ref.rows, *entities)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	raw := grpc.NewServer(grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg))
	flight.RegisterFlightServiceServer(raw, &rawServer{schema: ref.schema, batches: ref.batches})
	go func() { _ = raw.Serve(lis) }() // Serve returns when stopped below
	defer raw.Stop()
	rawClient, err := dial(lis.Addr().String())
	if err != nil {
		return err
	}
	defer rawClient.Close()

	// The entity table as the client of DoExchange holds it: Arrow batches
	// in memory, read from the same Parquet file.
	ents, err := readParquet(ctx, filepath.Join(dataRoot, entityRel))
	if err != nil {
		return fmt.Errorf("read the entity table: %w", err)
	}
	defer ents.release()

	ticket, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: refs, Entities: entityRel})
	if err != nil {
		return err
	}
	exchangeCmd, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: refs})
	if err != nil {
		return err
	}
	// The same training set saved as an Arrow IPC file in the data root,
	// as quiver training-set --out sets/train.arrow writes it: served over
	// Flight as stored, with no join.
	if err := saveArrow(filepath.Join(dataRoot, datasetRel), ref); err != nil {
		return fmt.Errorf("save the training set: %w", err)
	}
	datasetTicket, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightDataset, Path: datasetRel})
	if err != nil {
		return err
	}

	// The same saved file as an object below an s3:// data root, served
	// by a second Flight service whose engine stages it into its object
	// cache: cold (the cache emptied before the read) and cached.
	objects, err := s3mem.Start()
	if err != nil {
		return fmt.Errorf("start the object store: %w", err)
	}
	defer objects.Close()
	if err := objects.Upload(ctx, filepath.Join(dataRoot, datasetRel), "root/"+datasetRel); err != nil {
		return err
	}
	cacheDir := filepath.Join(*dir, "cache")
	s3Root := s3mem.URI("root")
	s3Eng, err := offline.Open(offline.Options{DataRoot: s3Root, Threads: *threads, TempDirectory: filepath.Join(*dir, "tmp"),
		Storage: storage.Config{S3: objects.Options()}, Cache: offline.CacheOptions{Dir: cacheDir}})
	if err != nil {
		return err
	}
	defer s3Eng.Close()
	s3Svc, err := server.NewFlightService(s3Eng, nil, snapshot, s3Root, server.Limits{})
	if err != nil {
		return err
	}
	s3Srv, err := server.New(server.Config{FlightAddr: "127.0.0.1:0", Flight: s3Svc, Logger: slog.New(slog.DiscardHandler)},
		server.NewServing(nil, snapshot, server.Limits{}, "bench"), func(context.Context) error { return nil })
	if err != nil {
		return err
	}
	s3Served := make(chan error, 1)
	go func() { s3Served <- s3Srv.Serve(sctx) }()
	defer func() {
		stop()
		<-s3Served
	}()
	s3Client, err := dial(s3Srv.FlightAddr().String())
	if err != nil {
		return err
	}
	defer s3Client.Close()
	s3Dataset := func(ctx context.Context) (result, error) {
		t0 := time.Now()
		stream, err := s3Client.DoGet(ctx, &flight.Ticket{Ticket: datasetTicket})
		if err != nil {
			return result{}, err
		}
		r, err := readStream(stream, t0)
		r.elapsed = time.Since(t0)
		return r, err
	}

	cases := []benchCase{
		{"in-process", "Quiver training set, in process (reference)", func(ctx context.Context) (result, error) {
			t0 := time.Now()
			rr, err := eng.TrainingSet(ctx, request(offline.EntitiesFromParquet(filepath.Join(dataRoot, entityRel))))
			if err != nil {
				return result{}, err
			}
			defer rr.Release()
			r, err := drain(rr, t0)
			r.elapsed = time.Since(t0)
			return r, err
		}},
		{"flight-doget", "Quiver over Flight, DoGet ticket", func(ctx context.Context) (result, error) {
			t0 := time.Now()
			stream, err := quiver.DoGet(ctx, &flight.Ticket{Ticket: ticket})
			if err != nil {
				return result{}, err
			}
			r, err := readStream(stream, t0)
			r.elapsed = time.Since(t0)
			return r, err
		}},
		{"flight-exchange", "Quiver over Flight, DoExchange (entities streamed)", func(ctx context.Context) (result, error) {
			t0 := time.Now()
			r, err := exchange(ctx, quiver, exchangeCmd, ents, t0)
			r.elapsed = time.Since(t0)
			return r, err
		}},
		{"flight-dataset", "Quiver over Flight, saved training set (Arrow IPC file)", func(ctx context.Context) (result, error) {
			t0 := time.Now()
			stream, err := quiver.DoGet(ctx, &flight.Ticket{Ticket: datasetTicket})
			if err != nil {
				return result{}, err
			}
			r, err := readStream(stream, t0)
			r.elapsed = time.Since(t0)
			return r, err
		}},
		{"flight-dataset-s3-cold", "the same set as an S3 object, fetched into the cache", func(ctx context.Context) (result, error) {
			if err := s3mem.EmptyCache(cacheDir); err != nil {
				return result{}, err
			}
			return s3Dataset(ctx)
		}},
		{"flight-dataset-s3", "the same set as an S3 object, cached copy", s3Dataset},
		{"raw-flight", "raw Flight, prebuilt batches (the limit)", func(ctx context.Context) (result, error) {
			t0 := time.Now()
			stream, err := rawClient.DoGet(ctx, &flight.Ticket{Ticket: []byte("all")})
			if err != nil {
				return result{}, err
			}
			r, err := readStream(stream, t0)
			r.elapsed = time.Since(t0)
			return r, err
		}},
	}
	var active []benchCase
	for _, c := range cases {
		if !strings.Contains(","+*skip+",", ","+c.name+",") || c.name == "in-process" {
			active = append(active, c)
		}
	}

	fmt.Printf("training set over Arrow Flight on loopback: %d entity rows × %d float32 features from a view of %d rows over %d entities, %d cores\n",
		*entities, *features, *rows, *keys, runtime.NumCPU())
	fmt.Printf("result: %d columns, %d batches, %s of Arrow buffers; data generated in %s; median of %d runs after %d warm-up\n\n",
		len(ref.schema.Fields()), len(ref.batches), report.Bytes(ref.bytes), report.Seconds(genTime), *runs, *warmup)

	times, firsts := map[string][]time.Duration{}, map[string][]time.Duration{}
	got := map[string]result{}
	for round := 0; round < *warmup+*runs; round++ {
		for _, c := range active {
			runtime.GC()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			r, err := c.run(cctx)
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			if r.rows != int64(*entities) {
				return fmt.Errorf("%s read %d rows, want %d", c.name, r.rows, *entities)
			}
			if round >= *warmup {
				times[c.name] = append(times[c.name], r.elapsed)
				firsts[c.name] = append(firsts[c.name], r.first)
			}
			got[c.name] = r
		}
	}

	medians := map[string]time.Duration{}
	for _, c := range active {
		medians[c.name] = report.Median(times[c.name])
	}
	base := medians["in-process"]
	var out []report.Row
	for _, c := range active {
		m := medians[c.name]
		out = append(out, report.Row{Case: c.label, Cells: []string{
			report.Seconds(m), report.Seconds(report.Median(firsts[c.name])), report.Rate(got[c.name].rows, m),
			fmt.Sprintf("%.2f GB/s", float64(got[c.name].bytes)/m.Seconds()/1e9),
			fmt.Sprintf("%.2f×", m.Seconds()/base.Seconds())}})
	}
	report.Table(os.Stdout, []string{"case", "median", "first batch", "rows/s", "Arrow GB/s", "time / in process"}, out)
	fmt.Println()
	ratio := func(label, a, b, target string) {
		x, ok1 := medians[a]
		y, ok2 := medians[b]
		if ok1 && ok2 {
			fmt.Printf("%-52s %6.2f×  %s\n", label, x.Seconds()/y.Seconds(), target)
		}
	}
	share := func(label, a, b, target string) {
		x, ok1 := medians[a]
		y, ok2 := medians[b]
		if ok1 && ok2 {
			fmt.Printf("%-52s %6.0f%%  %s\n", label, 100*y.Seconds()/x.Seconds(), target)
		}
	}
	ratio("Flight DoGet / in process (time)", "flight-doget", "in-process", "(target ≤ 1.25×)")
	ratio("Flight DoExchange / in process (time)", "flight-exchange", "in-process", "(target ≤ 1.25×)")
	share("Flight DoGet throughput / raw Flight throughput", "flight-doget", "raw-flight", "(target ≥ 80%; includes the join)")
	share("in-process throughput / raw Flight throughput", "in-process", "raw-flight", "(the join alone against the transport)")
	share("saved training set over Flight / raw Flight", "flight-dataset", "raw-flight", "(target ≥ 80%: serving a precomputed set)")
	ratio("saved set on S3, fetched / local file (time)", "flight-dataset-s3-cold", "flight-dataset", "(a download into the cache, then the same read)")
	ratio("saved set on S3, cached / local file (time)", "flight-dataset-s3", "flight-dataset", "(one HEAD for the version, then the same read)")
	if d, ok := medians["flight-doget"]; ok {
		if rawT, ok := medians["raw-flight"]; ok {
			// The stream after the first batch is the transport's part of
			// the work (DuckDB has the result by then).
			stream := d - report.Median(firsts["flight-doget"])
			fmt.Printf("%-52s %6.0f%%  %s\n", "Flight DoGet after its first batch / raw Flight", 100*rawT.Seconds()/stream.Seconds(),
				"(throughput of the streaming phase alone)")
		}
	}
	return nil
}

// dial connects the Flight client every case uses.
func dial(addr string) (flight.Client, error) {
	return flight.NewClientWithMiddleware(addr, nil, nil,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)))
}

// readStream reads a Flight data stream to the end.
func readStream(stream flight.DataStreamReader, t0 time.Time) (result, error) {
	rd, err := flight.NewRecordReader(stream)
	if err != nil {
		return result{}, err
	}
	defer rd.Release()
	return drain(rd, t0)
}

// drain reads a record stream to the end, counting rows and the bytes of
// the Arrow buffers, and notes when the first batch came (since t0).
func drain(rr array.RecordReader, t0 time.Time) (result, error) {
	var r result
	for rr.Next() {
		rec := rr.RecordBatch()
		if r.first == 0 {
			r.first = time.Since(t0)
		}
		r.rows += rec.NumRows()
		r.bytes += value.BatchBytes(rec)
	}
	return r, rr.Err()
}

// exchange streams the entity batches with the command in the first
// message and reads the training set back.
func exchange(ctx context.Context, c flight.Client, cmd []byte, ents *batches, t0 time.Time) (result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.DoExchange(ctx)
	if err != nil {
		return result{}, err
	}
	sent := make(chan error, 1)
	go func() {
		w := flight.NewRecordWriter(stream, ipc.WithSchema(ents.schema))
		w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
		for _, b := range ents.batches {
			if err := w.Write(b); err != nil {
				_ = w.Close() // the write error is the one to report
				sent <- err
				return
			}
		}
		err := w.Close()
		sent <- errors.Join(err, stream.CloseSend())
	}()
	r, err := readStream(stream, t0)
	if err != nil {
		cancel()
		<-sent
		return r, err
	}
	if err := <-sent; err != nil && !errors.Is(err, io.EOF) {
		return r, fmt.Errorf("send the entities: %w", err)
	}
	return r, nil
}

// saveArrow writes the batches as an Arrow IPC file.
func saveArrow(path string, b *batches) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	w, err := ipc.NewFileWriter(fh, ipc.WithSchema(b.schema))
	if err != nil {
		return errors.Join(err, fh.Close())
	}
	for _, rec := range b.batches {
		if err := w.Write(rec); err != nil {
			return errors.Join(err, w.Close(), fh.Close())
		}
	}
	return errors.Join(w.Close(), fh.Close())
}

// batches are record batches held in memory.
type batches struct {
	schema  *arrow.Schema
	batches []arrow.RecordBatch
	rows    int64
	bytes   int64
}

func (b *batches) release() {
	for _, r := range b.batches {
		r.Release()
	}
	b.batches = nil
}

func hold(rr array.RecordReader) (*batches, error) {
	out := &batches{schema: rr.Schema()}
	for rr.Next() {
		rec := rr.RecordBatch()
		rec.Retain()
		out.batches = append(out.batches, rec)
		out.rows += rec.NumRows()
		out.bytes += value.BatchBytes(rec)
	}
	if err := rr.Err(); err != nil {
		out.release()
		return nil, err
	}
	return out, nil
}

// collect reads a training set into memory.
func collect(ctx context.Context, eng *offline.Engine, req *offline.Request) (*batches, error) {
	rr, err := eng.TrainingSet(ctx, req)
	if err != nil {
		return nil, err
	}
	defer rr.Release()
	return hold(rr)
}

// readParquet reads a Parquet file into memory with DuckDB.
func readParquet(ctx context.Context, path string) (*batches, error) {
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, err
	}
	defer connector.Close()
	conn, err := connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ar, err := duckdb.NewArrowFromConn(conn)
	if err != nil {
		return nil, err
	}
	rr, err := ar.QueryContext(ctx, "SELECT * FROM read_parquet('"+strings.ReplaceAll(path, "'", "''")+"')")
	if err != nil {
		return nil, err
	}
	defer rr.Release()
	return hold(rr)
}

// rawServer streams the same prebuilt batches for every ticket.
type rawServer struct {
	flight.BaseFlightServer
	schema  *arrow.Schema
	batches []arrow.RecordBatch
}

func (s *rawServer) DoGet(_ *flight.Ticket, stream flight.FlightService_DoGetServer) error {
	w := flight.NewRecordWriter(stream, ipc.WithSchema(s.schema))
	for _, b := range s.batches {
		if err := w.Write(b); err != nil {
			_ = w.Close() // the send error is the one to report
			return err
		}
	}
	return w.Close()
}

// generate writes the view's source and the entity table with DuckDB,
// deterministically: every value is a hash of the row number.
func generate(dataRoot string) error {
	marker := filepath.Join(dataRoot, fmt.Sprintf(".generated-%d-%d-%d-%d", *entities, *rows, *keys, *features))
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(dataRoot, "driver_hourly"), 0o755); err != nil {
		return err
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	span := spanDays * 86400
	var cols strings.Builder
	for f := range *features {
		fmt.Fprintf(&cols, ",\n\t\t((hash(i, %d) %% 100000) / 100000.0)::FLOAT AS f%d", f, f)
	}
	q := fmt.Sprintf(`COPY (SELECT
		(hash(i, 'k') %% %d)::BIGINT AS driver_id,
		TIMESTAMP '2026-01-01' + to_seconds((hash(i, 't') %% %d)::BIGINT) AS event_timestamp,
		TIMESTAMP '2026-01-01' + to_seconds((hash(i, 't') %% %d)::BIGINT + (hash(i, 'c') %% 3600)::BIGINT) AS created%s
		FROM range(%d) r(i)) TO '%s' (FORMAT parquet)`,
		*keys, span, span, cols.String(), *rows, filepath.Join(dataRoot, "driver_hourly", "part-0.parquet"))
	if _, err := db.Exec(q); err != nil {
		return err
	}
	q = fmt.Sprintf(`COPY (SELECT
		(hash(i, 'e') %% %d)::BIGINT AS driver_id,
		TIMESTAMP '2026-01-01' + to_seconds((hash(i, 'et') %% %d)::BIGINT) AS event_timestamp,
		hash(i, 'l') %% 2 = 0 AS label
		FROM range(%d) r(i)) TO '%s' (FORMAT parquet)`, *keys, span, *entities, filepath.Join(dataRoot, entityRel))
	if _, err := db.Exec(q); err != nil {
		return err
	}
	return os.WriteFile(marker, nil, 0o644)
}

func definitions() (*registry.Definitions, error) {
	var b strings.Builder
	b.WriteString("entities: [{name: driver, join_keys: [{name: driver_id, type: int64}]}]\n")
	b.WriteString("sources: [{name: driver_stats, kind: parquet, path: \"driver_hourly/*.parquet\", timestamp_field: event_timestamp, created_timestamp_field: created}]\n")
	fmt.Fprintf(&b, "feature_views:\n  - {name: driver_hourly, entities: [driver], source: driver_stats, ttl: %dd, features: [", ttlDays)
	for f := range *features {
		if f > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{name: f%d, type: float32}", f)
	}
	b.WriteString("]}\n")
	defs, errs := registry.ParseDefinitions("bench", []string{"bench.yaml"}, map[string][]byte{"bench.yaml": []byte(b.String())})
	return defs, errs.Err()
}
