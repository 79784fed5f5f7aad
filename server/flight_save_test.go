package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiverdata/quiver/internal/testutil/ipctest"
	"github.com/quiverdata/quiver/offline"
	"github.com/quiverdata/quiver/wire"
)

// labelledEntities are n entity rows of drivers 1, 2, 3, 4 (4 has no
// features) at now, with a label column counting 0, 1, 2, ... so that
// order shows.
func labelledEntities(n int) arrow.RecordBatch {
	sch := arrow.NewSchema([]arrow.Field{
		{Name: "driver_id", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		{Name: "event_timestamp", Type: tsType},
		{Name: "label", Type: arrow.PrimitiveTypes.Int64},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, sch)
	defer b.Release()
	for i := range n {
		b.Field(0).(*array.Int64Builder).Append(int64(i%4 + 1))
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(now.UnixMicro()))
		b.Field(2).(*array.Int64Builder).Append(int64(i))
	}
	return b.NewRecordBatch()
}

// columns is a stream's rows as each column's values, printed, by name.
type columns map[string][]string

// readColumns reads a record stream to its end.
func readColumns(t *testing.T, rd interface {
	Next() bool
	RecordBatch() arrow.RecordBatch
	Err() error
}) (columns, error) {
	t.Helper()
	out := columns{}
	for rd.Next() {
		rec := rd.RecordBatch()
		for i, f := range rec.Schema().Fields() {
			col := rec.Column(i)
			for r := range col.Len() {
				out[f.Name] = append(out[f.Name], col.ValueStr(r))
			}
		}
	}
	return out, rd.Err()
}

func (ft *flightTest) getColumns(t *testing.T, tk *flight.Ticket) (columns, error) {
	t.Helper()
	stream, err := ft.client.DoGet(context.Background(), tk)
	require.NoError(t, err)
	rd, err := flight.NewRecordReader(stream)
	if err != nil {
		return nil, err
	}
	defer rd.Release()
	return readColumns(t, rd)
}

// saveAction runs save_training_set over the entity file ents.
func (ft *flightTest) saveAction(t *testing.T, ents, out string, overwrite bool) (*wire.SavedDataset, error) {
	t.Helper()
	body, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Entities: ents, Out: out, Overwrite: overwrite})
	require.NoError(t, err)
	return ft.action(t, wire.FlightActionSaveTrainingSet, body)
}

func (ft *flightTest) action(t *testing.T, typ string, body []byte) (*wire.SavedDataset, error) {
	t.Helper()
	stream, err := ft.client.DoAction(context.Background(), &flight.Action{Type: typ, Body: body})
	require.NoError(t, err)
	res, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	_, err = stream.Recv()
	require.ErrorIs(t, err, io.EOF, "one result")
	var keys map[string]any
	require.NoError(t, json.Unmarshal(res.Body, &keys))
	require.ElementsMatch(t, []string{"path", "format", "rows", "bytes", "version"}, mapKeys(keys), "%s", res.Body)
	var saved wire.SavedDataset
	dec := json.NewDecoder(bytes.NewReader(res.Body))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&saved), "%s", res.Body)
	return &saved, nil
}

func mapKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// put sends recs as the entity stream of a DoPut of the command and
// returns the saved dataset its one PutResult describes.
func (ft *flightTest) put(t *testing.T, c wire.FlightCommand, recs ...arrow.RecordBatch) (*wire.SavedDataset, error) {
	t.Helper()
	cmd, err := json.Marshal(c)
	require.NoError(t, err)
	stream, err := ft.client.DoPut(context.Background())
	require.NoError(t, err)
	w := flight.NewRecordWriter(stream, ipc.WithSchema(recs[0].Schema()))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			break // the server answered already; its status follows
		}
	}
	_ = w.Close() // as Write: an error here is the server's answer, read below
	require.NoError(t, stream.CloseSend())
	res, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	_, err = stream.Recv()
	require.ErrorIs(t, err, io.EOF, "one result")
	var saved wire.SavedDataset
	require.NoError(t, json.Unmarshal(res.AppMetadata, &saved), "%s", res.AppMetadata)
	return &saved, nil
}

// checkSaved checks a SavedDataset against the file it names.
func (ft *flightTest) checkSaved(t *testing.T, saved *wire.SavedDataset, out string, rows int64) {
	t.Helper()
	st, err := os.Stat(filepath.Join(ft.root, out))
	require.NoError(t, err)
	require.Equal(t, wire.SavedDataset{Path: out, Format: offline.DatasetFormat(out), Rows: rows, Bytes: st.Size(),
		Version: fmt.Sprintf("%d-%d", st.Size(), st.ModTime().UnixNano())}, *saved)
}

func datasetCmd(path string) wire.FlightCommand {
	return wire.FlightCommand{Kind: wire.FlightDataset, Path: path}
}

// A training set saved by the save_training_set action, as an Arrow file
// and as Parquet, reads back through DoGet with the values and the order
// of the same training set streamed by DoGet and by DoExchange; its
// directory is created within the root.
func TestFlightSaveTrainingSetAction(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	const rows = 1000
	writeParquet(t, filepath.Join(ft.root, "ents.parquet"), labelledEntities(rows))
	want, err := ft.getColumns(t, ticket(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Entities: "ents.parquet"}))
	require.NoError(t, err)
	require.Len(t, want["label"], rows)
	require.Equal(t, "0.1", want["rate"][0])
	require.Equal(t, "(null)", want["rate"][3], "driver 4 has no features")
	ents := labelledEntities(rows)
	defer ents.Release()
	exchanged := ft.exchangeColumns(t, ents)
	require.Equal(t, want, exchanged)

	for _, out := range []string{"sets/new/train.arrow", "sets/train.parquet", "train.feather"} {
		saved, err := ft.saveAction(t, "ents.parquet", out, false)
		require.NoError(t, err, out)
		ft.checkSaved(t, saved, out, rows)
		got, err := ft.getColumns(t, ticket(t, datasetCmd(out)))
		require.NoError(t, err, out)
		require.Equal(t, want, got, out)
	}
	entries, err := os.ReadDir(filepath.Join(ft.root, "sets"))
	require.NoError(t, err)
	require.Len(t, entries, 2, "the new directory and the Parquet file; no temporary file")
}

// exchangeColumns streams ents as a training_set DoExchange.
func (ft *flightTest) exchangeColumns(t *testing.T, ents arrow.RecordBatch) columns {
	t.Helper()
	return ft.exchangeColumnsCmd(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}}, ents)
}

// exchangeColumnsCmd streams ents as a DoExchange of command c.
func (ft *flightTest) exchangeColumnsCmd(t *testing.T, c wire.FlightCommand, ents arrow.RecordBatch) columns {
	t.Helper()
	cmd, err := json.Marshal(c)
	require.NoError(t, err)
	stream, err := ft.client.DoExchange(context.Background())
	require.NoError(t, err)
	w := flight.NewRecordWriter(stream, ipc.WithSchema(ents.Schema()))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	require.NoError(t, w.Write(ents))
	require.NoError(t, w.Close())
	require.NoError(t, stream.CloseSend())
	rd, err := flight.NewRecordReader(stream)
	require.NoError(t, err)
	defer rd.Release()
	got, err := readColumns(t, rd)
	require.NoError(t, err)
	return got
}

// DoPut saves the training set of the entity stream it carries; the
// stream is checked like DoExchange's; a descriptor without out, or of
// another kind, is refused.
func TestFlightDoPutSave(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	ents := labelledEntities(500)
	defer ents.Release()
	want := ft.exchangeColumns(t, ents)
	cmd := wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Out: "put/set.arrow"}
	saved, err := ft.put(t, cmd, ents, ents)
	require.NoError(t, err)
	ft.checkSaved(t, saved, "put/set.arrow", 1000)
	got, err := ft.getColumns(t, ticket(t, datasetCmd("put/set.arrow")))
	require.NoError(t, err)
	for name, vals := range want {
		require.Equal(t, append(append([]string{}, vals...), vals...), got[name], name)
	}

	_, err = ft.put(t, cmd, ents)
	require.Equal(t, codes.AlreadyExists, status.Code(err), "%v", err)
	cmd.Overwrite, cmd.Out = true, "put/set.parquet"
	saved, err = ft.put(t, cmd, ents)
	require.NoError(t, err)
	ft.checkSaved(t, saved, "put/set.parquet", 500)

	for name, c := range map[string]wire.FlightCommand{
		"no out":       {Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}},
		"entities":     {Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Entities: "e.parquet", Out: "x.arrow"},
		"online":       {Kind: wire.FlightOnlineFeatures, Features: []string{"stats:rate"}},
		"escapes root": {Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Out: "../x.arrow"},
	} {
		_, err := ft.put(t, c, ents)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", name, err)
	}
	_, err = ft.put(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}}, ents)
	require.ErrorContains(t, err, "names no out")

	// A hostile schema message is refused before it is decoded.
	body, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Out: "hostile.arrow"})
	require.NoError(t, err)
	stream, err := ft.client.DoPut(context.Background())
	require.NoError(t, err)
	require.NoError(t, stream.Send(&flight.FlightData{
		FlightDescriptor: &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: body},
		DataHeader:       ipctest.HostileSchemaMessage(t),
	}))
	require.NoError(t, stream.CloseSend())
	_, err = stream.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "children claims 1000000000 entries")
	_, err = os.Stat(filepath.Join(ft.root, "hostile.arrow"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// An existing out is refused with AlreadyExists naming it, and kept;
// with overwrite it is replaced.
func TestFlightSaveOverwrite(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	writeParquet(t, filepath.Join(ft.root, "ents.parquet"), labelledEntities(10))
	writeParquet(t, filepath.Join(ft.root, "more.parquet"), labelledEntities(20))
	for _, out := range []string{"set.arrow", "set.parquet"} {
		first, err := ft.saveAction(t, "ents.parquet", out, false)
		require.NoError(t, err)
		_, err = ft.saveAction(t, "more.parquet", out, false)
		require.Equal(t, codes.AlreadyExists, status.Code(err), "%v", err)
		require.ErrorContains(t, err, fmt.Sprintf("out %q exists", out))
		require.ErrorContains(t, err, `"overwrite": true`)
		got, err := ft.getColumns(t, ticket(t, datasetCmd(out)))
		require.NoError(t, err)
		require.Len(t, got["label"], 10, "the file is kept")

		second, err := ft.saveAction(t, "more.parquet", out, true)
		require.NoError(t, err)
		ft.checkSaved(t, second, out, 20)
		require.NotEqual(t, first.Version, second.Version)
		got, err = ft.getColumns(t, ticket(t, datasetCmd(out)))
		require.NoError(t, err)
		require.Len(t, got["label"], 20)
	}
}

// An out that escapes the data root (.., absolute, through a symbolic
// link, a link itself), names no format or is a directory is refused with
// InvalidArgument, and nothing is written outside the root.
func TestFlightSaveOutConfined(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	writeParquet(t, filepath.Join(ft.root, "ents.parquet"), labelledEntities(10))
	outside := t.TempDir()
	require.NoError(t, os.Symlink(outside, filepath.Join(ft.root, "linkdir")))
	require.NoError(t, os.Symlink(filepath.Join(outside, "target.arrow"), filepath.Join(ft.root, "link.arrow")))
	require.NoError(t, os.Mkdir(filepath.Join(ft.root, "dir.arrow"), 0o755))
	for out, want := range map[string]string{
		"../x.arrow":            `holds ".."`,
		"sets/../../x.arrow":    `holds ".."`,
		outside + "/x.arrow":    "is absolute",
		"linkdir/x.arrow":       "leads outside the data root",
		"linkdir/new/x.parquet": "leads outside the data root",
		"link.arrow":            "is a symbolic link",
		"dir.arrow":             "is not a regular file",
		"x.csv":                 "its extension says no format",
		"x":                     "its extension says no format",
	} {
		_, err := ft.saveAction(t, "ents.parquet", out, true)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", out, err)
		require.ErrorContains(t, err, want, out)
	}
	entries, err := os.ReadDir(outside)
	require.NoError(t, err)
	require.Empty(t, entries, "nothing is written outside the root")
	_, err = os.Stat(filepath.Join(filepath.Dir(ft.root), "x.arrow"))
	require.ErrorIs(t, err, os.ErrNotExist)

	// The action's other mistakes.
	_, err = ft.saveAction(t, "", "x.arrow", false)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "names no entities")
	_, err = ft.saveAction(t, "ents.parquet", "", false)
	require.ErrorContains(t, err, "names no out")
	body, err := json.Marshal(wire.FlightCommand{Kind: wire.FlightDataset, Path: "x.arrow"})
	require.NoError(t, err)
	_, err = ft.action(t, wire.FlightActionSaveTrainingSet, body)
	require.ErrorContains(t, err, "takes a training_set command")
	_, err = ft.action(t, wire.FlightActionSaveTrainingSet, []byte("{"))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
}

// ListActions lists save_training_set with a description; an unknown
// action is refused naming the known ones.
func TestFlightActions(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	stream, err := ft.client.ListActions(context.Background(), &flight.Empty{})
	require.NoError(t, err)
	var types []string
	for {
		a, err := stream.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		types = append(types, a.Type)
		require.Contains(t, a.Description, `"out"`)
	}
	require.Equal(t, []string{"save_training_set"}, types)
	_, err = ft.action(t, "drop_everything", nil)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `unknown action "drop_everything" (known: "save_training_set")`)
}

// out outside a save, and range or version outside a dataset ticket, are
// refused saying where they belong.
func TestFlightOutAndRangeMisplaced(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	writeParquet(t, filepath.Join(ft.root, "ents.parquet"), labelledEntities(10))
	withOut := wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Entities: "ents.parquet", Out: "x.arrow"}
	_, err := ft.doGet(t, withOut)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `"out" belongs in the save_training_set action or a DoPut descriptor`)
	cmd, err := json.Marshal(withOut)
	require.NoError(t, err)
	_, err = ft.client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `"out" belongs in`)

	withOut.Entities = ""
	cmd, err = json.Marshal(withOut)
	require.NoError(t, err)
	ents := labelledEntities(3)
	defer ents.Release()
	stream, err := ft.client.DoExchange(context.Background())
	require.NoError(t, err)
	w := flight.NewRecordWriter(stream, ipc.WithSchema(ents.Schema()))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	require.NoError(t, w.Write(ents))
	require.NoError(t, stream.CloseSend())
	_, err = stream.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `"out" belongs in`)

	_, err = ft.doGet(t, wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Entities: "ents.parquet", Range: []int64{0, 1}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "has no range or version")

	writeDataset(t, filepath.Join(ft.root, "d.arrow"), 3, 10)
	cmd, err = json.Marshal(wire.FlightCommand{Kind: wire.FlightDataset, Path: "d.arrow", Range: []int64{0, 1}})
	require.NoError(t, err)
	_, err = ft.client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "range and version belong in the tickets")
}

// datasetInfo gets a dataset's flight info.
func (ft *flightTest) datasetInfo(t *testing.T, path string) (*flight.FlightInfo, error) {
	t.Helper()
	cmd, err := json.Marshal(datasetCmd(path))
	require.NoError(t, err)
	return ft.client.GetFlightInfo(context.Background(), &flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: cmd})
}

// readEndpoints reads every endpoint of info in order, checking each
// ticket's range and version and each endpoint's rows, and returns the
// concatenated columns.
func (ft *flightTest) readEndpoints(t *testing.T, info *flight.FlightInfo, path string) columns {
	t.Helper()
	all := columns{}
	next := int64(0)
	var total int64
	for i, ep := range info.Endpoint {
		c, err := wire.DecodeFlightCommand(ep.Ticket.Ticket)
		require.NoError(t, err)
		require.Equal(t, wire.FlightDataset, c.Kind)
		require.Equal(t, path, c.Path)
		require.Len(t, c.Range, 2, "endpoint %d", i)
		require.Equal(t, next, c.Range[0], "endpoint %d: ranges are contiguous", i)
		require.Greater(t, c.Range[1], c.Range[0])
		next = c.Range[1]
		require.NotEmpty(t, c.Version)
		var meta wire.DatasetRange
		require.NoError(t, json.Unmarshal(ep.AppMetadata, &meta))
		got, err := ft.getColumns(t, ep.Ticket)
		require.NoError(t, err, "endpoint %d", i)
		for name, vals := range got {
			require.Len(t, vals, int(meta.Rows), "endpoint %d: its app_metadata has its rows", i)
			all[name] = append(all[name], vals...)
		}
		total += meta.Rows
	}
	require.Equal(t, info.TotalRecords, total)
	return all
}

// The endpoints of a saved Arrow set and of a saved Parquet set cover
// every row exactly once, in order, when read one after the other; each
// unit (batch, row group) is an endpoint of its own.
func TestFlightDatasetEndpoints(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	const rows = 3*offline.SaveBatchRows + 1000
	writeParquet(t, filepath.Join(ft.root, "ents.parquet"), labelledEntities(rows))
	for _, out := range []string{"sets/big.arrow", "sets/big.parquet"} {
		_, err := ft.saveAction(t, "ents.parquet", out, false)
		require.NoError(t, err)
		whole, err := ft.getColumns(t, ticket(t, datasetCmd(out)))
		require.NoError(t, err)
		require.Len(t, whole["label"], rows)
		info, err := ft.datasetInfo(t, out)
		require.NoError(t, err)
		require.EqualValues(t, rows, info.TotalRecords)
		require.GreaterOrEqual(t, len(info.Endpoint), 4, "%s: at least four units of at most %d rows", out, offline.SaveBatchRows)
		require.True(t, info.Ordered)
		require.Equal(t, whole, ft.readEndpoints(t, info, out), out)
	}
}

// Beyond 64 units, a dataset's flight info has 64 endpoints of
// near-equal rows; ranges outside the units, or empty, are refused naming
// the unit count.
func TestFlightDatasetRanges(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	writeDataset(t, filepath.Join(ft.root, "many.arrow"), 100, 10)
	info, err := ft.datasetInfo(t, "many.arrow")
	require.NoError(t, err)
	require.Len(t, info.Endpoint, maxDatasetEndpoints)
	require.EqualValues(t, 1000, info.TotalRecords)
	got := ft.readEndpoints(t, info, "many.arrow")
	whole, err := ft.getColumns(t, ticket(t, datasetCmd("many.arrow")))
	require.NoError(t, err)
	require.Equal(t, whole, got)
	for _, ep := range info.Endpoint {
		var meta wire.DatasetRange
		require.NoError(t, json.Unmarshal(ep.AppMetadata, &meta))
		require.Contains(t, []int64{10, 20}, meta.Rows, "100 units in 64 ranges: one or two units each")
	}

	version := func(path string) string {
		info, err := ft.datasetInfo(t, path)
		require.NoError(t, err)
		c, err := wire.DecodeFlightCommand(info.Endpoint[0].Ticket.Ticket)
		require.NoError(t, err)
		return c.Version
	}
	v := version("many.arrow")
	for _, rng := range [][]int64{{0, 0}, {5, 3}, {-1, 2}, {0, 101}, {100, 101}} {
		_, err := ft.doGet(t, wire.FlightCommand{Kind: wire.FlightDataset, Path: "many.arrow", Range: rng, Version: v})
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v: %v", rng, err)
		require.ErrorContains(t, err, "its 100 record batches", rng)
	}
	_, err = ft.doGet(t, wire.FlightCommand{Kind: wire.FlightDataset, Path: "many.arrow", Range: []int64{0, 1, 2}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	n, err := ft.doGet(t, wire.FlightCommand{Kind: wire.FlightDataset, Path: "many.arrow", Range: []int64{98, 100}, Version: v})
	require.NoError(t, err)
	require.EqualValues(t, 20, n)

	// A file without batches has one endpoint, of the whole file.
	writeDataset(t, filepath.Join(ft.root, "empty.arrow"), 0, 0)
	info, err = ft.datasetInfo(t, "empty.arrow")
	require.NoError(t, err)
	require.Len(t, info.Endpoint, 1)
	require.Zero(t, info.TotalRecords)
	c, err := wire.DecodeFlightCommand(info.Endpoint[0].Ticket.Ticket)
	require.NoError(t, err)
	require.Nil(t, c.Range)
	require.JSONEq(t, `{"rows": 0}`, string(info.Endpoint[0].AppMetadata))
	n, err = ft.doGet(t, *c)
	require.NoError(t, err)
	require.Zero(t, n)

	writeParquet(t, filepath.Join(ft.root, "groups.parquet"), labelledEntities(10)) // 1024 rows per group: one
	_, err = ft.doGet(t, wire.FlightCommand{Kind: wire.FlightDataset, Path: "groups.parquet", Range: []int64{0, 2}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "its 1 row groups")
}

// A dataset replaced between GetFlightInfo and DoGet of its endpoints is
// refused with Aborted: the endpoints' ranges were of the old file.
func TestFlightDatasetReplacedAfterInfo(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	path := filepath.Join(ft.root, "set.arrow")
	writeDataset(t, path, 4, 10)
	info, err := ft.datasetInfo(t, "set.arrow")
	require.NoError(t, err)
	require.Len(t, info.Endpoint, 4)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf(`{"kind":"dataset","path":"set.arrow","range":[1,2],"version":"%d-%d"}`, st.Size(), st.ModTime().UnixNano()),
		string(info.Endpoint[1].Ticket.Ticket), "the ticket's JSON")
	require.Equal(t, `{"rows":10}`, string(info.Endpoint[1].AppMetadata))
	got, err := ft.getColumns(t, info.Endpoint[1].Ticket)
	require.NoError(t, err)
	require.Len(t, got["x"], 10)

	writeDataset(t, path, 4, 11) // replaced the safe way, renamed over it
	_, err = ft.getColumns(t, info.Endpoint[1].Ticket)
	require.Equal(t, codes.Aborted, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `dataset "set.arrow" changed since its flight info was read`)

	info, err = ft.datasetInfo(t, "set.arrow")
	require.NoError(t, err)
	got, err = ft.getColumns(t, info.Endpoint[1].Ticket)
	require.NoError(t, err, "the new flight info reads the new file")
	require.Len(t, got["x"], 11)
}

// ranges splits units into contiguous, non-empty ranges: one per unit up
// to the maximum, then that many of near-equal rows.
func TestRanges(t *testing.T) {
	require.Empty(t, ranges(nil, 4))
	require.Equal(t, [][2]int{{0, 1}, {1, 2}}, ranges([]int64{5, 0}, 4))
	require.Equal(t, [][2]int{{0, 2}, {2, 4}}, ranges([]int64{1, 1, 1, 1}, 2))
	require.Equal(t, [][2]int{{0, 1}, {1, 4}}, ranges([]int64{10, 1, 1, 1}, 2))
	require.Equal(t, [][2]int{{0, 3}, {3, 4}}, ranges([]int64{1, 1, 1, 10}, 2))
	require.Equal(t, [][2]int{{0, 1}, {1, 2}, {2, 5}}, ranges([]int64{0, 0, 0, 0, 0}, 3))
}

// A training set as of a time over Flight: before the features' rows were
// known, none; a malformed as_of is InvalidArgument.
func TestFlightTrainingSetAsOf(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	writeParquet(t, filepath.Join(ft.root, "ents.parquet"), labelledEntities(8))
	cmd := wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Entities: "ents.parquet"}
	plain, err := ft.getColumns(t, ticket(t, cmd))
	require.NoError(t, err)
	require.Equal(t, "0.1", plain["rate"][0])
	cmd.AsOf = now.Add(-2 * time.Hour).Format(time.RFC3339)
	early, err := ft.getColumns(t, ticket(t, cmd))
	require.NoError(t, err)
	require.Equal(t, plain["label"], early["label"])
	for i, v := range early["rate"] {
		require.Equal(t, "(null)", v, "row %d", i)
	}
	ents := labelledEntities(8)
	defer ents.Release()
	exchange := wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, AsOf: now.Format(time.RFC3339Nano)}
	require.Equal(t, plain, ft.exchangeColumnsCmd(t, exchange, ents), "as of now, by DoExchange")
	cmd.AsOf = "yesterday"
	_, err = ft.getColumns(t, ticket(t, cmd))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `as_of "yesterday" is not an RFC 3339 time`)
}

// A spine in a ticket: the view's events become the entity rows, by DoGet
// and in the save action; a spine in DoExchange, or a bad cadence, is
// InvalidArgument.
func TestFlightSpine(t *testing.T) {
	ft := startFlightTest(t, Limits{})
	sp := &wire.FlightSpine{View: "stats", Start: now.Add(-2 * time.Hour).Format(time.RFC3339), End: now.Format(time.RFC3339)}
	cmd := wire.FlightCommand{Kind: wire.FlightTrainingSet, Features: []string{"stats:rate"}, Spine: sp}
	got, err := ft.getColumns(t, ticket(t, cmd))
	require.NoError(t, err)
	require.Equal(t, []string{"1", "2", "3"}, got["driver_id"], "each driver's one event, by time then source order")
	require.Equal(t, []string{"0.1", "0.2", "0.3"}, got["rate"])

	cmd.Out = "sets/spine.parquet"
	body, err := json.Marshal(cmd)
	require.NoError(t, err)
	saved, err := ft.action(t, wire.FlightActionSaveTrainingSet, body)
	require.NoError(t, err)
	require.EqualValues(t, 3, saved.Rows)

	cmd.Out, sp.Every = "", "30m"
	got, err = ft.getColumns(t, ticket(t, cmd))
	require.NoError(t, err)
	require.Len(t, got["driver_id"], 15, "3 drivers at 5 instants")
	require.Equal(t, "(null)", got["rate"][0], "before the drivers' event")
	require.Equal(t, "0.3", got["rate"][14])

	sp.Every = "sometimes"
	_, err = ft.getColumns(t, ticket(t, cmd))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, `spine every "sometimes" is not a positive duration`)

	ents := labelledEntities(2)
	defer ents.Release()
	stream, err := ft.client.DoExchange(context.Background())
	require.NoError(t, err)
	sp.Every = ""
	body, err = json.Marshal(cmd)
	require.NoError(t, err)
	w := flight.NewRecordWriter(stream, ipc.WithSchema(ents.Schema()))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorCMD, Cmd: body})
	// The server refuses the descriptor, maybe before the batch is sent:
	// the writes may fail with EOF; the reason comes with the reader.
	_ = w.Write(ents)
	_ = w.Close()
	_ = stream.CloseSend()
	_, err = flight.NewRecordReader(stream)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "a path or a spine belongs in a DoGet ticket")
}
