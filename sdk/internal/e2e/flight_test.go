package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

	"github.com/quiverdata/quiver/internal/quickstart"
	"github.com/quiverdata/quiver/internal/testutil/quicktest"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/online"
	"github.com/quiverdata/quiver/registry"
	"github.com/quiverdata/quiver/sdk"
	"github.com/quiverdata/quiver/server"
	"github.com/quiverdata/quiver/wire"
)

type flightHarness struct {
	repo    *registry.Repo
	snap    *registry.Snapshot
	off     *offline.Engine
	lookup  *online.Lookup
	addr    string
	httpURL string
}

func startFlight(t *testing.T) *flightHarness {
	t.Helper()
	repo, snap := quicktest.Repo(t)
	off, err := offline.Open(offline.OptionsFromConfig(repo.Config))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, off.Close()) })
	store, err := online.Open(context.Background(), repo.Config)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, store.Close()) })
	lookup := online.NewLookup(store, online.LookupOptions{})
	snapshot := func() *registry.Snapshot { return snap }
	svc, err := server.NewFlightService(off, lookup, snapshot, repo.Config.DataRoot(), server.Limits{MaxEntities: 7})
	require.NoError(t, err)
	srv, err := server.New(server.Config{FlightAddr: "127.0.0.1:0", Flight: svc, HTTPAddr: "127.0.0.1:0", Metrics: server.NewMetrics()},
		server.NewServing(lookup, snapshot, server.Limits{}, "test"), func(context.Context) error { return nil })
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return &flightHarness{repo: repo, snap: snap, off: off, lookup: lookup, addr: srv.FlightAddr().String(), httpURL: "http://" + srv.HTTPAddr().String()}
}

// table reads a reader to its end as one column per field.
func table(t *testing.T, rr array.RecordReader) (*arrow.Schema, []arrow.Array) {
	t.Helper()
	var recs []arrow.RecordBatch
	for rr.Next() {
		rec := rr.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	require.NoError(t, rr.Err())
	sch := rr.Schema()
	cols := make([]arrow.Array, len(sch.Fields()))
	for i := range cols {
		var parts []arrow.Array
		for _, r := range recs {
			parts = append(parts, r.Column(i))
		}
		c, err := array.Concatenate(parts, memory.DefaultAllocator)
		require.NoError(t, err)
		cols[i] = c
	}
	for _, r := range recs {
		r.Release()
	}
	return sch, cols
}

func requireSameTable(t *testing.T, wantSch *arrow.Schema, want []arrow.Array, rr array.RecordReader) {
	t.Helper()
	sch, got := table(t, rr)
	require.True(t, wantSch.Equal(sch), "schemas differ:\n%s\n%s", wantSch, sch)
	for i := range want {
		require.True(t, array.Equal(want[i], got[i]), "column %s differs", sch.Field(i).Name)
	}
}

var tsReq = sdk.TrainingSetRequest{Features: []string{"driver_hourly:conv_rate", "driver_hourly:embedding", "driver_scores:adjusted_conv"}}

func TestFlightTrainingSetEqualsInProcess(t *testing.T) {
	ctx := context.Background()
	h := startFlight(t)
	labels := filepath.Join(h.repo.Config.DataRoot(), quickstart.LabelsFile)
	rr, err := h.off.TrainingSet(ctx, &offline.Request{Defs: h.snap.Defs, Entities: offline.EntitiesFromParquet(labels), Features: tsReq.Features})
	require.NoError(t, err)
	wantSch, want := table(t, rr)
	rr.Release()
	require.EqualValues(t, 100, want[0].Len())

	c, err := sdk.DialFlight(h.addr, sdk.Options{})
	require.NoError(t, err)
	defer c.Close()

	// DoGet on a ticket, from several clients at once.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.TrainingSetFromPath(ctx, quickstart.LabelsFile, tsReq)
			if !assertNoError(t, err) {
				return
			}
			defer got.Release()
			requireSameTable(t, wantSch, want, got)
		}()
	}
	wg.Wait()

	// DoExchange: the client streams the entity table, in batches of
	// several sizes.
	entSch, entCols := func() (*arrow.Schema, []arrow.Array) {
		rr, err := h.off.TrainingSet(ctx, &offline.Request{Defs: h.snap.Defs, Entities: offline.EntitiesFromParquet(labels), Features: []string{"driver_hourly:acc_rate"}})
		require.NoError(t, err)
		defer rr.Release()
		sch, cols := table(t, rr)
		n := len(cols) - 1 // drop the feature: the entity table is what remains
		return arrow.NewSchema(sch.Fields()[:n], nil), cols[:n]
	}()
	for _, size := range []int{1, 33, 100} {
		var recs []arrow.RecordBatch
		for lo := 0; lo < entCols[0].Len(); lo += size {
			hi := min(lo+size, entCols[0].Len())
			var cols []arrow.Array
			for _, col := range entCols {
				cols = append(cols, array.NewSlice(col, int64(lo), int64(hi)))
			}
			recs = append(recs, array.NewRecordBatch(entSch, cols, int64(hi-lo)))
		}
		ents, err := array.NewRecordReader(entSch, recs)
		require.NoError(t, err)
		got, err := c.TrainingSet(ctx, ents, tsReq)
		require.NoError(t, err)
		requireSameTable(t, wantSch, want, got)
		got.Release()
		ents.Release()
	}
}

func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

func TestFlightOnlineFeatures(t *testing.T) {
	ctx := context.Background()
	h := startFlight(t)
	c, err := sdk.DialFlight(h.addr, sdk.Options{})
	require.NoError(t, err)
	defer c.Close()
	sch := arrow.NewSchema([]arrow.Field{{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64}, {Name: "surge", Type: arrow.PrimitiveTypes.Float64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer b.Release()
	var ids, surges []any
	for i := range 20 { // more than MaxEntities (7): the server chunks the lookups
		id := int64(1001 + i%12) // 1011 and 1012 are unknown
		b.Field(0).(*array.Int64Builder).Append(id)
		b.Field(1).(*array.Float64Builder).Append(1 + float64(i)/10)
		ids, surges = append(ids, id), append(surges, 1+float64(i)/10)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	ents, err := array.NewRecordReader(sch, []arrow.RecordBatch{rec})
	require.NoError(t, err)
	defer ents.Release()
	feats := []string{"driver_hourly:conv_rate", "driver_hourly:embedding", "driver_scores:adjusted_conv"}
	rr, err := c.OnlineFeatures(ctx, ents, sdk.TrainingSetRequest{Features: feats})
	require.NoError(t, err)
	defer rr.Release()
	gotSch, got := table(t, rr)
	require.Equal(t, []string{"driver_id", "surge", "conv_rate", "embedding", "adjusted_conv"}, fieldNames(gotSch))

	want, err := h.lookup.Get(ctx, h.snap.Defs, &online.Request{Entities: map[string][]any{"driver_id": ids}, Features: feats,
		RequestContext: map[string][]any{"surge": surges}})
	require.NoError(t, err)
	present := 0
	for f, fv := range want.Features {
		col := got[2+f]
		for r := range want.Rows {
			v := fv.Value(r)
			if v == nil {
				require.True(t, col.IsNull(r), "%s row %d", fv.Name, r)
				continue
			}
			present++
			switch x := v.(type) {
			case float32:
				require.Equal(t, x, col.(*array.Float32).Value(r))
			case float64:
				require.Equal(t, x, col.(*array.Float64).Value(r))
			case []float32:
				l := col.(*array.List)
				s, e := l.ValueOffsets(r)
				require.Equal(t, x, l.ListValues().(*array.Float32).Float32Values()[s:e])
			}
		}
	}
	require.Greater(t, present, 40)
}

func fieldNames(s *arrow.Schema) []string {
	var out []string
	for _, f := range s.Fields() {
		out = append(out, f.Name)
	}
	return out
}

func TestFlightDatasetsAndErrors(t *testing.T) {
	ctx := context.Background()
	h := startFlight(t)
	raw, err := flight.NewClientWithMiddleware(h.addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer raw.Close()
	list, err := raw.ListFlights(ctx, &flight.Criteria{})
	require.NoError(t, err)
	var paths []string
	for {
		info, err := list.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		paths = append(paths, strings.Join(info.FlightDescriptor.Path, "/"))
	}
	require.Contains(t, paths, "feature_view/driver_hourly")
	require.Contains(t, paths, "feature_service/ranking_v1")
	sr, err := raw.GetSchema(ctx, &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"feature_view", "driver_hourly"}})
	require.NoError(t, err)
	sch, err := flight.DeserializeSchema(sr.Schema, memory.DefaultAllocator)
	require.NoError(t, err)
	require.Equal(t, []string{"driver_id", "event_timestamp", "conv_rate", "acc_rate", "avg_daily_trips", "embedding"}, fieldNames(sch))

	// GetFlightInfo on a training-set command gives the ticket to fetch.
	cmd, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: tsReq.Features, Entities: quickstart.LabelsFile})
	require.NoError(t, err)
	info, err := raw.GetFlightInfo(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	require.NoError(t, err)
	require.Equal(t, cmd, info.Endpoint[0].Ticket.Ticket)

	c, err := sdk.DialFlight(h.addr, sdk.Options{})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, os.Symlink("/etc", filepath.Join(h.repo.Config.DataRoot(), "escape")))
	for _, tc := range []struct {
		call func() error
		want string
	}{
		{func() error {
			_, err := c.TrainingSetFromPath(ctx, quickstart.LabelsFile, sdk.TrainingSetRequest{Features: []string{"driver_hourly:nope"}})
			return err
		}, `view driver_hourly has no feature "nope"`},
		{func() error { _, err := c.TrainingSetFromPath(ctx, "../../etc/passwd", tsReq); return err }, "is outside the data root"},
		{func() error { _, err := c.TrainingSetFromPath(ctx, "/etc/passwd", tsReq); return err }, "is outside the data root"},
		{func() error { _, err := c.TrainingSetFromPath(ctx, "escape/passwd", tsReq); return err }, "leads outside the data root"},
		{func() error {
			_, err := raw.DoGet(ctx, &flight.Ticket{Ticket: []byte("not json")})
			if err == nil {
				s, _ := raw.DoGet(ctx, &flight.Ticket{Ticket: []byte("not json")})
				_, err = s.Recv()
			}
			return err
		}, "is not a Quiver Flight command"},
		{func() error {
			_, err := c.TrainingSetFromPath(ctx, quickstart.LabelsFile, sdk.TrainingSetRequest{Features: []string{"driver_scores:adjusted_conv"}, TimestampColumn: "nope"})
			return err
		}, `entity table has no timestamp column "nope"`},
	} {
		err := tc.call()
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		require.ErrorContains(t, err, tc.want)
	}
	// Entity batches missing a join key.
	sch2 := arrow.NewSchema([]arrow.Field{{Name: "rider", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch2)
	b.Field(0).(*array.Int64Builder).Append(1)
	rec := b.NewRecordBatch()
	b.Release()
	ents, err := array.NewRecordReader(sch2, []arrow.RecordBatch{rec})
	require.NoError(t, err)
	_, err = c.OnlineFeatures(ctx, ents, sdk.TrainingSetRequest{Features: []string{"driver_hourly:conv_rate"}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "missing join key driver_id")
	rec.Release()

	// The server still serves.
	rr, err := c.TrainingSetFromPath(ctx, quickstart.LabelsFile, tsReq)
	require.NoError(t, err)
	_, cols := table(t, rr)
	rr.Release()
	require.Equal(t, 100, cols[0].Len())
}

// Cancelling mid-stream ends the server's handler, which releases the
// DuckDB query.
func TestFlightCancelMidStream(t *testing.T) {
	h := startFlight(t)
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	_, err = db.Exec(fmt.Sprintf(`COPY (SELECT 1001 + (i %% 10) AS driver_id, now()::TIMESTAMP - to_seconds(i %% 86400) AS event_timestamp, 1.0 AS surge
		FROM range(300000) r(i)) TO '%s' (FORMAT parquet)`, filepath.Join(h.repo.Config.DataRoot(), "big.parquet")))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	c, err := sdk.DialFlight(h.addr, sdk.Options{})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	rr, err := c.TrainingSetFromPath(ctx, "big.parquet", tsReq)
	require.NoError(t, err)
	require.True(t, rr.Next())
	cancel()
	rr.Release()
	want := `quiver_request_duration_seconds_count{code="Canceled",method="/arrow.flight.protocol.FlightService/DoGet",surface="flight"} 1`
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(h.httpURL + "/metrics")
		require.NoError(t, err)
		var b bytes.Buffer
		_, err = b.ReadFrom(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		if strings.Contains(b.String(), want) {
			return
		}
		require.True(t, time.Now().Before(deadline), "the server's DoGet did not end after the client cancelled:\n%s", b.String())
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFlightSavedDatasets: a training set saved as an Arrow IPC file or as
// Parquet within the data root streams back over DoGet as it was saved,
// and bad dataset commands are refused with the reason.
func TestFlightSavedDatasets(t *testing.T) {
	ctx := context.Background()
	h := startFlight(t)
	root := h.repo.Config.DataRoot()
	req := &offline.Request{Defs: h.snap.Defs, Entities: offline.EntitiesFromParquet(filepath.Join(root, quickstart.LabelsFile)), Features: tsReq.Features}
	rr, err := h.off.TrainingSet(ctx, req)
	require.NoError(t, err)
	wantSch, want := table(t, rr)
	rr.Release()

	// The Arrow IPC file, in batches of 30 rows.
	require.NoError(t, os.MkdirAll(filepath.Join(root, "sets"), 0o755))
	fh, err := os.Create(filepath.Join(root, "sets", "train.arrow"))
	require.NoError(t, err)
	w, err := ipc.NewFileWriter(fh, ipc.WithSchema(wantSch))
	require.NoError(t, err)
	for lo := 0; lo < want[0].Len(); lo += 30 {
		hi := min(lo+30, want[0].Len())
		var cols []arrow.Array
		for _, c := range want {
			cols = append(cols, array.NewSlice(c, int64(lo), int64(hi)))
		}
		rec := array.NewRecordBatch(wantSch, cols, int64(hi-lo))
		require.NoError(t, w.Write(rec))
		rec.Release()
		for _, c := range cols {
			c.Release()
		}
	}
	require.NoError(t, w.Close())
	require.NoError(t, fh.Close())
	_, err = h.off.WriteParquet(ctx, req, filepath.Join(root, "sets", "train.parquet"))
	require.NoError(t, err)

	c, err := sdk.DialFlight(h.addr, sdk.Options{})
	require.NoError(t, err)
	defer c.Close()
	got, err := c.Dataset(ctx, "sets/train.arrow")
	require.NoError(t, err)
	requireSameTable(t, wantSch, want, got)
	got.Release()
	got, err = c.Dataset(ctx, "sets/train.parquet")
	require.NoError(t, err)
	sch, cols := table(t, got)
	got.Release()
	require.Equal(t, fieldNames(wantSch), fieldNames(sch))
	require.Equal(t, want[0].Len(), cols[0].Len())
	for i, col := range cols {
		require.Equal(t, want[i].String(), col.String(), "column %s", sch.Field(i).Name)
	}

	// GetSchema on a dataset command reads the file's schema.
	raw, err := flight.NewClientWithMiddleware(h.addr, nil, nil, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer raw.Close()
	sr, err := raw.GetSchema(ctx, &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: []byte(`{"kind": "dataset", "path": "sets/train.arrow"}`)})
	require.NoError(t, err)
	gotSch, err := flight.DeserializeSchema(sr.Schema, memory.DefaultAllocator)
	require.NoError(t, err)
	require.True(t, wantSch.Equal(gotSch))

	require.NoError(t, os.WriteFile(filepath.Join(root, "sets", "notes.txt"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(root, "sets", "bad.arrow"), []byte("not arrow"), 0o644))
	fetch := func(cmd string) error {
		s, err := raw.DoGet(ctx, &flight.Ticket{Ticket: []byte(cmd)})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}
	for _, tc := range []struct {
		cmd  string
		code codes.Code
		want string
	}{
		{`{"kind": "dataset", "path": "../../etc/passwd.arrow"}`, codes.InvalidArgument, "is outside the data root"},
		{`{"kind": "dataset", "path": "sets/notes.txt"}`, codes.InvalidArgument, "neither an Arrow IPC file"},
		{`{"kind": "dataset", "path": "sets/bad.arrow"}`, codes.InvalidArgument, "is not an Arrow IPC file"},
		{`{"kind": "dataset", "path": "sets/none.arrow"}`, codes.NotFound, `no dataset "sets/none.arrow"`},
		{`{"kind": "dataset"}`, codes.InvalidArgument, "a dataset command needs a path"},
		{`{"kind": "dataset", "path": "sets/train.arrow", "features": ["driver_hourly:conv_rate"]}`, codes.InvalidArgument, "takes only a path"},
		{`{"kind": "training_set", "path": "sets/train.arrow"}`, codes.InvalidArgument, "has no path"},
	} {
		err := fetch(tc.cmd)
		require.Equal(t, tc.code, status.Code(err), "%s: %v", tc.cmd, err)
		require.ErrorContains(t, err, tc.want, tc.cmd)
	}
	// The server keeps serving.
	got, err = c.Dataset(ctx, "sets/train.arrow")
	require.NoError(t, err)
	requireSameTable(t, wantSch, want, got)
	got.Release()
}
