package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/testutil/ipctest"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/wire"
)

const flightDefsYAML = `
entities:
  - {name: driver, join_keys: [{name: driver_id, type: int64}]}
sources:
  - {name: src, kind: parquet, path: features.parquet, timestamp_field: ts}
feature_views:
  - name: stats
    entities: [driver]
    source: src
    ttl: 24h
    features: [{name: rate, type: float64}]
`

type flightTest struct {
	svc    *FlightService
	client flight.Client
	root   string
}

// startFlightTest serves Flight over loopback with a real offline engine
// over a feature view of three drivers, and an embedded online store.
func startFlightTest(t *testing.T, limits Limits, opts ...FlightOption) *flightTest {
	t.Helper()
	return startFlightTestDefs(t, flightDefsYAML, limits, opts...)
}

// startFlightTestDefs is startFlightTest over other definitions of the
// same source.
func startFlightTestDefs(t *testing.T, defsYAML string, limits Limits, opts ...FlightOption) *flightTest {
	t.Helper()
	return startFlightTestEngine(t, defsYAML, nil, limits, opts...)
}

// startFlightTestEngine is startFlightTestDefs with the offline engine's
// options edited (another engine).
func startFlightTestEngine(t *testing.T, defsYAML string, edit func(*offline.Options), limits Limits, opts ...FlightOption) *flightTest {
	t.Helper()
	root := t.TempDir()
	writeParquet(t, filepath.Join(root, "features.parquet"), featureRows(t))
	defs, errs := registry.ParseDefinitions("flt", []string{"f.yaml"}, map[string][]byte{"f.yaml": []byte(defsYAML)})
	require.NoError(t, errs.Err())
	snap := &registry.Snapshot{Project: "flt", Version: 1, Hash: "sha256:x", Defs: defs}
	snapshot := func() *registry.Snapshot { return snap }
	engOpts := offline.Options{DataRoot: root, Threads: 1}
	if edit != nil {
		edit(&engOpts)
	}
	off, err := offline.Open(engOpts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, off.Close()) })
	lookup := online.NewLookup(embedded(t), online.LookupOptions{Now: func() time.Time { return now }})
	svc, err := NewFlightService(off, lookup, snapshot, root, limits, opts...)
	require.NoError(t, err)
	srv, err := New(Config{FlightAddr: "127.0.0.1:0", Flight: svc}, NewServing(lookup, snapshot, Limits{}, "test"),
		func(context.Context) error { return nil })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	client, err := flight.NewClientWithMiddleware(srv.FlightAddr().String(), nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, client.Close()) })
	return &flightTest{svc: svc, client: client, root: root}
}

var tsType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

func featureRows(t *testing.T) arrow.RecordBatch {
	sch := arrow.NewSchema([]arrow.Field{{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "ts", Type: tsType}, {Name: "rate", Type: arrow.PrimitiveTypes.Float64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer b.Release()
	for i := range 3 {
		b.Field(0).(*array.Int64Builder).Append(int64(i + 1))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(now.Add(-time.Hour).UnixMicro()))
		b.Field(2).(*array.Float64Builder).Append(float64(i+1) / 10)
	}
	return b.NewRecordBatch()
}

// entityRows are n entity rows of drivers 1, 2, 3, ... at now.
func entityRows(n int) arrow.RecordBatch {
	sch := arrow.NewSchema([]arrow.Field{{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}, {Name: "event_timestamp", Type: tsType}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer b.Release()
	for i := range n {
		b.Field(0).(*array.Int64Builder).Append(int64(i%3 + 1))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(now.UnixMicro()))
	}
	return b.NewRecordBatch()
}

func writeParquet(t *testing.T, path string, rec arrow.RecordBatch) {
	t.Helper()
	defer rec.Release()
	fh, err := os.Create(path)
	require.NoError(t, err)
	tbl := array.NewTableFromRecords(rec.Schema(), []arrow.RecordBatch{rec})
	defer tbl.Release()
	// WriteTable closes fh.
	require.NoError(t, pqarrow.WriteTable(tbl, fh, 1024, nil, pqarrow.DefaultWriterProps()))
}

func ticket(t *testing.T, c wire.FlightCommand) *flight.Ticket {
	b, err := json.Marshal(c)
	require.NoError(t, err)
	return &flight.Ticket{Ticket: b}
}

// readAll reads a DoGet stream to its end and returns its rows.
func readAll(stream flight.FlightService_DoGetClient) (int64, error) {
	rd, err := flight.NewRecordReader(stream)
	if err != nil {
		return 0, err
	}
	defer rd.Release()
	var rows int64
	for rd.Next() {
		rows += rd.RecordBatch().NumRows()
	}
	return rows, rd.Err()
}

func (ft *flightTest) doGet(t *testing.T, c wire.FlightCommand) (int64, error) {
	stream, err := ft.client.DoGet(context.Background(), ticket(t, c))
	require.NoError(t, err)
	return readAll(stream)
}

// exchangeOnline sends recs as an online_features exchange.
func (ft *flightTest) exchangeOnline(t *testing.T, recs ...arrow.RecordBatch) (int64, error) {
	return ft.exchange(t, wire.FlightOnlineFeatures, recs...)
}

// exchange sends recs as the entity stream of a command of kind and
// returns the rows answered.
func (ft *flightTest) exchange(t *testing.T, kind string, recs ...arrow.RecordBatch) (int64, error) {
	cmd, err := json.Marshal(wire.FlightCommand{Kind: kind, Features: []string{"stats:rate"}})
	require.NoError(t, err)
	stream, err := ft.client.DoExchange(context.Background())
	require.NoError(t, err)
	w := flight.NewRecordWriter(stream, ipc.WithSchema(recs[0].Schema()))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			break // the server answered already; its status follows
		}
	}
	require.NoError(t, stream.CloseSend())
	rd, err := flight.NewRecordReader(stream)
	if err != nil {
		return 0, err
	}
	defer rd.Release()
	var rows int64
	for rd.Next() {
		rows += rd.RecordBatch().NumRows()
	}
	return rows, rd.Err()
}

// A DoExchange whose schema message claims 10^9 children for a struct
// field is refused with InvalidArgument before anything is allocated for
// them, and the server goes on serving.
func TestFlightHostileSchemaInDoExchange(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	cmd, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}})
	require.NoError(t, err)
	for _, kind := range []string{wire.FlightTrainingSet, wire.FlightOnlineFeatures} {
		cmd, err = json.Marshal(wire.FlightCommand{Kind: kind, Features: []string{"stats:rate"}})
		require.NoError(t, err)
		stream, err := ft.client.DoExchange(context.Background())
		require.NoError(t, err)
		require.NoError(t, stream.Send(&flight.FlightData{
			FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd},
			DataHeader:       ipctest.HostileSchemaMessage(t),
		}))
		require.NoError(t, stream.CloseSend())
		_, err = stream.Recv()
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", kind, err)
		require.ErrorContains(t, err, "message 1: field 1 children claims 1000000000 entries")
	}
	ents := entityRows(3)
	defer ents.Release()
	rows, err := ft.exchangeOnline(t, ents)
	require.NoError(t, err, "the server still serves")
	require.EqualValues(t, 3, rows)
}

// A stream over its byte budget is refused with ResourceExhausted.
func TestFlightStreamBudget(t *testing.T) {
	ft := startFlightTest(t, Limits{}, WithIPCLimits(IPCLimits{MaxStreamBytes: 1024}))
	ents := entityRows(40) // 40 rows of two 8-byte columns: 640 bytes
	defer ents.Release()
	for _, kind := range []string{wire.FlightOnlineFeatures, wire.FlightTrainingSet} {
		_, err := ft.exchange(t, kind, ents, ents, ents)
		require.Equal(t, codes.ResourceExhausted, status.Code(err), "%s: %v", kind, err)
		require.ErrorContains(t, err, "message 3: the stream's bodies reach", kind)
	}
	rows, err := ft.exchange(t, wire.FlightTrainingSet, ents)
	require.NoError(t, err, "a stream within the budget")
	require.EqualValues(t, 40, rows)
}

// A saved dataset whose footer claims 10^9 children is refused by DoGet
// and GetSchema alike.
func TestFlightHostileDatasetFooter(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	require.NoError(t, os.WriteFile(filepath.Join(ft.root, "bad.arrow"), ipctest.HostileFooterFile(t), 0o644))
	_, err := ft.doGet(t, wire.FlightCommand{Kind: wire.FlightDataset, Path: "bad.arrow"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `dataset "bad.arrow"`)
	require.ErrorContains(t, err, "footer: field 1 children claims 1000000000 entries")
	cmd, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightDataset, Path: "bad.arrow"})
	require.NoError(t, err)
	_, err = ft.client.GetSchema(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
}

// writeDataset writes an Arrow IPC file of batches×rows int64 values and
// renames it into place.
func writeDataset(t *testing.T, path string, batches, rows int) {
	t.Helper()
	sch := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewInt64Builder(memory.DefaultAllocator)
	for i := range rows {
		b.Append(int64(i))
	}
	col := b.NewArray()
	b.Release()
	rec := array.NewRecordBatch(sch, []arrow.Array{col}, int64(rows))
	col.Release()
	defer rec.Release()
	tmp := path + ".tmp"
	fh, err := os.Create(tmp)
	require.NoError(t, err)
	w, err := ipc.NewFileWriter(fh, ipc.WithSchema(sch))
	require.NoError(t, err)
	for range batches {
		require.NoError(t, w.Write(rec))
	}
	require.NoError(t, w.Close())
	require.NoError(t, fh.Close())
	require.NoError(t, os.Rename(tmp, path))
}

// A dataset truncated or rewritten in place while a client streams it
// gives that client an error (Aborted, saying how to replace a dataset),
// not a SIGBUS or a decode of unchecked metadata that kills the server,
// which goes on serving.
func TestFlightDatasetChangedWhileStreamed(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	path := filepath.Join(ft.root, "big.arrow")
	const batches, rows = 128, 64 << 10 // 64 MiB: more than gRPC buffers
	writeDataset(t, path, batches, rows)

	// Truncated to nothing, to 1 MiB, and its footer overwritten in place
	// (the file keeps its size).
	for _, size := range []int64{0, 1 << 20, -1} {
		stream, err := ft.client.DoGet(context.Background(), ticket(t, wire.FlightCommand{Kind: wire.FlightDataset, Path: "big.arrow"}))
		require.NoError(t, err)
		rd, err := flight.NewRecordReader(stream)
		require.NoError(t, err)
		require.True(t, rd.Next(), "the first batch arrives: %v", rd.Err())
		if size >= 0 {
			require.NoError(t, os.Truncate(path, size))
		} else {
			fh, err := os.OpenFile(path, os.O_WRONLY, 0)
			require.NoError(t, err)
			st, err := fh.Stat()
			require.NoError(t, err)
			junk := make([]byte, 4096)
			for i := range junk {
				junk[i] = byte(i * 7)
			}
			_, err = fh.WriteAt(junk, st.Size()-int64(len(junk))-10)
			require.NoError(t, err)
			require.NoError(t, fh.Close())
		}
		n := 1
		for rd.Next() {
			n++
		}
		require.Less(t, n, batches, "the stream ends early")
		err = rd.Err()
		require.Equal(t, codes.Aborted, status.Code(err), "%v", err)
		require.ErrorContains(t, err, `dataset "big.arrow" was changed in place`)
		require.ErrorContains(t, err, "renaming it over the old one")
		rd.Release()

		// Replaced the safe way, it serves again.
		writeDataset(t, path, batches, rows)
		got, err := ft.doGet(t, wire.FlightCommand{Kind: wire.FlightDataset, Path: "big.arrow"})
		require.NoError(t, err)
		require.EqualValues(t, batches*rows, got)
	}
}

// A glob in a ticket is confined to the data root after expansion: a
// match through a symbolic link that leads out of the root is refused,
// as the same path without glob characters always was.
func TestFlightGlobConfinedToDataRoot(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	outside := t.TempDir()
	writeParquet(t, filepath.Join(outside, "secret.parquet"), entityRows(2))
	require.NoError(t, os.Symlink(outside, filepath.Join(ft.root, "linkdir")))
	require.NoError(t, os.Mkdir(filepath.Join(ft.root, "ents"), 0o755))
	writeParquet(t, filepath.Join(ft.root, "ents", "a.parquet"), entityRows(2))
	writeParquet(t, filepath.Join(ft.root, "ents", "b.parquet"), entityRows(3))
	feats := []string{"stats:rate"}

	for _, p := range []string{"linkdir/secre[t].parquet", "linkdir/*.parquet", "link*/secret.parquet", "linkdir/secret.parquet"} {
		_, err := ft.doGet(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: feats, Entities: p})
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", p, err)
		require.ErrorContains(t, err, "leads outside the data root", p)

		cmd, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: feats, Entities: p})
		require.NoError(t, err)
		_, err = ft.client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", p, err)
	}
	for _, p := range []string{"../x.parquet", "ents/../../x/*.parquet", "ents/**/a.parquet"} {
		_, err := ft.doGet(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: feats, Entities: p})
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", p, err)
	}
	_, err := ft.doGet(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: feats, Entities: "ents/z*.parquet"})
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `no file in the data root matches entities "ents/z*.parquet"`)

	// A glob within the root reads every file it matches.
	rows, err := ft.doGet(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: feats, Entities: "ents/*.parquet"})
	require.NoError(t, err)
	require.EqualValues(t, 5, rows)
	rows, err = ft.doGet(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: feats, Entities: "ents/b.parquet"})
	require.NoError(t, err)
	require.EqualValues(t, 3, rows)

	// Dataset paths are confined the same way.
	writeDataset(t, filepath.Join(outside, "d.arrow"), 1, 4)
	_, err = ft.doGet(t, wire.FlightCommand{Kind: wire.FlightDataset, Path: "linkdir/d.arrow"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "leads outside the data root")
}

// Describing a training set loads its entity table, so GetFlightInfo and
// GetSchema wait for a training-set slot like DoGet.
func TestFlightInfoTakesTrainingSetSlot(t *testing.T) {
	ft := startFlightTest(t, Limits{MaxConcurrentTrainingSets: 1})
	writeParquet(t, filepath.Join(ft.root, "ents.parquet"), entityRows(3))
	cmd, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Entities: "ents.parquet"})
	require.NoError(t, err)
	desc := &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd}
	for _, call := range []func() error{
		func() error { _, err := ft.client.GetFlightInfo(context.Background(), desc); return err },
		func() error { _, err := ft.client.GetSchema(context.Background(), desc); return err },
	} {
		release, err := ft.svc.acquire(context.Background())
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- call() }()
		require.Eventually(t, func() bool { return ft.svc.waiting.Load() == 1 }, 10*time.Second, time.Millisecond,
			"the call waits for the slot")
		select {
		case err := <-done:
			t.Fatalf("answered while every slot was taken: %v", err)
		default:
		}
		release()
		require.NoError(t, <-done)
	}
}

// Batches already built for an exchange are released when a later lookup
// of the same entity batch fails.
func TestFlightOnlineReleasesBatchesOnFailedLookup(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.DefaultAllocator)
	ft := startFlightTest(t, Limits{MaxEntities: 1}, WithAllocator(mem))
	sch := arrow.NewSchema([]arrow.Field{{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	b := array.NewInt64Builder(memory.DefaultAllocator)
	b.AppendValues([]int64{1, 2, 0}, []bool{true, true, false}) // the third key is null
	col := b.NewArray()
	b.Release()
	rec := array.NewRecordBatch(sch, []arrow.Array{col}, 3)
	col.Release()
	defer rec.Release()
	_, err := ft.exchangeOnline(t, rec)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "row 0") // the third row is row 0 of its chunk
	require.Zero(t, mem.CurrentAlloc(), "bytes left allocated after the exchange")
}

// A dataset's reader counts references atomically and closes what it
// reads on the last Release only, for both formats: a reader retained by
// one holder goes on reading after another releases it.
func TestDatasetReaderReferences(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	writeDataset(t, filepath.Join(ft.root, "d.arrow"), 3, 10)
	writeParquet(t, filepath.Join(ft.root, "d.parquet"), entityRows(30))
	for _, rel := range []string{"d.arrow", "d.parquet"} {
		d, err := ft.svc.openDataset(context.Background(), rel, datasetOpen{populate: true})
		require.NoError(t, err)
		const holders = 16
		var wg sync.WaitGroup
		for range holders {
			d.rr.Retain()
		}
		for range holders {
			wg.Add(1)
			go func() { defer wg.Done(); d.rr.Release() }()
		}
		wg.Wait()
		d.rr.Retain()
		d.rr.Release() // one holder is done; the first still reads
		var rows int64
		for d.rr.Next() {
			rows += d.rr.RecordBatch().NumRows()
		}
		require.NoError(t, d.rr.Err(), rel)
		require.EqualValues(t, 30, rows, rel)
		d.rr.Release()
		require.Panics(t, d.rr.Release, "%s: a release too many", rel)
	}
}

// A Parquet dataset whose embedded Arrow schema (ARROW:schema) claims 10^9
// children is refused before the Parquet reader decodes it.
func TestFlightHostileParquetArrowSchema(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	ents := entityRows(3)
	defer ents.Release()
	fh, err := os.Create(filepath.Join(ft.root, "bad.parquet"))
	require.NoError(t, err)
	w, err := pqarrow.NewFileWriter(ents.Schema(), fh, nil, pqarrow.NewArrowWriterProperties())
	require.NoError(t, err)
	require.NoError(t, w.Write(ents))
	meta := ipctest.HostileSchemaMessage(t)
	serialized := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 0xFFFFFFFF), uint32(len(meta)))
	serialized = append(serialized, meta...)
	require.NoError(t, w.AppendKeyValueMetadata("ARROW:schema", base64.StdEncoding.EncodeToString(serialized)))
	require.NoError(t, w.Close()) // closes fh

	_, err = ft.doGet(t, wire.FlightCommand{Kind: wire.FlightDataset, Path: "bad.parquet"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `dataset "bad.parquet"`)
	require.ErrorContains(t, err, "serialized schema: field 1 children claims 1000000000 entries")
}

// A batch whose metadata is well-formed but whose string offsets run past
// its data is refused (InvalidArgument: the client's input, not an
// internal error) before DuckDB reads it over the C data interface.
func TestFlightInconsistentBatchInDoExchange(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	sch := arrow.NewSchema([]arrow.Field{{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "event_timestamp", Type: tsType},
		{Name: "label", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	for i := range 3 {
		b.Field(0).(*array.Int64Builder).Append(int64(i + 1))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(now.UnixMicro()))
		b.Field(2).(*array.StringBuilder).Append("abc")
	}
	rec := b.NewRecordBatch()
	b.Release()
	defer rec.Release()
	msgs := ipctest.Messages(t, rec)
	// The label offsets are 0, 3, 6, 9 (int32): make the last 900.
	body := msgs[1].DataBody
	off := bytes.Index(body, []byte{0, 0, 0, 0, 3, 0, 0, 0, 6, 0, 0, 0, 9, 0, 0, 0})
	require.GreaterOrEqual(t, off, 0)
	binary.LittleEndian.PutUint32(body[off+12:], 900)
	for _, kind := range []string{wire.FlightTrainingSet, wire.FlightOnlineFeatures} {
		cmd, err := json.Marshal(wire.FlightCommand{Kind: kind, Features: []string{"stats:rate"}})
		require.NoError(t, err)
		stream, err := ft.client.DoExchange(context.Background())
		require.NoError(t, err)
		msgs[0].FlightDescriptor = &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd}
		for _, m := range msgs {
			require.NoError(t, stream.Send(m))
		}
		require.NoError(t, stream.CloseSend())
		_, err = stream.Recv()
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", kind, err)
		require.ErrorContains(t, err, "offsets out of bounds", kind)
	}
	ents := entityRows(3)
	defer ents.Release()
	rows, err := ft.exchangeOnline(t, ents)
	require.NoError(t, err, "the server still serves")
	require.EqualValues(t, 3, rows)
}

// A saved Arrow file with a dictionary-encoded column is served (arrow-go's
// mapped reader cannot read one; it is read through copies).
func TestFlightDatasetWithDictionary(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	rec := ipctest.Varied(t, 7)
	defer rec.Release()
	require.NoError(t, os.WriteFile(filepath.Join(ft.root, "dict.arrow"), ipctest.File(t, rec, rec), 0o644))
	rows, err := ft.doGet(t, wire.FlightCommand{Kind: wire.FlightDataset, Path: "dict.arrow"})
	require.NoError(t, err)
	require.EqualValues(t, 14, rows)
}
